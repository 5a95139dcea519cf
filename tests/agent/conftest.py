"""A running agent as a subprocess on a free loopback port, and a client for it."""
import http.client
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from agent.client import ApiError, Client
from tests.conftest import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AgentProcess:
    """`capbox run` as a subprocess; with a veth (tests/netns.py) it runs in that
    namespace, and `call` runs client code there too."""

    def __init__(self, data_dir: pathlib.Path, config: str = "", env: dict = None, veth=None, tls=None):
        self.call = veth.call if veth else (lambda fn, *args, **kw: fn(*args, **kw))
        prefix = veth.argv() if veth else []
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / "pcaps").mkdir(exist_ok=True)
        self.config = data_dir / "capbox.toml"
        self.config.write_text(config)
        self.log = open(data_dir / "agent.log", "wb")
        e = dict(os.environ, **(env or {}))
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "agent", "run", "--config", str(self.config), "--data-dir", str(data_dir),
             "--listen", f"127.0.0.1:{self.port}"], cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, env=e,
            start_new_session=True)     # a process group of its own, as a shell gives a command it runs
        self.key = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"agent exited: {self.output()}")
            key_file = data_dir / "admin.key"
            try:
                if tls is not None:   # an ssl.SSLContext: the API speaks HTTPS
                    self.call(_https_get, self.port, tls)
                else:
                    self.call(Client(self.url, timeout=2).raw, "GET", "/v1/health")
                if key_file.exists():
                    self.key = key_file.read_text().strip()
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"agent did not come up: {self.output()}")
        self.client = Client(self.url, self.key)

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return (self.data_dir / "agent.log").read_text(errors="replace")

    def pcap(self, source: str) -> str:
        """Copy a capture into the agent's capture directory; its name there."""
        shutil.copy(source, self.data_dir / "pcaps")
        return os.path.basename(source)

    def stop(self, sig=signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def _https_get(port: int, context) -> int:
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=2, context=context)
    try:
        conn.request("GET", "/v1/health")
        return conn.getresponse().status
    finally:
        conn.close()


IDLE = '[capture]\nautostart = false\n'


@pytest.fixture
def agent(tmp_path):
    """An agent with no capture running."""
    a = AgentProcess(tmp_path / "var", IDLE)
    yield a
    a.stop()


@pytest.fixture
def make_agent(tmp_path):
    made = []

    def make(config: str = IDLE, env: dict = None, name: str = "var", veth=None, tls=None):
        a = AgentProcess(tmp_path / name, config, env, veth, tls)
        made.append(a)
        return a
    yield make
    for a in made:
        a.stop()


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


__all__ = ["AgentProcess", "ApiError", "Client", "wait_for"]
