"""Shared fixtures: the real captures of ../shared/pcaps and small helpers."""
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
