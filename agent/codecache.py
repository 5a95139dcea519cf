"""Dataclass methods compiled once, when the image is built, instead of at every import.

The dataclasses module writes each class's __init__, __repr__, __eq__ ... as source text and
compiles it when the class is made, in every process, at every start: 570 compiles at the
agent's start, a quarter of its imports' CPU natively and seconds of a boot under emulation.
The image's build records the code of those texts (record(), in the image's tree:
image/customize.sh) on the read-only root slot; install() makes dataclasses take the recorded
code for a text it knows and compile any other text as before.  Either way the code is what
exec(text) compiles.  Without the file, or with one another Python wrote, nothing changes.
`capbox run` installs it; the worker, the indexer and the firstboot child do not (under
qemu-user reading the file cost them 0.0-0.15 s more CPU than it saved; the agent 0.31 s less)."""
import builtins
import dataclasses
import importlib.util
import marshal
import os
import sys

FILE = os.path.join(sys.prefix, "share", "capbox", "dataclasses.marshal")
PACKAGES = ("agent", "hwdrivers", "firmware", "tui")     # what the recording imports
_code: dict = {}
hits = 0


def _exec(source, globals=None, locals=None, /):
    """dataclasses' exec(): the recorded code for a text it knows."""
    global hits
    code = _code.get(source) if isinstance(source, str) else None
    if code is None:
        return builtins.exec(source, globals, locals)
    hits += 1
    return builtins.exec(code, globals, locals)


def install(path: str = FILE) -> bool:
    """Take the code recorded in PATH; False (nothing changed) without a file this Python wrote."""
    try:
        with open(path, "rb") as f:
            magic, code = marshal.load(f)
    except (OSError, EOFError, ValueError, TypeError):
        return False
    if magic != importlib.util.MAGIC_NUMBER:
        return False
    _code.update(code)
    dataclasses.exec = _exec           # its module's names come before builtins: its one exec() call
    return True


def uninstall() -> None:
    vars(dataclasses).pop("exec", None)
    _code.clear()


def record(path: str, packages=PACKAGES) -> int:
    """Import every module of PACKAGES, keeping the code of each text dataclasses compiles; write PATH."""
    import pkgutil
    seen: dict = {}

    def recording(source, globals=None, locals=None, /):
        if isinstance(source, str):
            if source not in seen:
                seen[source] = compile(source, "<string>", "exec", dont_inherit=True)
            source = seen[source]
        return builtins.exec(source, globals, locals)

    dataclasses.exec = recording
    try:
        for name in packages:
            pkg = importlib.import_module(name)
            for info in pkgutil.walk_packages(pkg.__path__, name + ".", onerror=lambda _: None):
                if not info.name.endswith("__main__"):
                    try:
                        importlib.import_module(info.name)
                    except Exception:          # a module that cannot load here is not recorded: it compiles
                        pass
    finally:
        vars(dataclasses).pop("exec", None)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        marshal.dump((importlib.util.MAGIC_NUMBER, seen), f)
    return len(seen)

