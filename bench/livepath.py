"""The live event path: tcpreplay into a veth pair in a private network
namespace, the agent capturing the other end with afpacket, every detector
on.  For (a) DNS only (bench/gendns.py, one forged answer in the middle of
each trial) and (b) the mix of bench/genmix.py (10 % DNS, 2 % TCP SYN, 1 %
TLS ClientHello), at a ladder of rates, with the detectors in the consumer
worker ([detection] process = true, the default), for comparison as
threads of the agent (process = false), and in the worker with the
protocol logs off (they still run in the agent's process):

- losses on the event path as /v1/health reports them (and the kernel's);
- CPU seconds per million packets of the agent and of its worker (psutil),
  and each one's share of a core while the trial ran (the spread over cores);
- GET /v1/capture/status latency (p50, p99, max) polled 50 times a second
  while tcpreplay sends;
- DNS: whether the forged answer was raised.

First, without the network: the dispatcher's CPU per event on 200,000 DNS
events (a file read lossless), as the threads design did it (every event
made a Python record and published on the bus) and as the worker design
does (events copied into the shared ring in C), and the worker's cost of
taking them out as records.

The lossless rate is the highest rate of the ladder with nothing lost.  One
trial per cell (the machine is shared).  Root only.
Usage: python bench/livepath.py [--results bench/RESULTS.md] [--seconds 3]"""
import argparse
import json
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import psutil

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from agent.client import Client  # noqa: E402
from bench.load_api import free_port, stop_agent  # noqa: E402
from bench.sections import markers, write_section  # noqa: E402

DNS_RATES = (10000, 25000, 50000, 100000)
MIX_RATES = (50000, 100000, 300000)
# the detectors in the worker (the default), as threads of the agent (before), in the worker with the
# protocol logs off (what the logs, still in the agent's process, cost it), and in the worker with every DNS
# message its own event (dns_fold off: before the C core's DNS gate; DNS traffic only)
VARIANTS = {"worker": "[detection]\nprocess = true\n", "threads": "[detection]\nprocess = false\n",
            "worker, no protocol logs": "[detection]\nprocess = true\n[logs]\nenabled = false\n",
            "worker, DNS not folded": "[detection]\nprocess = true\ndns_fold = false\n",
            "worker, no DNS repeats": "[detection]\nprocess = true\ndns_repeats = false\n"}
DNS_ONLY = ("worker, DNS not folded", "worker, no DNS repeats")
SHORT = dict(zip(("worker", "threads", "nologs", "nofold", "norepeat"), VARIANTS))    # --variants' names for them
POLL_S = 0.02
DRAIN_S = 60


def sh(*argv, check=True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=120)


def make_netns(tag: str) -> tuple:
    ns, tx, rx = f"cbxbench-{tag}", f"cbb{tag}a", f"cbb{tag}b"
    sh("ip", "netns", "add", ns)
    sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
       "net.ipv6.conf.default.disable_ipv6=1")
    sh("ip", "-n", ns, "link", "add", tx, "type", "veth", "peer", "name", rx)
    for dev in (tx, rx, "lo"):
        sh("ip", "-n", ns, "link", "set", dev, "up")
    return ns, tx, rx


def start_agent(data: pathlib.Path, variant: str) -> tuple:
    data.mkdir(parents=True)
    (data / "capbox.toml").write_text("[capture]\nautostart = false\n" + VARIANTS[variant])
    port = free_port()
    env = dict(os.environ, CAPBOX_API_RATE_GET="10000000")
    proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(data / "capbox.toml"),
                             "--data-dir", str(data), "--listen", f"127.0.0.1:{port}"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(data / "agent.err", "wb"))
    for _ in range(600):
        if (data / "admin.key").exists():
            try:
                c = Client(f"http://127.0.0.1:{port}", (data / "admin.key").read_text().strip(), timeout=10)
                c.health()
                return proc, c
            except OSError:
                pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("agent did not start")


def poll(c: Client, stop: threading.Event, lat: list) -> None:
    """GET /v1/capture/status every POLL_S while tcpreplay sends: its latencies."""
    while not stop.wait(POLL_S):
        t = time.perf_counter()
        try:
            c.capture_status()
            lat.append(time.perf_counter() - t)
        except OSError:
            lat.append(float("inf"))


def cpu(p) -> float:
    t = p.cpu_times()
    return t.user + t.system


def _indexer(components: dict):
    pid = (components.get("logs", {}).get("indexer") or {}).get("pid")
    return psutil.Process(pid) if pid else None


