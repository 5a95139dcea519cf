"""agent.codecache: the image's dataclass methods compiled at build time are taken instead of compiled
at every import, and they are the same methods (each process here a real interpreter)."""
import json
import marshal
import subprocess
import sys

from agent import codecache

# the agent's start, then each of its dataclasses' generated methods, by class and method
SIGNATURES = r"""
import dataclasses, json, sys
from agent import codecache
if sys.argv[1] != "-":
    assert codecache.install(sys.argv[1])
import agent.cli.box, agent.config, agent.firstboot, agent.runtime, agent.api.rest
out = {}
for name, mod in sorted(sys.modules.items()):
    for cls in list(vars(mod).values()):
        if isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls.__module__ == name:
            for meth in ("__init__", "__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__"):
                code = getattr(vars(cls).get(meth), "__code__", None)
                if code is not None and code.co_filename == "<string>":
                    out[f"{name}.{cls.__qualname__}.{meth}"] = [code.co_code.hex(), repr(code.co_consts),
                                                                  code.co_names, code.co_varnames]
print(json.dumps({"hits": codecache.hits, "methods": out}))
"""


def run(*args) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-c", *args], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p


def test_recorded_methods_are_taken_and_are_the_ones_compiled(tmp_path):
    path = tmp_path / "share" / "dataclasses.marshal"
    p = run(f"from agent import codecache; print(codecache.record({str(path)!r}))")
    assert int(p.stdout) > 300
    cached = json.loads(run(SIGNATURES, str(path)).stdout)
    compiled = json.loads(run(SIGNATURES, "-").stdout)
    assert compiled["hits"] == 0
    assert len(compiled["methods"]) > 300
    assert cached["methods"] == compiled["methods"]
    assert cached["hits"] >= len(compiled["methods"])     # every one of them taken from the file (and more)


def test_no_file_or_another_pythons_changes_nothing(tmp_path):
    assert not codecache.install(str(tmp_path / "missing"))
    (tmp_path / "other").write_bytes(marshal.dumps((b"\x00\x00\r\n", {})))
    assert not codecache.install(str(tmp_path / "other"))
    (tmp_path / "junk").write_bytes(b"not marshal")
    assert not codecache.install(str(tmp_path / "junk"))
    import dataclasses
    assert "exec" not in vars(dataclasses)


def test_a_text_not_recorded_is_compiled(tmp_path):
    path = tmp_path / "dataclasses.marshal"
    path.write_bytes(marshal.dumps((__import__("importlib.util").util.MAGIC_NUMBER, {})))
    p = run(f"""
import dataclasses
from agent import codecache
assert codecache.install({str(path)!r})
@dataclasses.dataclass(frozen=True)
class P:
    x: int
    y: tuple = dataclasses.field(default_factory=tuple)
a, b = P(1), P(1)
assert a == b and hash(a) == hash(b) and repr(a) == "P(x=1, y=())"
try:
    a.x = 2
except dataclasses.FrozenInstanceError:
    print(codecache.hits)
""")
    assert p.stdout.strip() == "0"
