"""The dataclasses' methods from the build's compiled code (hwdrivers/dataclasscode.py): the same classes,
no text compiled at a start, and a file that is not this interpreter's is not read."""
import dataclasses
import importlib.util
import marshal
import subprocess
import sys

import pytest

from hwdrivers import dataclasscode
from tests.conftest import ROOT


@pytest.fixture
def table():
    """A table of this test's own, the process's put back after."""
    before = dataclasses.exec
    yield dataclasscode.install(tables={})
    dataclasses.exec = before


def make(name: str):
    @dataclasses.dataclass(frozen=True)
    class Point:
        x: int
        y: int = 0
        tags: list = dataclasses.field(default_factory=list, compare=False)
    Point.__qualname__ = name
    return Point


def test_a_class_made_from_kept_code_behaves_as_one_compiled(table):
    first = make("First")
    kept = len(table[__name__])
    assert kept >= 6               # __init__, __repr__, __eq__, __setattr__, __delattr__, __hash__
    second = make("Second")
    assert len(table[__name__]) == kept      # the same texts: nothing compiled again
    assert second.__init__.__code__ is first.__init__.__code__
    p, q = second(1), second(1, 0, ["a"])
    assert p == q and hash(p) == hash(q) and p != second(2)
    assert repr(p) == "Second(x=1, y=0, tags=[])" and p.tags is not second(1).tags
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.x = 3
    assert first(1) != p           # another class: __eq__ checks it as ever


def test_the_agents_start_compiles_no_dataclass_text(tmp_path):
    """What make build writes holds every text `capbox run` compiles (a clean interpreter reads it)."""
    path = tmp_path / "codes.bin"
    code = f"""
import sys
from hwdrivers import dataclasscode
if sys.argv[1] == "write":
    print(dataclasscode.write({str(path)!r}))
else:
    dataclasscode.install({str(path)!r})
    compiled = []
    dataclasscode.compile = lambda *args, **kwargs: compiled.append(args[0]) or compile(*args, **kwargs)
    import agent.cli, agent.runtime, agent.api.rest, agent.consumers, agent.logs.indexer, dataclasses
    @dataclasses.dataclass
    class New:
        never_seen_before: int
    print(len(compiled))
"""
    written = subprocess.run([sys.executable, "-c", code, "write"], cwd=ROOT, capture_output=True, text=True,
                             timeout=120, check=True)
    assert int(written.stdout) > 500
    assert path.stat().st_mode & 0o777 == 0o644
    read = subprocess.run([sys.executable, "-c", code, "read"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=True)
    assert int(read.stdout) == 3   # New's __init__, __repr__ and __eq__, and nothing of ours


@pytest.mark.parametrize("content", [b"", b"\x00\x01\x02\x03" + marshal.dumps({}), b"garbage",
                                     importlib.util.MAGIC_NUMBER + b"\xff\xfe",
                                     importlib.util.MAGIC_NUMBER + marshal.dumps([1, 2]),
                                     importlib.util.MAGIC_NUMBER + marshal.dumps({__name__: b"broken"})])
def test_a_file_not_of_this_interpreter_or_broken_is_not_read(tmp_path, content):
    path = tmp_path / "codes.bin"
    path.write_bytes(content)
    before = dataclasses.exec
    try:
        tables = dataclasscode.install(str(path))
        third = make("Third")
        assert third(1) == third(1) and repr(third(2)) == "Third(x=2, y=0, tags=[])"
        assert len(tables[__name__]) == 6                 # compiled here
    finally:
        dataclasses.exec = before
