"""The console's CPU share while the agent replays the demo capture at full
speed (pace 0, looping): `capbox run --headless` in one process, `capbox tui`
attached to it over REST on an 80x24 tmux terminal in another, each screen
shown in turn; CPU seconds of each process (psutil) over the same wall time.

    python bench/tui_cpu.py [--seconds 36] [--markdown] [--results bench/RESULTS.md]

The TUI here polls the agent over HTTP (the remote case); inside `capbox run`
on a terminal it calls the agent's WSGI app in-process, which costs less."""
import argparse
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

import psutil

from sections import markers, write_section

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCREENS = "oftaly"   # overview, flows, threats, anomalies, calls, system
BEGIN, END = markers("tui")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    total = t.user + t.system
    for c in p.children(recursive=True):
        try:
            ct = c.cpu_times()
            total += ct.user + ct.system
        except psutil.NoSuchProcess:
            pass
    return total


def measure(seconds: float) -> dict:
    data = pathlib.Path(tempfile.mkdtemp(prefix="capbox-tui-bench-"))
    (data / "capbox.toml").write_text("[capture]\npace = 0.0\nloop = true\n")
    port = free_port()
    agent = subprocess.Popen([sys.executable, "-m", "agent", "run", "--headless", "--config", str(data / "capbox.toml"),
                              "--data-dir", str(data), "--listen", f"127.0.0.1:{port}"], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tmux = ["tmux", "-L", f"capbox-bench-{uuid.uuid4().hex[:8]}"]
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/v1/health", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the agent did not answer")
                time.sleep(0.2)
        key = (data / "admin.key").read_text().strip()
        cmd = f"cd {ROOT} && exec {sys.executable} -m agent tui --url {url} --key {key}"
        subprocess.run([*tmux, "new-session", "-d", "-s", "b", "-x", "80", "-y", "24", cmd], check=True,
                       env=dict(os.environ, TERM="xterm-256color"))
        pane_pid = int(subprocess.run([*tmux, "display", "-p", "-t", "b", "#{pane_pid}"], capture_output=True,
                                      text=True, check=True).stdout)
        tui = psutil.Process(pane_pid)
        ag = psutil.Process(agent.pid)
        time.sleep(3)   # started, first screen drawn
        t0, a0, u0 = time.monotonic(), cpu(ag), cpu(tui)
        per = seconds / len(SCREENS)
        by_screen = {}
        for key_ in SCREENS:
            s0 = cpu(tui)
            subprocess.run([*tmux, "send-keys", "-t", "b", key_], check=True)
            time.sleep(per)
            by_screen[key_] = (cpu(tui) - s0) / per
        wall = time.monotonic() - t0
        a1, u1 = cpu(ag), cpu(tui)
        packets = _packets(url, key)
        screen = subprocess.run([*tmux, "capture-pane", "-p", "-t", "b"], capture_output=True, text=True).stdout
        return {"wall_s": wall, "agent_cpu_s": a1 - a0, "tui_cpu_s": u1 - u0, "packets": packets,
                "tui_share": (u1 - u0) / wall, "agent_share": (a1 - a0) / wall, "by_screen": by_screen,
                "last_screen": screen}
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
        agent.terminate()
        try:
            agent.wait(20)
        except subprocess.TimeoutExpired:
            agent.kill()
        shutil.rmtree(data, ignore_errors=True)


def _packets(url: str, key: str) -> int:
    import json
    req = urllib.request.Request(f"{url}/v1/capture/status", headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)["stats"]["packets"]


def markdown(r: dict) -> str:
    names = dict(zip(SCREENS, ("overview", "flows", "threats", "anomalies", "calls", "system")))
    load = os.getloadavg()
    return "\n".join([
        BEGIN, "## Console: CPU share while the agent captures at full speed (`bench/tui_cpu.py`)", "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {load[0]:.1f} on "
        f"{os.cpu_count()} cores (the machine is shared). The agent replays the demo capture at pace 0, looping; "
        "`capbox tui` is attached over REST on an 80x24 tmux terminal and each screen is in front for an equal "
        "share of the time, refreshed 4 times a second.", "",
        "| process | CPU s | wall s | share of one core |", "|---|---:|---:|---:|",
        f"| agent (`capbox run --headless`) | {r['agent_cpu_s']:.2f} | {r['wall_s']:.1f} | {100 * r['agent_share']:.1f} % |",
        f"| console (`capbox tui`) | {r['tui_cpu_s']:.2f} | {r['wall_s']:.1f} | **{100 * r['tui_share']:.1f} %** |", "",
        "By screen (while in front): " + ", ".join(f"{names[k]} {100 * v:.1f} %" for k, v in r["by_screen"].items())
        + ". The agent captured " + f"{r['packets']:,} packets meanwhile. A looping replay at full speed raises the "
        "demo's threats and calls again on every loop, so the Threats and Calls tables change on every refresh: "
        "a harder case than a real network.", "",
        f"- **console under 10 % of one core while the agent captures at full rate**: {100 * r['tui_share']:.1f} %: "
        f"{'met' if r['tui_share'] < 0.10 else 'NOT met'}.", END, ""])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=36.0)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--results", metavar="FILE", help="write the section into this RESULTS.md")
    args = ap.parse_args()
    if not shutil.which("tmux"):
        raise SystemExit("tmux is needed (make test installs it)")
    r = measure(args.seconds)
    if args.markdown or args.results:
        text = markdown(r)
        print(text)
        if args.results:
            write_section(args.results, "tui", text)
    else:
        for k, v in r.items():
            if k != "last_screen":
                print(f"{k:>12}: {v:.3f}" if isinstance(v, float) else f"{k:>12}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
