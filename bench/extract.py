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
    from agent.recordings.index import RecordingIndex
    from hwdrivers import CaptureConfig, RunResult, Session
    from hwdrivers.extract import extract
    from hwdrivers.flows import proto_name

    data = pathlib.Path(a.data)
    data.mkdir(parents=True, exist_ok=True)
    rec = data / "extract-recordings"
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
    total = sum(p.stat().st_size for p in files)

    t0 = time.monotonic()
    RecordingIndex(rec, data).refresh()
    index_s = time.monotonic() - t0
    sidecar_bytes = sum(p.stat().st_size for p in (data / "recordings-index").iterdir())

    middle = files[len(files) // 2]
    with Session(CaptureConfig(source=str(middle))) as s:
        while s.run() != RunResult.EOF:
            pass
        flows = [f for f in s.active_flows(limit=200, order="packets") if proto_name(f.proto) == "tcp"]
    flow = flows[len(flows) // 2]
    w = packets.flow_window(flow, a.pad_s)
    out = data / "extract-flow.pcapng"

    walls = []
    for _ in range(a.runs):
        ix = RecordingIndex(rec, data)           # as a fresh query would: sidecars read from disk
        t0 = time.monotonic()
        sources, read = packets.plan(ix, None, w)
        with open(out, "wb") as f:
            st = extract(sources, w.since_ns, w.until_ns, w.bpf, f.fileno())
        walls.append(time.monotonic() - t0)
    got = read_epbs(out)

    listing = data / "extract-files.txt"
    listing.write_text("".join(f"{p}\n" for p in files))
    td_out = data / "extract-tcpdump.pcap"
    t0 = time.monotonic()
    sh("tcpdump", "-Z", "root", "-V", listing, "-w", td_out, w.bpf)   # -Z: it would read later files as user tcpdump
    tcpdump_s = time.monotonic() - t0
    want = [p for p in read_epbs(td_out) if w.since_ns <= p[0] <= w.until_ns]
    same = got == want

    med = statistics.median(walls)
    ok = same and med < 2.0 and tcpdump_s / med >= 20
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = "\n".join([
        BEGIN,
        "## Packets from recordings: one flow out of rotated recordings (GET /v1/pcap's path)",
        "",
        f"Run {when} by `python3 bench/extract.py --gb {a.gb:g}` on the shared 2-core VM"
        + (f" ({a.note})" if a.note else "") + ": other engineers' builds and tests ran at the same time, so "
        "times are upper bounds.",
        "",
        f"- recordings: {len(files)} files of up to 100 MB, {total / 1e9:.2f} GB, "
        f"written by `capbox record --rotate-mb 100` from a genpcap capture ({gen_s:.0f} s to generate, "
        f"{record_s:.0f} s to record)",
        f"- index: {index_s:.1f} s for every file (done by the agent as each file closes), "
        f"{sidecar_bytes / 1e6:.1f} MB of sidecars",
        f"- the flow: `{w.bpf}`, {flow.total_packets} packets in the flow table of {middle.name}; window "
        f"{(w.until_ns - w.since_ns) / 1e9:.1f} s (its life, {a.pad_s:g} s either side)",
        "",
        "| | wall | read | packets out |",
        "|---|---:|---:|---:|",
        f"| capbox (index + C over the window's ranges), median of {a.runs} | {med:.3f} s (first {walls[0]:.3f} s) "
        f"| {st.bytes_read / 1e6:.1f} MB of {read['files']} files, {read['ranges']} ranges | {st.packets} |",
        f"| `tcpdump -V every-file -w out '{w.bpf}'` | {tcpdump_s:.1f} s | {total / 1e9:.2f} GB, {len(files)} files "
        f"| {len(want)} in the window |",
        "",
        f"capbox is {tcpdump_s / med:.0f}x faster; the packets are {'the same' if same else 'NOT the same'} "
        f"(bytes and nanosecond times).  Targets: under 2 s and at least 20x: "
        f"{'met' if ok else 'NOT met'}.",
        END, ""])
    write_section(a.results, "extract", section)
    print(section)
    if not a.keep:
        shutil.rmtree(rec, ignore_errors=True)
        shutil.rmtree(data / "recordings-index", ignore_errors=True)
    for p in (out, td_out, listing):
        p.unlink(missing_ok=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