def trial(work: pathlib.Path, rx: str, tx: str, path: str, pps: int, packets: int, variant: str) -> dict:
    data = pathlib.Path(tempfile.mkdtemp(dir=work))
    proc, c = start_agent(data / "var", variant)
    try:
        c.capture_start(interface=rx, backend="afpacket")
        time.sleep(2.0)      # the worker has started and loaded the detectors
        agent = psutil.Process(proc.pid)
        comps = c.health()["components"]
        wpid = comps.get("consumers", {}).get("pid")
        worker = psutil.Process(wpid) if wpid else None
        indexer = _indexer(comps)         # the log indexer, counted with the agent (started with the first lines)
        cpu0 = (cpu(agent) + (cpu(indexer) if indexer else 0.0), cpu(worker) if worker else 0.0)
        lat, stop = [], threading.Event()
        poller = threading.Thread(target=poll, args=(c, stop, lat))
        t0 = time.monotonic()
        poller.start()
        out = sh("tcpreplay", f"--intf1={tx}", f"--pps={pps}", f"--limit={packets}", path).stdout
        stop.set()
        poller.join()
        sent = int(re.search(r"Successful packets:\s+(\d+)", out).group(1))
        rated = float(re.search(r"Rated: [\d.]+ Bps, [\d.]+ Mbps, ([\d.]+) pps", out).group(1))
        deadline = time.monotonic() + DRAIN_S
        while time.monotonic() < deadline:      # until the captured packets' events are all through
            m, h = c.capture_metrics(), c.health()
            w = h["components"].get("consumers")
            queued = (w["ring"] or {}).get("queued", 0) if w else 0
            busy = sum(s.get("queued", 0) for s in h["components"].values() if isinstance(s, dict))
            if m["packets"] + m["drops"]["kernel"] >= sent and not queued and not busy:
                break
            time.sleep(0.5)
        wall = time.monotonic() - t0
        indexer = indexer or _indexer(c.health()["components"])   # one started during the trial: all its CPU
        cpu1 = (cpu(agent) + (cpu(indexer) if indexer else 0.0), cpu(worker) if worker else 0.0)
        m, h = c.capture_metrics(), c.health()
        threats = c.get("/v1/threats", attack_type="dns_hijack", severity="critical", limit=1000)["threats"]
        lost = {**h["losses"].get("event_path", {}), **h["losses"].get("protocol_logs", {})}
        gate = (h["components"].get("consumers") or {}).get("dns_gate") or {}
        folded, repeats = gate.get("folded", 0), gate.get("repeats", 0)
        lat_ms = sorted(x * 1000 for x in lat)
        return {"pps": pps, "sent": sent, "rated_pps": rated, "captured": m["packets"], "kernel": m["drops"]["kernel"],
                "lost": lost, "lossless": not lost and not m["drops"]["kernel"], "folded": folded,
                "repeats": repeats,
                "raised": any("answered twice" in t["description"] for t in threats),
                "agent_cpu_s": cpu1[0] - cpu0[0], "worker_cpu_s": cpu1[1] - cpu0[1], "wall_s": wall,
                "rest_ms": {"n": len(lat_ms), "p50": statistics.median(lat_ms) if lat_ms else None,
                            "p99": lat_ms[int(len(lat_ms) * 0.99)] if lat_ms else None,
                            "max": lat_ms[-1] if lat_ms else None}}
    finally:
        stop_agent(proc)
        shutil.rmtree(data, ignore_errors=True)


