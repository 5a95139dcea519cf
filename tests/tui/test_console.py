"""The console driven as a person would: keys against a real agent, and
`capbox run` on a terminal (tmux) with the screen read back."""
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid

import pytest

from firmware import sign
from firmware.keyring import Keyring
from tests.agent.conftest import free_port, wait_for
from tests.firmware.conftest import make_image
from tests.conftest import ROOT, pcap
from tui.app import CapboxApp
from tui.source import remote


async def test_keys_change_the_agent(agent):
    app = CapboxApp(remote(agent.url, agent.key), refresh_s=0.1)
    c = agent.client
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.5)
        await pilot.press("s")                    # idle: the start dialog
        await pilot.pause(0.5)
        await pilot.press(*"demo", "enter")
        await pilot.pause(1.0)
        # the actions run in workers the app's loop starts: wait without blocking that loop
        await wait_for_async(pilot, lambda: c.capture_status()["running"], timeout=20)
        await pilot.press("b")
        await pilot.press(*"tcp or udp", "enter")
        await wait_for_async(pilot, lambda: c.capture_status()["bpf"] == "tcp or udp", timeout=20)
        await pilot.press("w")
        await pilot.press(*"5", "enter")
        await wait_for_async(pilot, lambda: c.status()["system"]["window_size"] == 5, timeout=20)
        await pilot.press("f")
        await pilot.pause(1.0)
        assert app.screen.name == "flows"
        await pilot.press("s")                    # running: stops
        await wait_for_async(pilot, lambda: not c.capture_status()["running"], timeout=20)
        assert c.capture_status()["last_run"]["reason"] == "console"


