"""Soak: the agent under steady mixed load for a long time; does it leak?

    python bench/soak.py [--minutes 30] [--pps 50000] [--clients 50] [--streams 20] [--sources 10]
                         [--results bench/RESULTS.md]

The agent replays a synthetic capture (../shared/bench/genpcap.c: TCP, DNS,
UDP, ICMP, IPv6, VLAN tags) in a loop, paced to --pps packets a second,
while --clients REST clients poll a mix of GET routes (2 requests/s each,
keep-alive) and --streams clients hold /v1/events open, spread over --sources
loopback source addresses (127.0.0.2, 127.0.0.3, ...) like a fleet of
clients: the server gives one address a quarter of its workers, and answers
a request over that share 503.  Any answer that is not 2xx, and any request
with no answer, is an error the soak reports by status.  RSS and open file
descriptors of the agent are sampled every 30 s; the targets are RSS growth
under 5 % and a flat descriptor count from the end of a warm-up (a third of
the run, at most 10 minutes) to the end.  The warm-up is that long because
the agent's bounded queues and tables take about 8 minutes to fill at
50,000 packets/s (a 30-minute run: RSS 131 MB at 0.5 min, 178 at 3, 203 at
8, flat to 12).  Each sample also says whether the live baseline was learned:
the replay runs about 150 times faster than recorded time, so its day of
windows is complete near minute 10; learning them all at once as dicts was
a one-time step of 80 MB (agent/analysis/baselines.py now streams them).
Loopback only.  Prints one JSON object; with --results, writes its section."""
import argparse
import http.client
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import psutil

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from agent.client import Client  # noqa: E402
from load_api import free_port, start_agent, stop_agent  # noqa: E402  (bench/ is the script directory: on sys.path)
from sections import markers, write_section  # noqa: E402

GENPCAP = ROOT.parent / "shared" / "bench" / "genpcap.c"
WARMUP_MAX_S = 600.0
ROUTES = ("/v1/capture/status", "/v1/capture/metrics", "/v1/capture/flows?limit=20", "/v1/health",
          "/v1/threats?limit=10", "/v1/stats")


def make_capture(data: pathlib.Path) -> tuple:
    """(path, packets a second at the recorded pace) of a one-minute synthetic capture."""
    exe, out = data / "genpcap", data / "soak.pcap"
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(GENPCAP), "-lm"], check=True)
    subprocess.run([str(exe), "-n", "20000", "-f", "2000", "-d", "60", "-o", str(out)], check=True,
                   capture_output=True)
    truth = json.loads((data / "soak.pcap.truth.json").read_text())
    return out, truth["packets"] / 60.0


def start(data: pathlib.Path, capture: pathlib.Path, pace: float, port: int) -> subprocess.Popen:
    (data / "pcaps").mkdir(parents=True, exist_ok=True)
    shutil.copy(capture, data / "pcaps" / capture.name)
    return start_agent(data, capture.name, port, pace)