def inside(args) -> None:
    """In the namespace: every trial, as JSON lines on stdout."""
    work = pathlib.Path(args.work)
    dns, mix = work / "dns.pcap", work / "mix.pcap"
    dns_rates, mix_rates = _rates(args.dns_rates), _rates(args.mix_rates)
    if mix_rates:
        subprocess.run([sys.executable, str(REPO / "bench" / "genmix.py"), str(mix),
                        str(max(mix_rates) * args.seconds)], check=True)
    for variant in (SHORT[v] for v in args.variants.split(",")):
        for traffic, path, rates in (("dns", dns, dns_rates), ("mix", mix, mix_rates)):
            if traffic != "dns" and variant in DNS_ONLY:
                continue
            for pps in rates:
                n = pps * args.seconds
                if traffic == "dns":    # the forged answer in the middle of what this trial sends
                    subprocess.run([sys.executable, str(REPO / "bench" / "gendns.py"), str(dns), str(n // 2),
                                    str(n // 4)], check=True)
                r = trial(work, args.rx, args.tx, str(path), pps, n, variant)
                print(json.dumps({"traffic": traffic, "variant": variant, **r}), flush=True)


RING = """
import os, resource, sys
from agent.bus import Bus, EVENT_CHANNELS
from hwdrivers import CaptureConfig, Session
from hwdrivers.shring import SharedRing
cfg = CaptureConfig(source=sys.argv[1], events=frozenset({"dns"}), event_ring=1 << 14, lossless=True,
                    idle_timeout_s=0, active_timeout_s=0)
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
out, n = {}, [0, 0]
import dataclasses
base = cpu()
with Session(dataclasses.replace(cfg, events=frozenset())) as s:   # the C core reading the file, no events
    s.run_to_eof(lambda: None)
    out["read"] = (s.counters().packets, cpu() - base)
bus = Bus()
sub = bus.subscribe(["packets:dns"], maxsize=1 << 20)
base = cpu()
with Session(cfg) as s:
    def publish():
        for ev in s.read_events():
            bus.publish(EVENT_CHANNELS[ev.kind], "dns_packet", ev, source="capture")
    s.run_to_eof(publish)
out["threads"] = (sub.queue.qsize(), cpu() - base)
ring = SharedRing(8192)
peer = SharedRing(fd=os.dup(ring.fd))
fill = take = 0.0
with Session(cfg) as s:
    def move():
        global fill, take
        while True:
            t = cpu()
            k = ring.fill(s, 4096)[0]     # (no more than the worker's batches take: nothing dropped)
            fill += cpu() - t
            t = cpu()
            n[1] += len(peer.take(1 << 20, frozenset({"dns"}))[1])
            take += cpu() - t
            if not k:
                return
    s.run_to_eof(move)
out["fill"], out["take"] = (ring.moved, fill), (n[1], take)
print(out)
"""


def ring_rates(work: pathlib.Path) -> dict:
    """{step: (events, CPU s)}: the C core alone, the threads' dispatcher, the shared ring's fill and take."""
    src = work / "dns200k.pcap"
    subprocess.run([sys.executable, str(REPO / "bench" / "gendns.py"), str(src), "100000"], check=True)
    out = subprocess.run([sys.executable, "-c", RING, str(src)], capture_output=True, text=True, check=True,
                         cwd=REPO).stdout
    return eval(out)   # noqa: S307 (our own child's repr of a dict of tuples)


def ring_report(r: dict) -> list:
    core = r["read"][1] / max(r["read"][0], 1)
    def row(name, key, minus):
        n, s = r[key]
        per = s / max(n, 1) - minus
        return f"| {name} | {n:,} | {s:.2f} | {per * 1e6:.2f} | {1 / per / 1000 if per > 0 else 0:,.0f} |"
    return ["The dispatcher's work per event, 200,000 DNS events from a file (lossless, in one process; the C core's "
            "own reading, measured alone, is taken off the threads row):", "",
            "| step | events | CPU s | µs / event | k events / CPU s |", "|---|---:|---:|---:|---:|",
            f"| the C core reading the file, no events (packets) | {r['read'][0]:,} | {r['read'][1]:.2f} | {core * 1e6:.2f} | - |",
            row("threads design: Python record + bus publish, per event", "threads", core),
            row("worker design: copy into the shared ring (C)", "fill", 0.0),   # fill's time: the dispatcher's alone
            row("the worker: take from the ring as Python records", "take", 0.0), ""]


def _rates(text: str) -> tuple:
    return tuple(int(x) for x in text.split(",") if x)


def cell(r: dict) -> str:
    per_m = 1e6 / max(r["captured"], 1)
    lost = "none" if r["lossless"] else ", ".join(f"{k} {v:,}" for k, v in {**r["lost"], "kernel": r["kernel"]}.items()
                                                  if v)
    rest = r["rest_ms"]
    raised = ("yes" if r["raised"] else "**no**") if r["traffic"] == "dns" else "-"
    return (f"| {r['traffic']} | {r['variant']} | {r['pps']:,} ({r['rated_pps']:,.0f}) | "
            f"{r['sent']:,} | {r.get('folded', 0):,} / {r.get('repeats', 0):,} | {lost} | "
            f"{r['agent_cpu_s'] * per_m:.1f} / {r['worker_cpu_s'] * per_m:.1f} | "
            f"{r['agent_cpu_s'] / r['wall_s']:.2f} / {r['worker_cpu_s'] / r['wall_s']:.2f} | "
            f"{rest['p50']:.1f} / {rest['p99']:.1f} / {rest['max']:.1f} | {raised} |")


def report(rows: list, load: str, ring: list) -> str:
    begin, end = markers("livepath")
    out = [begin, "## Live event path: tcpreplay → veth → afpacket, every detector on (`bench/livepath.py`)", "",
           f"One trial per cell on the 2-core machine ({load}"
           + ("; well above 2, other work shared the cores: read the comparison more than the absolutes)"
              if os.getloadavg()[0] > 2 else ")")
           + ".  Each trial sends `rate × 3 s` packets with "
           "tcpreplay (the rate it reached in brackets) into a veth pair in a private namespace; a fresh agent captures "
           "the other end with afpacket.  *worker*: the detectors in the consumer worker process "
           "(`[detection] process = true`, the default); *threads*: each detector a thread of the agent, as before; "
           "*DNS not folded*: the worker with every DNS message an event of its own (`dns_fold = false`), as before "
           "the C core's DNS gate (hwdrivers/src/dnsgate.c) folded each query into the next DNS event (*folded*: "
           "how many were); *no DNS repeats*: the worker with every DNS answer read in full (`dns_repeats = false`), as "
           "before the C core marked answers repeating their template (hwdrivers/src/dnsrepeat.c; *repeats*: how "
           "many were).  "
           "*lost*: /v1/health's event-path and protocol-log losses and the kernel's drops, after the events drained.  "
           "CPU: seconds per "
           "million captured packets, and the share of one core each process used while the trial ran "
           "(agent / worker; the agent's figure includes its log indexer process).  REST: `GET /v1/capture/status` polled every 20 ms while tcpreplay sent (ms).  A *cores* "
           "figure far below 1 while events were lost means the process was waiting for a CPU (other load on the "
           "machine), not busy with its own work.", "",
           *ring,
           "| traffic | detectors | rate pps (reached) | sent | folded / repeats | lost | "
           "CPU s / M packets (agent / worker) | cores (agent / worker) | REST p50 / p99 / max ms | "
           "forged answer raised |",
           "|---|---|---|---:|---:|---|---|---|---|---|"]
    out += [cell(r) for r in rows]
    best: dict = {}   # (traffic, variant) run -> its highest lossless rate (0: lossy at every rate)
    for r in rows:
        key = (r["traffic"], r["variant"])
        best[key] = max(best.get(key, 0), r["pps"] if r["lossless"] else 0)
    out += ["", "Lossless rate (highest of the ladder with nothing lost; only what this run measured): " + "; ".join(
        f"{t}, {v}: " + (f"{best[t, v]:,} pps" if best[t, v] else "lost events at every rate tried")
        for t in ("dns", "mix") for v in VARIANTS if (t, v) in best) + ".", "",
        "Targets (issue 17): zero event drops at 100,000 DNS packets/s and at 300,000 packets/s of the mix; "
        "REST p99 < 20 ms at the lossless maximum.  Issue 22: REST p99 < 20 ms at the mix's 300,000 packets/s "
        "with the protocol logs on (*worker*) as with them off (*worker, no protocol logs*); the log files and "
        "index are written by the log indexer process (agent/logs/indexer.py), so the agent's GIL no longer "
        "holds their parsing.", end, ""]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", default=str(REPO / "bench" / "RESULTS.md"))
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--note", default="", help="a sentence on the run's conditions (e.g. a shared machine)")
    ap.add_argument("--dns-rates", default=",".join(map(str, DNS_RATES)))
    ap.add_argument("--mix-rates", default=",".join(map(str, MIX_RATES)))
    ap.add_argument("--variants", default=",".join(SHORT), help="some of " + ", ".join(SHORT)
                    + " (comma-separated; nologs: the worker with the protocol logs off)")
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--tx", help=argparse.SUPPRESS)
    ap.add_argument("--rx", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inside:
        return inside(args)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not variants or any(v not in SHORT for v in variants):
        raise SystemExit(f"livepath: --variants takes some of: {', '.join(SHORT)}")
    if os.geteuid() != 0 or not shutil.which("tcpreplay"):
        raise SystemExit("livepath: needs root and tcpreplay")
    tag = f"{os.getpid() % 100000:05d}"
    ns, tx, rx = make_netns(tag)
    work = pathlib.Path(tempfile.mkdtemp(prefix="capbox-livepath-"))
    rows = []
    ring = ring_report(ring_rates(work))
    try:
        p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, __file__, "--inside", "--work", str(work),
                              "--tx", tx, "--rx", rx, "--seconds", str(args.seconds),
                              "--dns-rates", args.dns_rates, "--mix-rates", args.mix_rates,
                              "--variants", ",".join(variants)], stdout=subprocess.PIPE, text=True)
        for line in p.stdout:
            rows.append(json.loads(line))
            print(line, end="", flush=True)
        p.wait()
    finally:
        sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(work, ignore_errors=True)
    load = "load average {:.1f} {:.1f} {:.1f} at the end".format(*os.getloadavg())
    if args.note:
        load += f"; {args.note}"
    write_section(args.results, "livepath", report(rows, load, ring))


if __name__ == "__main__":
    main()
