"""Firmware fixtures: a payload, key pairs, images built and signed the way a
vendor does it, and the real minisign binary as the oracle."""
import os
import shutil
import subprocess

import sys

import pytest

from firmware import image, sign
from tests.conftest import ROOT

TARGET = "capbox-fpga1"


@pytest.fixture(scope="session")
def minisign_bin():
    exe = shutil.which("minisign")
    if not exe:
        pytest.skip("minisign is not installed (make test installs it)")
    return exe


def run(*argv, input=None, cwd=None, check=True):
    p = subprocess.run(argv, capture_output=True, text=True, input=input, cwd=cwd, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"{argv} exited {p.returncode}: {p.stdout}{p.stderr}")
    return p


@pytest.fixture(scope="session")
def payload():
    return bytes((i * 131 + 7) & 0xFF for i in range(5000)) + os.urandom(3000)


@pytest.fixture(scope="session")
def key():
    return sign.generate()


@pytest.fixture(scope="session")
def other_key():
    return sign.generate()


def make_image(payload: bytes, version: str = "1.4.2", rollback: int = 7, target: str = TARGET) -> bytes:
    return image.build(payload, target, version, rollback, build_time=1_790_000_000)


@pytest.fixture(scope="session")
def signed(payload, key):
    """(image bytes, signature text) signed prehashed by `key`."""
    data = make_image(payload)
    return data, key.sign(data, sign.default_trusted_comment("fw.img", image.parse_header(data))).to_text()


def capbox(*argv, cwd=None, status=0, env=None):
    """`capbox ARGS` as the operator runs it; asserts the exit status."""
    p = subprocess.run([sys.executable, "-m", "agent", *argv], capture_output=True, text=True, cwd=cwd,
                       timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT), **(env or {})))
    assert p.returncode == status, f"capbox {' '.join(argv)} exited {p.returncode}: {p.stdout}{p.stderr}"
    return p
