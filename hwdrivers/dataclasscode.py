"""The compiled code of the dataclasses' methods, kept like bytecode.

Why: CPython 3.11's dataclasses write each class's __init__, __repr__ and __eq__ (a frozen class's
__setattr__, __delattr__ and __hash__ too) as text and compile it at import: `capbox run` compiles 558
texts for its 107 classes, 80 of its imports' 250 ms natively, and every process of ours paid it at every
start (on the box, under emulation, half a second of the agent's CPU before READY).  The same text
compiles to the same code, so the code can be kept: `write()` imports our modules and writes what they
compiled next to the package's bytecode (make build, the image's build), a table per module;
`install()`, run by `import hwdrivers`, has dataclasses look a text up in its module's table before
compiling it.  A text not there (a class changed since) is compiled as before, and a file of another
interpreter is not read."""
import builtins
import dataclasses
import importlib
import importlib.util
import marshal
import os
import pkgutil
import sys

PATH = os.path.join(os.path.dirname(__file__), "__pycache__", f"dataclasscode.{sys.implementation.cache_tag}.bin")
PACKAGES = ("hwdrivers", "firmware", "agent", "tui")


def _load(path: str) -> dict:
    """{module: its table, marshalled}: a table is unmarshalled when its module makes its first class."""
    try:
        with open(path, "rb") as f:
            data = f.read()       # whole: marshal.load(f) reads an object at a time, 6 times slower
    except OSError:
        return {}
    magic = importlib.util.MAGIC_NUMBER
    return _unpack(memoryview(data)[len(magic):]) if data.startswith(magic) else {}


def _unpack(packed) -> dict:
    """A marshalled dict, or {} for anything else (a broken file, or no table)."""
    try:
        table = marshal.loads(packed)
    except (EOFError, ValueError, TypeError):
        return {}
    return table if isinstance(table, dict) else {}


def install(path: str = PATH, tables: dict = None) -> dict:
    """Has dataclasses take each method's code from the tables ({module: {text: code}}, read from path when
    not given), compiling (and adding) a text that is not there.  Returns the tables."""
    packed = _load(path) if tables is None else {}
    tables = {} if tables is None else tables

    def exec_(source, globals=None, locals=None):
        # dataclasses' only exec: a text that defines one factory function, run in a fresh namespace with
        # the globals of the class's module
        if isinstance(source, str):
            module = (globals or {}).get("__name__", "")
            table = tables.get(module)
            if table is None:
                table = tables[module] = _unpack(packed.pop(module, None))
            code = table.get(source)
            if code is None:
                # dont_inherit: compiled as exec(text) would be, whatever this module's own flags
                code = table[source] = compile(source, "<string>", "exec", dont_inherit=True)
            source = code
        builtins.exec(source, globals, locals)

    dataclasses.exec = exec_          # a global of the module, found before the builtin
    return tables


def write(path: str = PATH) -> int:
    """Imports every module of our packages with empty tables installed and writes what they compiled
    (the tables of this interpreter).  Returns the number of texts."""
    tables = install(tables={})
    for package in PACKAGES:
        try:
            root = importlib.import_module(package)
        except ImportError:
            continue
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            if info.name.endswith("__main__"):
                continue
            try:
                importlib.import_module(info.name)
            except Exception:         # a module that needs what this machine lacks: its classes compile at use
                continue
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(importlib.util.MAGIC_NUMBER)
        marshal.dump({module: marshal.dumps(table) for module, table in tables.items()}, f)
    os.chmod(tmp, 0o644)              # read by every process of the box, like the bytecode beside it
    os.replace(tmp, path)
    return sum(map(len, tables.values()))
