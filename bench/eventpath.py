"""The event path: `capbox detect` against `capbox analyze` on a DNS-only
capture (bench/gendns.py: 100,000 query/answer pairs, 50 clients, one
resolver, 5,000 names) and on the 5M-packet synthetic (large.pcap), and the
share of detect's time that is reading events and their C records (no
detector) versus the detectors themselves.  `capbox detect` runs its
detectors in a worker process on the other core (agent.detectors.offline):
the targets are judged on wall packets/s, as the issue stated them; CPU
(user+sys of both processes) is shown beside.  --rounds N: each command N
times, interleaved, medians.  Usage: python bench/eventpath.py --data DIR
--results bench/RESULTS.md"""
import argparse
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.sections import markers, write_section  # noqa: E402

READ_ONLY = """
import collections, sys
from agent.config import DetectionSection
from agent.detectors.offline import BATCH, EVENT_RING
from agent.detectors.pipeline import GC_THRESHOLD_OFFLINE, Pipeline, tune_gc
from hwdrivers import CaptureConfig, Session, dnsgate
pipeline = Pipeline(DetectionSection())
tune_gc(GC_THRESHOLD_OFFLINE)   # as capbox detect collects
cfg = CaptureConfig(source=sys.argv[1], events=pipeline.kinds(), event_ring=EVENT_RING,
                    lossless=True, idle_timeout_s=0, active_timeout_s=0, max_flows=1 << 20)
kinds = collections.Counter()
d = DetectionSection()
with Session(cfg) as s:
    dnsgate.set_fold(s, d.dns_fold, d.dns_repeats)   # as capbox detect reads them
    def take():   # a batch at a time, as capbox detect reads them (agent.detectors.offline)
        while True:
            batch = s.read_events(BATCH, repeats=d.dns_repeats, bare=pipeline.bare)
            kinds.update(e.kind for e in batch)
            if len(batch) < BATCH:
                return
    s.run_to_eof(take)
    while s.flush():
        take()
    take()
    gate = dnsgate.counters(s)
print(sum(kinds.values()), " ".join(f"{k}={v}" for k, v in sorted(kinds.items())) + f" (and {gate['folded']} DNS "
      f"queries folded into the next DNS event; {gate['repeats']} answers read as repeats of a template)")
"""


def timed(argv: list) -> tuple:
    """(wall s, user+sys CPU s, stdout) of one child process (and its children: detect's worker)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.monotonic()
    out = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=REPO).stdout
    wall = time.monotonic() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), out


def medians(runs: list) -> tuple:
    """(median wall, median CPU, the last stdout) of timed() runs."""
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs), runs[-1][2]


def cache_bytecode(data: pathlib.Path) -> None:
    """Every command timed with its bytecode cached, as an installed box has it (not compiled at every start
    when the shell sets PYTHONDONTWRITEBYTECODE: some 50 modules, 0.3 s), kept out of the checkouts."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ.setdefault("PYTHONPYCACHEPREFIX", str(data / "pycache"))


