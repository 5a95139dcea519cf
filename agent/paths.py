"""Paths a user can name (capture files, key files, firmware) stay inside
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
        real = cand.resolve()
        if any(real.is_relative_to(d) for d in dirs):
            if real.is_file():
                return str(real)
            if not path.is_absolute():
                continue
            raise validation(f"no {what} {name!r}", field=field)
    if path.is_absolute() or ".." in path.parts:
        raise AgentError("FORBIDDEN", f"{name!r} is outside the allowed directories",
                         {"field": field, "allowed_dirs": [str(d) for d in dirs]})
    raise validation(f"no {what} {name!r} in the allowed directories", field=field,
                     allowed_dirs=[str(d) for d in dirs])
