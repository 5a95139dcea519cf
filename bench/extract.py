#!/usr/bin/env python3
"""bench/extract.py - one flow's packets out of many GB of rotated recordings
(GET /v1/pcap's path: the time index, then C over only the ranges of the
window) against `tcpdump -r` with the same filter over every file; writes (or
replaces) the "Packets from recordings" section of bench/RESULTS.md.

Steps: a synthetic capture of --gb GB (../shared/bench/genpcap.c) recorded
by `capbox record` into 100 MB pcapng files (the capture itself is deleted
then, to leave disk); every file indexed (timed: the agent does it as each
file closes); a TCP flow from the flow table of a middle file; its packets
over its life (padded --pad-s either side) extracted --runs times (median;
the first run is also quoted, its index read from disk); then tcpdump -V
(every file, one process) with the same filter.  Correctness: capbox's
packets equal tcpdump's inside the window, byte for byte.

Usage: python3 bench/extract.py [--gb 10] [--runs 5] [--pad-s 1] [--data DIR] [--results FILE] [--note TEXT]"""
import argparse
import datetime
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from sections import markers, write_section  # noqa: E402  (bench/ is the script directory: on sys.path)

BEGIN, END = markers("extract")
FRAME = 365          # bytes of an average generated packet in pcapng (330 + the block's 32 + padding)


def sh(*cmd, **kw):
    return subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True, **kw)