class Load:
    """The REST pollers and the event streams, in threads, counting what they get."""

    def __init__(self, port: int, key: str, sources: int):
        self.port, self.key = port, key
        self.sources = [f"127.0.0.{2 + i}" for i in range(sources)]
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.counts = {"requests": 0, "errors": 0, "events": 0, "stream_errors": 0}
        self.latencies: list = []
        self.statuses: dict = {"errors": {}, "stream_errors": {}}   # answers not 2xx, by status (0: none)

    def _count(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.counts[name] += n

    def _error(self, name: str, status: int) -> None:
        """An answer that was not 2xx (status 0: none at all), by status."""
        with self.lock:
            self.counts[name] += 1
            self.statuses[name][status] = self.statuses[name].get(status, 0) + 1

    def _connect(self, i: int, timeout: float) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout,
                                          source_address=(self.sources[i % len(self.sources)], 0))

    def poller(self, i: int) -> None:
        conn, n = None, i
        headers = {"Authorization": f"Bearer {self.key}"}
        while not self.stop.is_set():
            try:
                conn = conn or self._connect(i, 30)
                t = time.monotonic()
                conn.request("GET", ROUTES[n % len(ROUTES)], headers=headers)
                r = conn.getresponse()
                r.read()
                took = time.monotonic() - t
                with self.lock:
                    self.latencies.append(took)
                self._count("requests")
                if not 200 <= r.status < 300:
                    self._error("errors", r.status)
                if r.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                self._error("errors", 0)
                conn = None
            n += 1
            self.stop.wait(0.5)

    def stream(self, i: int) -> None:
        while not self.stop.is_set():
            conn = self._connect(i, 60)
            try:
                conn.request("GET", f"/v1/events?token={self.key}")
                r = conn.getresponse()
                if r.status != 200:
                    self._error("stream_errors", r.status)
                    self.stop.wait(1)
                    continue
                while not self.stop.is_set():
                    line = r.fp.readline()
                    if not line:
                        break
                    if line.startswith(b"id:"):
                        self._count("events")
            except (OSError, http.client.HTTPException):
                self._error("stream_errors", 0)
                self.stop.wait(1)
            finally:
                conn.close()

    def start(self, clients: int, streams: int) -> list:
        threads = [threading.Thread(target=self.poller, args=(i,), daemon=True) for i in range(clients)]
        threads += [threading.Thread(target=self.stream, args=(i,), daemon=True) for i in range(streams)]
        for t in threads:
            t.start()
        return threads


PACKET_DROPS = ("kernel", "interface", "flow_table")       # packets not captured or not metered
EVENT_LOSSES = ("event_ring", "shared_ring")               # packet events the detectors did not see


def sample(proc: psutil.Process, client: Client) -> dict:
    m = client.get("/v1/capture/metrics")
    drops = m.get("drops", {})
    learned = client.get("/v1/baselines", name="default")["baseline_complete"]
    return {"t": round(time.time(), 1), "rss_mb": round(proc.memory_info().rss / 2**20, 1), "fds": proc.num_fds(),
            "baseline": learned, "threads": proc.num_threads(), "pps": m.get("pps"), "packets": m.get("packets"),
            "drops": sum(drops.get(k, 0) for k in PACKET_DROPS),
            "events_lost": sum(drops.get(k, 0) for k in EVENT_LOSSES),
            "bus_dropped": drops.get("bus_subscribers", 0)}


def run(args) -> dict:
    data = pathlib.Path(tempfile.mkdtemp(prefix="capbox-soak-"))
    capture, native_pps = make_capture(data)
    port = free_port()
    agent = start(data / "var", capture, args.pps / native_pps, port)
    try:
        key = (data / "var" / "admin.key").read_text().strip()
        client = Client(f"http://127.0.0.1:{port}", key)
        proc = psutil.Process(agent.pid)
        begin = dict(sample(proc, client), minute=0.0, warm=False, load=os.getloadavg()[0])
        load = Load(port, key, args.sources)
        threads = load.start(args.clients, args.streams)
        seconds = args.minutes * 60
        warmup = min(WARMUP_MAX_S, seconds / 3)
        t0 = time.monotonic()
        samples = []
        while time.monotonic() - t0 < seconds:
            time.sleep(min(30.0, max(1.0, seconds - (time.monotonic() - t0))))
            if agent.poll() is not None:
                raise SystemExit(f"the agent died (exit status {agent.returncode})")
            s = sample(proc, client)
            s.update(minute=round((time.monotonic() - t0) / 60, 2), warm=time.monotonic() - t0 >= warmup,
                     load=os.getloadavg()[0])
            samples.append(s)
            print(json.dumps(s), file=sys.stderr, flush=True)
        load.stop.set()
        for t in threads:
            t.join(5)
        return summary(args, begin, samples, load, agent.poll() is None)
    finally:
        stop_agent(agent)
        shutil.rmtree(data, ignore_errors=True)


