"""The console over socket:// (a terminal server on loopback, pyserial at both
ends), over rfc2217:// (a pyserial RFC 2217 server serving a pty) and over a
pair of ttys made by socat; `capbox console --port` alone, attached to a
running agent over REST."""
import os
import shutil
import signal
import subprocess
import sys
import termios
import time

import pytest
import serial

from tests.agent.conftest import wait_for
from tests.conftest import ROOT
from tests.console.conftest import PASSWORD, PROMPT, FdEnd, SerialEnd, Terminal, assert_fits, set_password


def dial(url: str) -> Terminal:
    return Terminal(SerialEnd(serial.serial_for_url(url, timeout=0.2)))


def standalone_console(agent, port: str) -> subprocess.Popen:
    """`capbox console --port PORT` next to the agent: key and password from its data directory."""
    log = open(agent.data_dir / "console.log", "wb")
    return subprocess.Popen([sys.executable, "-m", "agent", "console", "--port", port, "--url", agent.url,
                             "--data-dir", str(agent.data_dir)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def test_standalone_console_over_socket_url(make_agent, relay):
    agent = make_agent()
    set_password(agent.data_dir)
    proc = standalone_console(agent, relay.url)
    try:
        term = dial(relay.url)
        term.login()
        out = term.run("status")
        assert_fits(out)
        assert out.startswith("capbox 0.1.0") and "capture   idle" in out
        assert term.run("capture start demo").startswith("capture started")
        assert agent.client.capture_status()["running"]          # through the agent's REST API
        assert "capture stopped" in term.run("capture stop")
        # the line drops: the console dials again by itself, the person too, and logs in again
        relay.drop()
        time.sleep(0.3)
        term = dial(relay.url)
        term.login()
        assert "0 of 0 threats" in term.run("threats")
        term.send("exit\r")
        term.expect("Logged out")
        assert proc.poll() is None
    finally:
        assert stop(proc) == 0
    log = (agent.data_dir / "console.log").read_text()
    assert "went away" in log and log.count("console on socket://") >= 2


def test_standalone_console_says_what_is_missing(make_agent, tmp_path):
    agent = make_agent()
    r = subprocess.run([sys.executable, "-m", "agent", "console", "--data-dir", str(agent.data_dir)], cwd=ROOT,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "give --port" in r.stderr
    r = subprocess.run([sys.executable, "-m", "agent", "console", "--port", "socket://127.0.0.1:1",
                        "--data-dir", str(tmp_path / "empty")], cwd=ROOT, capture_output=True, text=True, timeout=30,
                       env={k: v for k, v in os.environ.items() if k != "CAPBOX_KEY"})
    assert r.returncode == 1 and "no API key" in r.stderr


def test_agent_console_dials_an_rfc2217_terminal_server(console_agent, pty_pair, rfc2217_server):
    master, path, _ = pty_pair
    server = rfc2217_server(path)
    agent = console_agent(server.url, "baud = 9600\n")
    term = Terminal(FdEnd(master))
    term.expect(f"capbox console on {server.url}")
    assert termios.tcgetattr(master)[4] == termios.B9600      # the console's speed, set on the far device
    term.login()
    assert "capture   idle" in term.run("capture status")
    term.send(b"\xff\x00\xfe\r")       # 0xff is telnet's IAC: data all the same, escaped on the way
    term.expect("Line noise: 3 unreadable bytes, line ignored (is the terminal set to 9600 8N1?)")
    term.expect(PROMPT)
    server.drop()                         # the line drops: the console dials again
    term.expect(f"capbox console on {server.url}")
    term.login()
    assert term.run("status").startswith("capbox 0.1.0")
    detail = agent.client.health()["components"]["console"]
    assert detail["opens"] == 2 and server.accepted == 2 and detail["logins"] == 2 and detail["noise_bytes"] == 3
    assert agent.stop() == 0


@pytest.fixture
def socat_pair(tmp_path):
    """Two linked ttys made by socat: start() (again after stop()) makes them, a/b their paths."""
    if not shutil.which("socat"):
        pytest.skip("socat is not installed (make test installs it)")
    a, b = tmp_path / "ttyA", tmp_path / "ttyB"

    class Pair:
        proc = None

        def start(self):
            self.proc = subprocess.Popen(["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_for(lambda: a.exists() and b.exists(), timeout=10)

        def stop(self):
            if self.proc and self.proc.poll() is None:
                self.proc.terminate()
                self.proc.wait(10)
            wait_for(lambda: not a.exists(), timeout=10)

    pair = Pair()
    pair.a, pair.b = str(a), str(b)
    pair.start()
    yield pair
    pair.stop()


def test_agent_console_on_a_socat_tty_pair(console_agent, socat_pair):
    agent = console_agent(socat_pair.a)
    wait_for(lambda: agent.client.health()["components"]["console"]["state"] == "open", timeout=15)
    term = Terminal(SerialEnd(serial.Serial(socat_pair.b, 115200, timeout=0.2)))
    term.login()
    out = term.run("status")
    assert out.startswith("capbox 0.1.0") and "capture   idle" in out
    out = term.run("net show")
    assert_fits(out)
    assert "127.0.0.1" in out
    term.send("not the password either\r")       # a command line, not a password: unknown command
    term.expect("UNKNOWN_COMMAND")
    term.expect(PROMPT)

    # the device vanishes (socat gone, its ttys with it): the agent goes on, the console waits
    term.end.port.close()
    socat_pair.stop()
    wait_for(lambda: agent.client.health()["components"]["console"]["state"] in ("waiting", "reopening"), timeout=10)
    assert agent.client.get("/v1/ping")["pong"] and agent.proc.poll() is None
    # ... and comes back: the console reopens it and asks for the password again
    socat_pair.start()
    wait_for(lambda: agent.client.health()["components"]["console"]["state"] == "open", timeout=15)
    term = Terminal(SerialEnd(serial.Serial(socat_pair.b, 115200, timeout=0.2)))
    term.login(PASSWORD)
    assert "capture   idle" in term.run("capture status")
    detail = agent.client.health()["components"]["console"]
    assert detail["opens"] >= 2 and detail["logins"] == 2
    term.end.port.close()
    assert agent.stop() == 0