def generate(data: pathlib.Path, gb: float) -> pathlib.Path:
    gen = data / "genpcap"
    if not gen.exists():
        sh("gcc", "-O2", "-o", gen, REPO.parent / "shared" / "bench" / "genpcap.c", "-lm")
    packets = int(gb * 1e9 / FRAME)
    out = data / f"extract-{gb:g}g.pcap"
    sh(gen, "-n", packets, "-f", packets // 25, "-o", out)
    return out


def read_epbs(path) -> list:
    """(ts_ns, bytes) of each packet of a pcapng with nanosecond interfaces (capbox's) or a classic pcap."""
    import struct
    data = pathlib.Path(path).read_bytes()
    out = []
    if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        nano = data[:4] == b"\x4d\x3c\xb2\xa1"
        off = 24
        while off + 16 <= len(data):
            s, frac, cap, _ = struct.unpack("<IIII", data[off:off + 16])
            out.append((s * 10**9 + (frac if nano else frac * 1000), data[off + 16:off + 16 + cap]))
            off += 16 + cap
        return out
    off = 0
    while off + 12 <= len(data):
        kind, length = struct.unpack("<II", data[off:off + 8])
        if kind == 6:
            hi, lo, cap = struct.unpack("<III", data[off + 12:off + 24])
            out.append(((hi << 32 | lo), data[off + 28:off + 28 + cap]))
        off += length
    return out


def prepare(a, data: pathlib.Path, rec: pathlib.Path) -> dict:
    """Generate, record, index: the recordings and what that took."""
    from agent.recordings.index import RecordingIndex
    for d in (rec, data / "recordings-index"):
        shutil.rmtree(d, ignore_errors=True)
    rec.mkdir()
    t0 = time.monotonic()
    src = generate(data, a.gb)
    gen_s = time.monotonic() - t0
    t0 = time.monotonic()
    sh(sys.executable, "-m", "agent", "record", src, "-w", rec, "--rotate-mb", 100, "--no-fsync", "--json", cwd=REPO)
    record_s = time.monotonic() - t0
    src.unlink()
    files = sorted(p for p in rec.iterdir() if p.name.endswith(".pcapng"))
    t0 = time.monotonic()
    RecordingIndex(rec, data).refresh()
    index_s = time.monotonic() - t0
    return {"files": files, "total": sum(p.stat().st_size for p in files), "gen_s": gen_s, "record_s": record_s,
            "index_s": index_s,
            "sidecar_bytes": sum(p.stat().st_size for p in (data / "recordings-index").iterdir())}


def pick_flow(middle: pathlib.Path):
    """A TCP flow of a middle file, from the C flow table."""
    from hwdrivers import CaptureConfig, RunResult, Session
    from hwdrivers.flows import proto_name
    with Session(CaptureConfig(source=str(middle))) as s:
        while s.run() != RunResult.EOF:
            pass
        flows = [f for f in s.active_flows(limit=200, order="packets") if proto_name(f.proto) == "tcp"]
    return flows[len(flows) // 2]


def time_capbox(w, rec: pathlib.Path, data: pathlib.Path, out: pathlib.Path, runs: int) -> dict:
    """GET /v1/pcap's path, each run as a fresh query would (sidecars read from disk)."""
    from agent.recordings import packets
    from agent.recordings.index import RecordingIndex
    from hwdrivers.extract import extract
    walls = []
    for _ in range(runs):
        ix = RecordingIndex(rec, data)
        t0 = time.monotonic()
        sources, read = packets.plan(ix, None, w)
        with open(out, "wb") as f:
            st = extract(sources, w.since_ns, w.until_ns, w.bpf, f.fileno())
        walls.append(time.monotonic() - t0)
    return {"walls": walls, "median": statistics.median(walls), "read": read, "st": st, "got": read_epbs(out)}


def time_tcpdump(w, files: list, data: pathlib.Path) -> dict:
    listing = data / "extract-files.txt"
    listing.write_text("".join(f"{p}\n" for p in files))
    out = data / "extract-tcpdump.pcap"
    t0 = time.monotonic()
    sh("tcpdump", "-Z", "root", "-V", listing, "-w", out, w.bpf)   # -Z: it would read later files as user tcpdump
    wall = time.monotonic() - t0
    want = [p for p in read_epbs(out) if w.since_ns <= p[0] <= w.until_ns]
    for p in (out, listing):
        p.unlink(missing_ok=True)
    return {"wall": wall, "want": want}


def section(a, m: dict, flow, middle, w, c: dict, t: dict, same: bool, ok: bool) -> str:
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    files, total = m["files"], m["total"]
    return "\n".join([
        BEGIN,
        "## Packets from recordings: one flow out of rotated recordings (GET /v1/pcap's path)",
        "",
        f"Run {when} by `python3 bench/extract.py --gb {a.gb:g}` on the shared 2-core VM"
        + (f" ({a.note})" if a.note else "") + ": other engineers' builds and tests ran at the same time, so "
        "times are upper bounds.",
        "",
        f"- recordings: {len(files)} files of up to 100 MB, {total / 1e9:.2f} GB, "
        f"written by `capbox record --rotate-mb 100` from a genpcap capture ({m['gen_s']:.0f} s to generate, "
        f"{m['record_s']:.0f} s to record)",
        f"- index: {m['index_s']:.1f} s for every file (done by the agent as each file closes), "
        f"{m['sidecar_bytes'] / 1e6:.1f} MB of sidecars",
        f"- the flow: `{w.bpf}`, {flow.total_packets} packets in the flow table of {middle.name}; window "
        f"{(w.until_ns - w.since_ns) / 1e9:.1f} s (its life, {a.pad_s:g} s either side)",
        "",
        "| | wall | read | packets out |",
        "|---|---:|---:|---:|",
        f"| capbox (index + C over the window's ranges), median of {a.runs} | {c['median']:.3f} s "
        f"(first {c['walls'][0]:.3f} s) | {c['st'].bytes_read / 1e6:.1f} MB of {c['read']['files']} files, "
        f"{c['read']['ranges']} ranges | {c['st'].packets} |",
        f"| `tcpdump -V every-file -w out '{w.bpf}'` | {t['wall']:.1f} s | {total / 1e9:.2f} GB, {len(files)} files "
        f"| {len(t['want'])} in the window |",
        "",
        f"capbox is {t['wall'] / c['median']:.0f}x faster; the packets are {'the same' if same else 'NOT the same'} "
        f"(bytes and nanosecond times).  Targets: under 2 s and at least 20x: "
        f"{'met' if ok else 'NOT met'}.",
        END, ""])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=10.0)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--pad-s", type=float, default=1.0)
    ap.add_argument("--data", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "capbox-bench"))
    ap.add_argument("--results", default=str(REPO / "bench" / "RESULTS.md"))
    ap.add_argument("--note", default="")
    ap.add_argument("--keep", action="store_true", help="keep the recordings afterwards")
    a = ap.parse_args()
    from agent.recordings import packets
    data = pathlib.Path(a.data)
    data.mkdir(parents=True, exist_ok=True)
    rec = data / "extract-recordings"
    m = prepare(a, data, rec)
    middle = m["files"][len(m["files"]) // 2]
    flow = pick_flow(middle)
    w = packets.flow_window(flow, a.pad_s)
    out = data / "extract-flow.pcapng"
    c = time_capbox(w, rec, data, out, a.runs)
    t = time_tcpdump(w, m["files"], data)
    same = c["got"] == t["want"]
    ok = same and c["median"] < 2.0 and t["wall"] / c["median"] >= 20
    text = section(a, m, flow, middle, w, c, t, same, ok)
    write_section(a.results, "extract", text)
    print(text)
    if not a.keep:
        shutil.rmtree(rec, ignore_errors=True)
        shutil.rmtree(data / "recordings-index", ignore_errors=True)
    out.unlink(missing_ok=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
