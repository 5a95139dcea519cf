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

from tests.agent.conftest import free_port, wait_for
from tests.conftest import ROOT
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
        assert wait_for(lambda: c.capture_status()["running"], timeout=10)
        await pilot.press("b")
        await pilot.press(*"tcp or udp", "enter")
        wait_for(lambda: c.capture_status()["bpf"] == "tcp or udp", timeout=10)
        await pilot.press("w")
        await pilot.press(*"5", "enter")
        wait_for(lambda: c.get("/v1/status")["system"]["window_size"] == 5, timeout=10)
        await pilot.press("f")
        await pilot.pause(1.0)
        assert app.screen.name == "flows"
        await pilot.press("s")                    # running: stops
        wait_for(lambda: not c.capture_status()["running"], timeout=10)
        assert c.capture_status()["last_run"]["reason"] == "console"


@pytest.mark.skipif(not shutil.which("tmux"), reason="tmux is not installed (make test installs it)")
def test_capbox_run_on_a_terminal(tmp_path):
    """`capbox run` in tmux: the console in the agent's process, counters moving on the demo capture."""
    sock = f"capbox-test-{uuid.uuid4().hex[:8]}"
    tmux = ["tmux", "-L", sock]
    port = free_port()
    cmd = f"cd {ROOT} && {sys.executable} -m agent run --data-dir {tmp_path} --listen 127.0.0.1:{port}"
    env = dict(os.environ, TERM="xterm-256color")
    subprocess.run([*tmux, "new-session", "-d", "-s", "box", "-x", "80", "-y", "24", cmd], check=True, env=env)
    try:
        def screen() -> str:
            return subprocess.run([*tmux, "capture-pane", "-t", "box", "-p"], capture_output=True, text=True).stdout

        def packets() -> int:
            for line in screen().splitlines():
                if "packets/s" in line:
                    return int(float(line.split("packets ")[-1].split()[0].rstrip("k")))
            return -1
        wait_for(lambda: "capturing: pcapfile on demo.pcap" in screen(), timeout=30)
        first = wait_for(lambda: packets() > 0 and packets(), timeout=20)
        wait_for(lambda: packets() > first, timeout=20)
        assert "components  store ok" in screen()
        subprocess.run([*tmux, "send-keys", "-t", "box", "f"], check=True)
        wait_for(lambda: "src" in screen() and "dport" in screen(), timeout=10)
        subprocess.run([*tmux, "send-keys", "-t", "box", "q"], check=True)
        wait_for(lambda: subprocess.run([*tmux, "has-session", "-t", "box"], capture_output=True).returncode != 0,
                 timeout=20)
        runs = sqlite3.connect(tmp_path / "capbox.db").execute("SELECT reason FROM capture_runs").fetchall()
        assert runs == [("shutdown",)]  # q closed the console, and with it the agent, cleanly
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
        time.sleep(0.2)
