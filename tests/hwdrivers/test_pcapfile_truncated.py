"""A capture file cut short while it is replayed ends the capture with a
TRUNCATED error; the process lives (a mapping of it used to die of SIGBUS).
Each case runs in a child process so that a signal is a failed assertion."""
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT, pcap

SCRIPT = textwrap.dedent("""
    import os, sys
    from hwdrivers import CaptureConfig, CaptureError, Session
    path, loop, cut = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
    with Session(CaptureConfig(source=path, loop=loop)) as s:
        s.run(max_packets=2000)
        os.truncate(path, cut)
        try:
            for _ in range(10000):
                s.run(max_packets=100000, timeout_ms=2000)
        except CaptureError as e:
            print("ERROR", e.code.name, e.message)
            sys.exit(0)
    print("NO ERROR")
""")


def _replay(path, loop: bool, cut: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT, str(path), "1" if loop else "0", str(cut)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_looping_replay_of_a_file_cut_short(tmp_path):
    path = tmp_path / "cut.pcap"
    shutil.copy(pcap("ndpi__1kxun.pcap"), path)
    path.chmod(0o600)
    p = _replay(path, True, 100000)
    assert p.returncode == 0, (p.returncode, p.stderr[-2000:])
    assert "ERROR TRUNCATED" in p.stdout and "cut short" in p.stdout


def test_replay_of_a_large_file_cut_short_between_windows(tmp_path):
    data = open(pcap("ndpi__1kxun.pcap"), "rb").read()
    path = tmp_path / "big.pcap"
    with open(path, "wb") as f:      # over one 64 MB read window
        f.write(data)
        while f.tell() < 70 << 20:
            f.write(data[24:])
    p = _replay(path, False, 1 << 20)
    assert p.returncode == 0, (p.returncode, p.stderr[-2000:])
    assert "ERROR TRUNCATED" in p.stdout