async def test_verify_a_firmware_image_by_path(make_agent, tmp_path):
    """System screen, v: the agent verifies an image in its firmware directory; the verdict is shown, a
    damaged image is refused with its reason, a path outside the directory is an error, not a crash."""
    fw_dir = tmp_path / "var" / "firmware"
    vendor = sign.generate()
    Keyring().add(vendor.public_key(), fw_dir / "keys")
    data = make_image(b"bitstream" * 1000, "2.1.0", 6)
    (fw_dir / "v2.img").write_bytes(data)
    (fw_dir / "v2.img.minisig").write_text(vendor.sign(data, "release 2.1.0").to_text())
    (fw_dir / "bad.img").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    (fw_dir / "bad.img.minisig").write_text((fw_dir / "v2.img.minisig").read_text())
    a = make_agent("[capture]\nautostart = false\n")
    app = CapboxApp(remote(a.url, a.key), refresh_s=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("y")
        await pilot.pause(0.5)
        for path in ("v2.img", "bad.img", "../../outside.img"):
            await pilot.press("v")
            await pilot.pause(0.3)
            await pilot.press(*path, "enter")
            await wait_for_async(pilot, lambda: any(path in n.message for n in app._notifications))
        said = [n.message for n in app._notifications]
        assert any(m.startswith("v2.img: valid, capbox-fpga1 2.1.0 rollback 6") and "release 2.1.0" in m
                   for m in said), said
        assert any(m.startswith("bad.img: REFUSED (hash_mismatch)") for m in said), said
        assert any(m.startswith("verify ../../outside.img:") for m in said), said
        assert app.screen.name == "system" and app.is_running
        assert "system: not running from a disk image" in str(app.screen.query_one("#firmware").render())
        await pilot.press("e", "e")                 # the log, warnings and worse only
        await wait_for_async(pilot, lambda: "warning; e to change" in str(app.screen.query_one("#log-caption").render()))
        await pilot.pause(0.5)
        shown = str(app.screen.query_one("#log").render()).splitlines()
        assert all(line.startswith(("warn", "erro")) for line in shown if line.strip()), shown


async def wait_for_async(pilot, predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await pilot.pause(0.1)


async def test_calls_of_a_sip_capture_and_their_ladder(agent):
    """The agent replays a SIP capture; the Calls screen lists its dialogs and draws the highlighted one."""
    agent.client.capture_start(file=agent.pcap(pcap("ndpi__sip.pcap")))
    wait_for(lambda: agent.client.get("/v1/calls")["total"] == 6, timeout=30)
    app = CapboxApp(remote(agent.url, agent.key), refresh_s=0.1)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("l")
        await pilot.pause(1.0)
        screen = app.screen
        assert len(screen.rows) == 6
        invite = next(i for i, c in enumerate(screen.rows) if c["method"] == "INVITE")
        await pilot.press(*["down"] * invite)
        await pilot.pause(1.0)
        flow = str(screen.query_one("#call-flow").render())
        assert f"Call-ID {screen.rows[invite]['call_id']}  INVITE" in flow and "|" in flow


class Tmux:
    """`capbox run` on an 80x24 terminal of a private tmux server: keys in, screen text out."""

    def __init__(self, tmp_path, *args):
        self.cmd = ["tmux", "-L", f"capbox-test-{uuid.uuid4().hex[:8]}"]
        run = f"cd {ROOT} && {sys.executable} -m agent run --data-dir {tmp_path} --listen 127.0.0.1:{free_port()}"
        env = dict(os.environ, TERM="xterm-256color")
        subprocess.run([*self.cmd, "new-session", "-d", "-s", "box", "-x", "80", "-y", "24", " ".join([run, *args])],
                       check=True, env=env)

    def screen(self) -> str:
        return subprocess.run([*self.cmd, "capture-pane", "-t", "box", "-p"], capture_output=True, text=True).stdout

    def keys(self, *keys) -> None:
        subprocess.run([*self.cmd, "send-keys", "-t", "box", *keys], check=True)

    def gone(self) -> bool:
        return subprocess.run([*self.cmd, "has-session", "-t", "box"], capture_output=True).returncode != 0

    def close(self) -> None:
        subprocess.run([*self.cmd, "kill-server"], capture_output=True)
        time.sleep(0.2)


needs_tmux = pytest.mark.skipif(not shutil.which("tmux"), reason="tmux is not installed (make test installs it)")


@needs_tmux
def test_capbox_run_on_a_terminal(tmp_path):
    """`capbox run` in tmux: the console in the agent's process, counters moving on the demo capture."""
    term = Tmux(tmp_path)
    try:
        def packets() -> int:
            for line in term.screen().splitlines():
                if "packets/s" in line:
                    return int(float(line.split("packets ")[-1].split()[0].rstrip("k")))
            return -1
        wait_for(lambda: "capturing: pcapfile on demo.pcap" in term.screen(), timeout=30)
        first = wait_for(lambda: packets() > 0 and packets(), timeout=20)
        wait_for(lambda: packets() > first, timeout=20)
        assert "components  store ok" in term.screen()
        term.keys("f")
        wait_for(lambda: "src" in term.screen() and "dport" in term.screen(), timeout=10)
        term.keys("q")
        wait_for(term.gone, timeout=20)
        runs = sqlite3.connect(tmp_path / "capbox.db").execute("SELECT reason FROM capture_runs").fetchall()
        assert runs == [("shutdown",)]  # q closed the console, and with it the agent, cleanly
    finally:
        term.close()


@needs_tmux
def test_a_threat_from_an_attack_capture_on_the_terminal(tmp_path):
    """A weak-TLS capture replayed: the threat appears on the Threats screen, k acknowledges it in the store."""
    (tmp_path / "pcaps").mkdir()
    shutil.copy(pcap("zeek__tls_ssl.v3.pcap"), tmp_path / "pcaps")
    term = Tmux(tmp_path, "--source", "zeek__tls_ssl.v3.pcap")
    try:
        wait_for(lambda: "components  store ok" in term.screen(), timeout=30)  # the console is up
        term.keys("t")
        def row() -> str:
            return next((line for line in term.screen().splitlines() if "tls_downgrade  194.127.84.106" in line), "")
        wait_for(row, timeout=20)
        assert "high" in row() and row().rstrip().endswith("new")
        assert "RC4" in term.screen()              # the detail pane: why
        term.keys("k")
        wait_for(lambda: "acknowledged" in term.screen(), timeout=10)
        db = sqlite3.connect(tmp_path / "capbox.db")
        assert db.execute("SELECT attack_type, status FROM threats").fetchall() == [("tls_downgrade", "acknowledged")]
        term.keys("q")
        wait_for(term.gone, timeout=20)
    finally:
        term.close()
