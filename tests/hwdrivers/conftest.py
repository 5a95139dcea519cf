"""Live-capture helpers: the offline truth live captures are held to.
(The `veth` fixture is in tests/conftest.py, from tests/netns.py.)"""
import functools
import json
import subprocess
import sys

from agent import report
from tests.conftest import ROOT

CAPBOX = [sys.executable, "-m", "agent"]


@functools.lru_cache(maxsize=None)
def offline_report(path: str, bpf: str = "") -> dict:
    """The offline report of a file, the ground truth live captures are held to:
    agent.report.analyze, the function behind `capbox analyze`, as its --json
    prints it (in-process: a subprocess per file would cost a third of a second)."""
    return json.loads(json.dumps(report.analyze(path, report.Options(bpf=bpf))))


def cli_offline_report(path: str) -> dict:
    """`capbox analyze --json FILE`, run as the operator runs it."""
    p = subprocess.run([*CAPBOX, "analyze", "--json", path], capture_output=True, text=True,
                       cwd=ROOT, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@functools.lru_cache(maxsize=None)
def offline_flows(path: str, bpf: str = "") -> tuple:
    """The rows `capbox flows --json` prints for a file (agent.report.flows)."""
    errors = []
    rows = tuple(r.as_dict() for r in report.flows(path, report.Options(bpf=bpf), errors))
    assert not errors, errors
    return rows
