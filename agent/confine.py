"""File names a user can give (capture files, key files, firmware) stay inside
the directories allowed for them; symlinks are resolved before the check."""
import pathlib

from agent.errors import AgentError, validation


def confine(name: str, dirs: list, field: str, what: str = "file") -> str:
    """The real path of `name` (absolute, or relative to one of dirs) if it is
    an existing file inside one of dirs; FORBIDDEN outside, VALIDATION_ERROR
    when there is no such file."""
    path = pathlib.Path(name)
    candidates = [path] if path.is_absolute() else [d / path for d in dirs]
    for cand in candidates:
        real = resolve(cand, field)
        if any(real.is_relative_to(d) for d in dirs):
            if is_file(real):
                return str(real)
            if not path.is_absolute():
                continue
            raise validation(f"no {what} {name!r}", field=field)
    if path.is_absolute() or ".." in path.parts:
        raise AgentError("FORBIDDEN", f"{name!r} is outside the allowed directories",
                         {"field": field, "allowed_dirs": [str(d) for d in dirs]})
    raise validation(f"no {what} {name!r} in the allowed directories", field=field,
                     allowed_dirs=[str(d) for d in dirs])


def resolve(path: pathlib.Path, field: str) -> pathlib.Path:
    """path with symlinks resolved; a name the OS refuses (too long, a loop) is a 400."""
    try:
        return path.resolve()
    except (OSError, RuntimeError) as e:
        raise validation(f"{field}: {getattr(e, 'strerror', None) or 'not a usable path'}", field=field) from None


def is_file(path: pathlib.Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False
