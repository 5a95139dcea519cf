"""`capbox detect` runs its detectors in the live agent's consumer worker
(agent.consumers.Worker, agent.consumers.work offline): what it finds
and counts is what the pipeline finds in one process, however full the ring
gets, and a worker that dies makes detect fail, never hang."""
import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from agent import consumers
from agent.config import DetectionSection
from agent.consumers import Worker, WorkerFailed
from agent.detectors.offline import aggregate, detect_file
from tests.conftest import ALL_PCAPS, ROOT, pcap
from tests.detectors import dnsstream
from tests.detectors.scenarios import SCENARIOS

CFG = DetectionSection()
KEYS = ("type", "severity", "confidence", "src", "dst", "protocol", "description", "evidence", "first_seen",
        "attacker", "attacker_mac", "score")


def _facts(found: list) -> list:
    return [json.dumps(vars(d), sort_keys=True, default=str) for d in found]


def _both(path: str) -> tuple:
    """(the worker's detections, error, counts, gate; the same from one process)."""
    worker = Worker()
    try:
        found, error, counts, gate = worker.detect(path, CFG)
    finally:
        worker.close()
    want, want_error, pipeline = detect_file(path, CFG)
    return (_facts(found), str(error), counts, gate), (_facts(want), str(want_error), pipeline.counts(),
                                                       pipeline.dns_gate)


def _capbox(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "agent", "detect", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_capbox_detect_prints_what_the_pipeline_finds_in_one_process():
    path = pcap("zeek__tls_ssl.v3.pcap")
    p = _capbox("--json", path)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    found, _, _ = detect_file(path, CFG)
    rows = [json.loads(json.dumps({**{k: getattr(t["detection"], k) for k in KEYS}, "count": t["count"],
                                   "first_seen": t["first_seen"], "last_seen": t["last_seen"]}, default=str))
            for t in aggregate(found)]
    assert [json.loads(line) for line in out.splitlines()] == rows
    [row] = rows                               # the known finding (tests/detectors/test_detectors.py)
    assert (row["type"], row["src"], row["evidence"]["version"]) == ("tls_downgrade", "194.127.84.106", "TLS 1.0")


def test_capbox_detect_summary_counts_come_from_the_worker(tmp_path):
    path = str(dnsstream.stream(3).write(tmp_path))
    p = _capbox(path)
    _, err = p.communicate(timeout=120)
    assert p.returncode in (0, 2), err
    _, _, pipeline = detect_file(path, CFG)
    raised = ", ".join(f"{d.name} {d.counts['raised']}" for d in pipeline.detectors)
    gate = pipeline.dns_gate
    assert f"({raised}); {gate['folded']:,} of {gate['held']:,} DNS queries folded" in err


def test_every_shared_capture_and_scenario_alike_in_the_worker(tmp_path):
    paths = [str(p) for p in ALL_PCAPS] + [str(make().write(tmp_path)) for make in SCENARIOS]
    paths += [str(dnsstream.stream(seed).write(tmp_path)) for seed in range(2)]
    for path in paths:
        got, want = _both(path)
        assert got == want, path


def test_a_full_ring_waits_and_loses_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(consumers, "OFFLINE_RING", 3)     # the least room (two of the largest records): waits all along
    path = str(dnsstream.stream(5).write(tmp_path))
    got, want = _both(path)
    assert got == want
    assert want[3]["folded"] > 0 and len(want[0]) > 0


def _child(pid: int, timeout: float = 30.0) -> psutil.Process:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        kids = psutil.Process(pid).children()
        if kids:
            return kids[0]
        time.sleep(0.01)
    raise AssertionError("no worker started")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_worker_killed_mid_file_fails_detect_with_a_clear_error(tmp_path, sig):
    src = tmp_path / "dns.pcap"
    subprocess.run([sys.executable, str(ROOT / "bench" / "gendns.py"), str(src), "40000", "-1"], check=True)
    p = _capbox(str(src))
    worker = _child(p.pid)
    while sum(worker.cpu_times()[:2]) < 0.3:   # past its imports: taking events (80,000 of them take it seconds)
        assert p.poll() is None, p.communicate()
        time.sleep(0.01)
    os.kill(worker.pid, signal.SIGSTOP)    # the ring fills, the reader waits for room ...
    time.sleep(0.3)
    assert p.poll() is None
    os.kill(worker.pid, sig)               # ... and sees it die
    os.kill(worker.pid, signal.SIGCONT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 1, err
    assert f"capbox: error: the detector worker (pid {worker.pid}) was killed by signal {sig.value} before the end " \
           "of the file" in err
    assert out == "" and "threats from" not in err


def test_a_worker_gone_before_the_file_is_an_error_not_a_hang():
    worker = Worker()
    worker.proc.kill()
    worker.proc.wait()                     # gone: the section cannot even be sent
    try:
        with pytest.raises(WorkerFailed, match="killed by signal 9"):
            worker.detect(pcap("zeek__tls_ssl.v3.pcap"), CFG)
    finally:
        worker.close()


def test_the_worker_is_this_checkouts_whatever_the_working_directory(tmp_path):
    """The worker starts as `python -m agent.consumers`: an `agent` package in the working directory (another
    checkout) must not be the one it runs."""
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / "__init__.py").write_text("raise SystemExit('the wrong agent')\n")
    path = pcap("zeek__tls_ssl.v3.pcap")
    p = subprocess.run([os.path.join(os.path.dirname(sys.executable), "capbox"), "detect", path], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "1 threats from 1 findings" in p.stderr, p.stderr