def packets(path: pathlib.Path) -> int:
    out = subprocess.run(["capinfos", "-M", "-T", "-r", "-c", str(path)], capture_output=True, text=True,
                         check=True).stdout.strip().split("\t")
    return int(out[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/tmp/capbox-bench")
    ap.add_argument("--results", default=str(REPO / "bench" / "RESULTS.md"))
    ap.add_argument("--baseline", default="", help="another checkout's capbox (before this change), timed too")
    ap.add_argument("--note", default="", help="a sentence on the run's conditions (e.g. a shared machine)")
    ap.add_argument("--rounds", type=int, default=1, help="runs of each command, interleaved; medians")
    args = ap.parse_args()
    data = pathlib.Path(args.data)
    data.mkdir(parents=True, exist_ok=True)
    cache_bytecode(data)
    dns = data / "dns200k.pcap"
    if not dns.exists():
        subprocess.run([sys.executable, str(REPO / "bench" / "gendns.py"), str(dns), "100000"], check=True)
    py, capbox = str(REPO / ".venv" / "bin" / "python"), str(REPO / ".venv" / "bin" / "capbox")
    rows, baseline, mix, verdicts = [], [], [], []
    for label, path in (("DNS only (200,000 packets)", dns), ("large.pcap (5,000,000 packets)", data / "large.pcap")):
        if not path.exists():
            rows.append(f"| {label} | not generated (run `make bench` first) | | | | |")
            continue
        n = packets(path)
        for cmd in [capbox] + ([args.baseline] if args.baseline else []):   # untimed: the file in the page
            timed([cmd, "detect", str(path)])                                # cache, the bytecode cached
        runs: dict = {"analyze": [], "read": [], "detect": [], "before": []}
        for _ in range(args.rounds):      # interleaved: the machine's load falls on every command alike
            runs["analyze"].append(timed([capbox, "analyze", str(path)]))
            runs["read"].append(timed([py, "-c", READ_ONLY, str(path)]))
            runs["detect"].append(timed([capbox, "detect", str(path)]))
            if args.baseline:
                runs["before"].append(timed([args.baseline, "detect", str(path)]))
        analyze, read, detect = medians(runs["analyze"]), medians(runs["read"]), medians(runs["detect"])
        events, kinds = read[2].split(" ", 1)
        events = int(events)
        mix.append(f"{label}: {kinds.strip()}")
        wall, cpu = analyze[0] / detect[0], analyze[1] / detect[1]
        met = n / detect[0] >= 2e5 if "DNS" in label else wall >= 1 / 3
        verdicts.append(f"{label} detect {n / detect[0] / 1e3:,.1f} k packets/s wall ({n / detect[1] / 1e3:,.1f} k "
                        f"per CPU second), {wall:.2f} of analyze's wall packet rate ({cpu:.2f} of its CPU rate; "
                        f"targets 200 k DNS messages/s and 0.33, judged on wall: {'met' if met else 'not met'})")
        if args.baseline:
            before = medians(runs["before"])
            baseline.append(f"{label}: {before[0]:.2f} s / {before[1]:.2f} s CPU ({n / before[0] / 1e3:,.0f} k pkt/s "
                            f"wall), this change {detect[0] / before[0]:.2f} of its wall and "
                            f"{detect[1] / before[1]:.2f} of its CPU")
        rows.append(f"| {label} | {events:,} | {analyze[0]:.2f} s / {analyze[1]:.2f} s ({n / analyze[0] / 1e3:,.0f} k) "
                    f"| {read[0]:.2f} s / {read[1]:.2f} s ({events / read[1] / 1e3:,.0f} k) "
                    f"| {detect[0]:.2f} s / {detect[1]:.2f} s ({n / detect[0] / 1e3:,.0f} k; "
                    f"{events / detect[0] / 1e3:,.1f} k) | {wall:.2f} | {cpu:.2f} |")
    begin, end = markers("eventpath")
    load = os.getloadavg()[0]
    section = "\n".join([
        begin,
        "## Event path: `capbox detect` against `capbox analyze` (`bench/eventpath.py`)",
        "",
        f"{'One run' if args.rounds == 1 else f'{args.rounds} interleaved runs (medians)'} of each on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, on the 2-core machine "
        f"(load average {load:.1f} at the end"
        + ("; well above 2, other work shared the cores: read the ratios, not the absolutes).  " if load > 2 else
           ").  ") + (args.note + "  " if args.note else "") + "*read* is the C core reading the file with the "
        "events the detectors want on (lossless) and Python taking every event and its C-parsed record out of "
        "the ring (no detector; each DNS query folded into the next DNS event by the C core's DNS gate, and "
        "answers repeating their template read as a few fields, as `capbox detect` reads them: "
        "hwdrivers/src/dnsgate.c, dnsrepeat.c): the cost of the event path itself.  *detect* adds "
        "the detector pipeline "
        "(agent/detectors/pipeline.py: each event to the detectors of its kind, one shared LAN model), run in the "
        "live agent's consumer worker (agent/consumers.py) on the other core while `capbox detect` reads the file "
        "and fills the worker's shared ring (agent/detectors/offline.py): its CPU is both processes'.",
        "",
        "Each cell: wall / CPU (user+sys) seconds, and in brackets the rate: per wall second for analyze and "
        "detect (packets; events), per CPU second for read.  The ratios are analyze's packets/s over detect's, "
        "by wall time (the issue's metric, the one the target judges) and by CPU time.",
        "",
        "| capture | events | analyze (k pkt/s) | read events + records (k events/s) | detect (k pkt/s; k events/s) "
        "| analyze/detect (wall) | (CPU) |",
        "|---|---:|---|---|---|---:|---:|",
        *rows,
        "",
        "Events by kind: " + "; ".join(mix) + ".  TCP SYNs and RSTs reach Python as per-source summaries "
        "(`tcp_src`, hwdrivers/src/srcsum.c): on large.pcap 115,707 tcp_syn/tcp_rst events (109,838 SYNs from "
        "19,995 sources) became the tcp_src count above.",
        "",
        *([f"Before (`{args.baseline}` detect, the same run): "
            + "; ".join(baseline) + ".", ""] if baseline else []),
        "Before this change, issue 17 measured `capbox detect` at 25.8 s on the same kind of DNS capture "
        "(about 8,000 DNS messages/s, most of it dnspython) and 25.4 s on large.pcap.",
        "",
        "Targets (issue 17): detect >= 200,000 DNS messages/s and >= 1/3 of analyze's packets/s on large.pcap, "
        "by wall time.  "
        "Every answer in the DNS capture is a documentation address (RFC 5737) for a public-looking name, which "
        "dns_hijack scores as a bogon: each of the 100,000 answers is judged (one finding per client, 50, "
        "after dedup; the dedup key is checked before a finding is built), so this capture is the detectors' worst case as well as "
        "the event path's.  Measured here: " + "; ".join(verdicts) + ".",
        end,
        "",
    ])
    write_section(args.results, "eventpath", section)
    print(section)


if __name__ == "__main__":
    main()