def summary(args, begin: dict, samples: list, load: Load, alive: bool) -> dict:
    """The figures of a run: from the first sample after warm-up to the last, plus the timeline."""
    warm = [s for s in samples if s["warm"]] or samples
    first, last = warm[0], samples[-1]
    lat = sorted(load.latencies)
    step = max(1, len(samples) // 10)
    out = {"minutes": args.minutes, "target_pps": args.pps, "clients": args.clients, "streams": args.streams,
           "sources": args.sources, "achieved_pps": round(sum(s["pps"] or 0 for s in warm) / len(warm)),
           "begin": begin, "start": first, "end": last,
           "timeline": [(s["minute"], s["rss_mb"], s["fds"]) for s in samples[::step] + samples[-1:]],
           "baseline_learned_minute": next((s["minute"] for s in samples if s["baseline"]), None),
           "load_avg": round(sum(s["load"] for s in samples) / len(samples), 1),
           "rss_growth_pct": round(100 * (last["rss_mb"] / first["rss_mb"] - 1), 2),
           "fd_change": last["fds"] - first["fds"], **load.counts, "error_statuses": load.statuses["errors"],
           "stream_error_statuses": load.statuses["stream_errors"],
           "p50_ms": round(1000 * lat[len(lat) // 2], 1) if lat else None,
           "p99_ms": round(1000 * lat[int(len(lat) * 0.99)], 1) if lat else None, "agent_alive": alive}
    out["met"] = (out["rss_growth_pct"] < 5 and abs(out["fd_change"]) <= 2 and alive
                  and not out["errors"] and not out["stream_errors"])
    return out


def section(r: dict, note: str) -> str:
    begin, end = markers("soak")
    b, s, e = r["begin"], r["start"], r["end"]
    timeline = ", ".join(f"{m:g} min {rss} MB/{fds}" for m, rss, fds in r["timeline"])
    return f"""{begin}
## Soak ({r['minutes']:g} minutes: bench/soak.py, `make soak`)

The agent replays a synthetic capture in a loop paced to {r['target_pps']:,} packets/s
(achieved {r['achieved_pps']:,}/s on average) while {r['clients']} REST clients poll six GET routes
(2 requests/s each, keep-alive) and {r['streams']} clients hold `/v1/events` open, spread over
{r['sources']} loopback source addresses.  Warm-up: the first third of the run (10 minutes at most);
the targets are measured from its end.  Load average of the machine during the run: {r['load_avg']}
(2 cores).  {note}

| | start (before the load) | after warm-up | end |
|---|---|---|---|
| minute | 0 | {s['minute']} | {e['minute']} |
| RSS (MB) | {b['rss_mb']} | {s['rss_mb']} | {e['rss_mb']} |
| open descriptors | {b['fds']} | {s['fds']} | {e['fds']} |
| threads | {b['threads']} | {s['threads']} | {e['threads']} |
| packets captured | {b['packets']:,} | {s['packets']:,} | {e['packets']:,} |
| packets dropped (kernel, interface, flow table) | {b['drops']:,} | {s['drops']:,} | {e['drops']:,} |
| packet events the detectors did not see (event ring, detectors' shared ring) | {b['events_lost']:,} | {s['events_lost']:,} | {e['events_lost']:,} |
| messages bus subscribers dropped (the streams' clients, services behind; one per subscriber) | {b['bus_dropped']:,} | {s['bus_dropped']:,} | {e['bus_dropped']:,} |

RSS (MB) / descriptors over the run: {timeline}.  The live baseline (a day of packet time in
10 s windows, learned a chunk of windows at a time) was complete at minute {r['baseline_learned_minute']}.

RSS growth after warm-up {r['rss_growth_pct']} % (target < 5 %), descriptors {r['fd_change']:+d} (target: flat);
{r['requests']:,} requests, {r['errors']} errors (any answer not 2xx, or none) {r['error_statuses']},
p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms; {r['events']:,} events on the streams, {r['stream_errors']} stream errors
{r['stream_error_statuses']}.  Targets {'met' if r['met'] else 'NOT met'}.
{end}
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--pps", type=int, default=50000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--streams", type=int, default=20)
    ap.add_argument("--sources", type=int, default=10, help="loopback source addresses the clients spread over")
    ap.add_argument("--results", help="write the soak section of this RESULTS.md")
    ap.add_argument("--note", default="", help="said in the section (e.g. that the machine was shared)")
    args = ap.parse_args()
    r = run(args)
    print(json.dumps(r, indent=2))
    if args.results:
        write_section(args.results, "soak", section(r, args.note))
    return 0 if r["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
