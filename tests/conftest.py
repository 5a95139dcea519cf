"""Shared fixtures: the real captures of ../shared/pcaps and small helpers."""
import pathlib
import shutil

import pytest

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
