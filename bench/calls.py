#!/usr/bin/env python3
"""bench/calls.py - offline job throughput on a large synthetic SIP + RTP
capture (bench/gensip.py), against `tshark -q -z rtp,streams` on the same
file; writes (or replaces) the "Calls" section of bench/RESULTS.md.

Measured, page cache warm, medians of --runs:
  - `capbox calls --json FILE`: the whole process (both passes of the C core,
    SIP parsing, the calls);
  - a job through the agent: POST /v1/jobs of the file (streamed), then
    queued -> completed; processing time from the job's started_at to
    completed_at, and end to end from the upload's first byte;
  - `tshark -q -z rtp,streams FILE`.
Correctness: each RTP stream's packets and loss against the generator's
truth and tshark's, jitter (mean, max) against tshark's within 0.1 ms.

Usage: python3 bench/calls.py [--calls N] [--duration S] [--runs N] [--data DIR] [--results FILE]
(make bench runs it after its other sections; SKIP_CALLS=1 leaves it out)."""
import argparse
import datetime
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from sections import markers, write_section  # noqa: E402  (bench/ is the script directory: on sys.path)

BEGIN, END = markers("calls")


def timed(cmd, runs: int) -> tuple:
    """(median wall s, outputs of the last run)."""
    walls, out = [], None
    for _ in range(runs):
        t0 = time.monotonic()
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        walls.append(time.monotonic() - t0)
        if p.returncode != 0:
            raise SystemExit(f"{cmd[0]} failed: {p.stderr[-500:]}")
        out = p.stdout
    return statistics.median(walls), out


