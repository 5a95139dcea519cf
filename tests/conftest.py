"""Shared fixtures: the real captures of ../shared/pcaps, fpga-sim, collectors, and small helpers."""
import itertools
import json
import os
import pathlib
import shutil
import subprocess

import pytest

from tests.collector import Nfcapd
from tests.netns import make_veth

ROOT = pathlib.Path(__file__).resolve().parent.parent
PCAPS = (ROOT.parent / "shared" / "pcaps").resolve()
GENPCAP = (ROOT.parent / "shared" / "bench" / "genpcap.c").resolve()
ALL_PCAPS = sorted(p for p in PCAPS.glob("*.pcap*")) if PCAPS.is_dir() else []
TUNNEL_PCAPS = sorted(p for p in (PCAPS / "tunnels").glob("*.pcap*")) if PCAPS.is_dir() else []


def pcap(name: str) -> str:
    path = PCAPS / name
    if not path.exists() and (PCAPS / "tunnels" / name).exists():
        path = PCAPS / "tunnels" / name
    if not path.exists():
        pytest.skip(f"{path} is not here")
    return str(path)


@pytest.fixture(scope="session")
def tshark():
    exe = shutil.which("tshark")
    if not exe:
        pytest.skip("tshark is not installed (make test installs it)")
    return exe


@pytest.fixture
def veth(request):
    """A fresh network namespace with a veth pair (tests/netns.py)."""
    return make_veth(request)


_cards = itertools.count()
CARD_TARGET = "capbox-fpga1"


def card_path() -> str:
    """A fresh device path for an fpga-sim card of this test process."""
    return f"/dev/shm/capbox-test-{os.getpid()}-{next(_cards)}"


@pytest.fixture
def card():
    """fpga-sim fed from a small capture, in this process, no firmware yet: its device path."""
    from hwdrivers.fpgasim import Simulator
    with Simulator(pcap("zeek__wikipedia.pcap"), device=card_path(), target=CARD_TARGET, desc_count=1024,
                   data_mb=1, flow_entries=1024) as sim:
        yield sim.device


@pytest.fixture
def nfcapd(tmp_path):
    """Start nfcapd collectors on loopback (tests/collector.py); all stopped at the end."""
    made = []

    def start(name: str = "nfcapd") -> Nfcapd:
        c = Nfcapd(tmp_path / name)
        made.append(c)
        return c
    yield start
    for c in made:
        c.stop()


@pytest.fixture(scope="session")
def synthetic_pcap(tmp_path_factory):
    """A small capture from the shared generator (../shared/bench/genpcap.c):
    TCP, failed TCP, DNS, UDP, ICMP and ICMPv6 echo, IPv6 clients, 802.1Q tags,
    a minute long;
    returns (path, truth dict)."""
    if not GENPCAP.exists() or not shutil.which("gcc"):
        pytest.skip("the shared generator or gcc is not here")
    d = tmp_path_factory.mktemp("genpcap")
    exe = d / "genpcap"
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(GENPCAP), "-lm"], check=True, capture_output=True)
    out = d / "synthetic.pcap"
    subprocess.run([str(exe), "-n", "20000", "-f", "1500", "-d", "60", "-o", str(out)], check=True, capture_output=True)
    return str(out), json.loads((d / "synthetic.pcap.truth.json").read_text())
