"""Shared fixtures: the real captures of ../shared/pcaps, fpga-sim, and small helpers."""
import itertools
import os
import pathlib
import shutil

import pytest

from tests.netns import make_veth

ROOT = pathlib.Path(__file__).resolve().parent.parent
PCAPS = (ROOT.parent / "shared" / "pcaps").resolve()
ALL_PCAPS = sorted(p for p in PCAPS.glob("*.pcap*")) if PCAPS.is_dir() else []


def pcap(name: str) -> str:
    path = PCAPS / name
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