def tshark_streams(text: str) -> dict:
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\s*[\d.]+\s+[\d.]+\s+(\S+)\s+(\d+)\s+(\S+)\s+(\d+)\s+(0x[0-9A-F]+)\s+.*?\s(\d+)\s+(-?\d+) \(.*?\)"
                     r"\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+([\d.]+)\s+([\d.]+)", line)
        if m:
            rows[(m[1], int(m[2]), m[3], int(m[4]), int(m[5], 16))] = (int(m[6]), int(m[7]), float(m[8]), float(m[9]))
    return rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def job_run(path: str, data: pathlib.Path, runs: int) -> dict:
    """Start an agent, upload the file `runs` times; median processing and end-to-end seconds."""
    from agent.client import Client
    var = data / "calls-agent"
    shutil.rmtree(var, ignore_errors=True)
    var.mkdir(parents=True)
    (var / "capbox.toml").write_text("[capture]\nautostart = false\n[jobs]\nworkers = 1\n")
    port = free_port()
    log = open(var / "agent.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(var / "capbox.toml"),
                             "--data-dir", str(var), "--listen", f"127.0.0.1:{port}"], cwd=REPO, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not (var / "admin.key").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        key = (var / "admin.key").read_text().strip()
        client = Client(f"http://127.0.0.1:{port}", key, timeout=600)
        processing, total, job = [], [], None
        for _ in range(runs):
            t0 = time.monotonic()
            out = subprocess.run(["curl", "-sS", "-H", f"Authorization: Bearer {key}", "-F", f"file=@{path}",
                                  f"http://127.0.0.1:{port}/v1/jobs"], capture_output=True, text=True, check=True)
            job_id = json.loads(out.stdout)["job_id"]
            while True:
                job = client.get(f"/v1/jobs/{job_id}")
                if job["status"] in ("completed", "failed"):
                    break
                time.sleep(0.05)
            total.append(time.monotonic() - t0)
            if job["status"] != "completed":
                raise SystemExit(f"job failed: {job}")
            started = datetime.datetime.fromisoformat(job["started_at"].replace("Z", "+00:00"))
            done = datetime.datetime.fromisoformat(job["completed_at"].replace("Z", "+00:00"))
            processing.append((done - started).total_seconds())
            client.delete(f"/v1/jobs/{job_id}")
        return {"processing_s": statistics.median(processing), "end_to_end_s": statistics.median(total),
                "sessions": job["session_count"], "packets": job["total_packets"]}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log.close()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--data", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "capbox-bench"))
    p.add_argument("--results", default=str(REPO / "bench" / "RESULTS.md"))
    a = p.parse_args()
    data = pathlib.Path(a.data)
    data.mkdir(parents=True, exist_ok=True)
    path = str(data / f"sip-{a.calls}x{a.duration:g}s.pcap")
    if not os.path.exists(path + ".truth.json"):
        subprocess.run([sys.executable, str(REPO / "bench" / "gensip.py"), "-o", path, "--calls", str(a.calls),
                        "--duration", str(a.duration), "--concurrency", str(a.calls), "--loss", "0.01",
                        "--jitter-ms", "4", "--seed", "7"], check=True)
    truth = json.load(open(path + ".truth.json"))
    size = os.path.getsize(path)
    mb = size / 1e6
    subprocess.run(["cat", path], stdout=subprocess.DEVNULL, check=True)  # warm the page cache

    capbox = [str(REPO / ".venv" / "bin" / "capbox"), "calls", "--json", path]
    cb_wall, cb_out = timed(capbox, a.runs)
    ours = json.loads(cb_out)
    tshark = ["tshark", "-q", "-r", path, "-z", "rtp,streams"]
    ts_wall, ts_out = timed(tshark, max(1, a.runs // 2))
    theirs = tshark_streams(ts_out)
    job = job_run(path, data, a.runs)

    # correctness
    streams = {(s["src"], s["sport"], s["dst"], s["dport"], int(s["ssrc"], 16)): s
               for c in ours["sessions"] for s in c["streams"] if s["kind"] == "rtp"}
    same_keys = set(streams) == set(theirs)
    mismatch = sum(1 for k, t in theirs.items() if k in streams and (
        (streams[k]["packets"], streams[k]["lost"]) != t[:2] or abs(streams[k]["mean_jitter_ms"] - t[2]) > 0.1
        or abs(streams[k]["max_jitter_ms"] - t[3]) > 0.1))
    by_call = {c["call_id"]: c for c in ours["sessions"]}
    truth_bad = 0
    for tc in truth["calls"]:
        c = by_call.get(tc["call_id"])
        got = sorted((s["expected"], s["lost"]) for s in (c or {}).get("streams", []) if s["kind"] == "rtp")
        want = sorted(zip(tc["rtp_sent"], tc["rtp_lost"]))
        if c is None or got != want or c["events_count"] != tc["messages"]:
            truth_bad += 1

    ok = lambda cond: "pass" if cond else "FAIL"  # noqa: E731
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout.strip()
    tver = subprocess.run(["tshark", "--version"], capture_output=True, text=True).stdout.splitlines()[0].rstrip(".")
    rtp_packets = sum(s["packets"] for s in streams.values())
    L = [BEGIN, "## Calls: offline jobs on a synthetic SIP + RTP capture", "",
         f"Measured by `bench/calls.py` on {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC (git {git}; {tver}). "
         f"`bench/gensip.py --calls {a.calls} --duration {a.duration:g} --loss 0.01 --jitter-ms 4`: "
         f"{truth['packets']:,} packets, {mb:,.1f} MB, {a.calls} calls with {len(streams)} RTP streams "
         f"({rtp_packets:,} RTP packets), {sum(t['tcp'] for t in truth['calls'])} calls signalled over TCP. "
         f"Page cache warm; medians of {a.runs} runs (tshark: {max(1, a.runs // 2)}).", "",
         "| what | wall s (median) | MB/s | packets/s |", "|---|---:|---:|---:|",
         f"| `capbox calls --json FILE` (whole process: two C passes, SIP, calls) | {cb_wall:.2f} | {mb / cb_wall:,.0f} | "
         f"{truth['packets'] / cb_wall:,.0f} |",
         f"| job through the agent: started → completed | {job['processing_s']:.2f} | "
         f"{mb / job['processing_s']:,.0f} | {truth['packets'] / job['processing_s']:,.0f} |",
         f"| job through the agent: upload (curl -F) → completed | {job['end_to_end_s']:.2f} | "
         f"{mb / job['end_to_end_s']:,.0f} | {truth['packets'] / job['end_to_end_s']:,.0f} |",
         f"| `tshark -q -z rtp,streams FILE` | {ts_wall:.2f} | {mb / ts_wall:,.0f} | {truth['packets'] / ts_wall:,.0f} |",
         "",
         f"- **job processing faster than tshark rtp,streams**: {ts_wall / job['processing_s']:.1f}× "
         f"({job['processing_s']:.2f} s vs {ts_wall:.2f} s): {ok(job['processing_s'] < ts_wall)}.",
         f"- RTP streams equal tshark's (same 5-tuples and SSRCs; packets and loss equal; mean and max jitter within "
         f"0.1 ms): {len(streams)} vs {len(theirs)} streams, {mismatch} differ: {ok(same_keys and mismatch == 0)}.",
         f"- calls equal the generator's truth (SIP messages; per stream expected and lost packets): "
         f"{a.calls - truth_bad} of {a.calls}: {ok(truth_bad == 0)}; job sessions {job['sessions']}, "
         f"packets {job['packets']:,} vs truth {truth['packets']:,}: {ok(job['packets'] == truth['packets'])}.",
         END]
    section = "\n".join(L) + "\n"
    write_section(a.results, "calls", section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
