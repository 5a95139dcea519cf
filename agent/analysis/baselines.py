"""Baselines: what normal looks like, learned from a span of windows.

Four types, as the seeds have them: bandwidth (bits/s per window),
latency (handshake RTT and response time, ms, pooled over the windows'
samples), protocol (each protocol's share of a window's packets) and
connection (new connections per window).  Each statistic set has mean,
median, min, max, p95, p99, std and the count it was learned from.

Learning streams: a Learner takes one window at a time and keeps only the
figures it needs (8 bytes each), so a day of 10 s windows costs a few MB,
not every window's whole dict at once (200 MB for 8,640 windows: the soak's
step).  Beyond MAX_VALUES values a series keeps a uniform sample for its
median and percentiles (count, mean, std, min and max stay exact) and says
how many it sampled."""
import array
import json
import math
import random
import statistics
import time

from hwdrivers.windows import percentile

TYPES = ("bandwidth", "latency", "protocol", "connection")
MAX_VALUES = 1 << 17     # per series: about 15 days of 10 s windows before sampling starts


def describe(values) -> dict:
    if not values:
        return {"count": 0}
    return {"count": len(values), "mean": round(statistics.fmean(values), 6),
            "median": round(statistics.median(values), 6), "min": min(values), "max": max(values),
            "p95": percentile(values, 95), "p99": percentile(values, 99),
            "std": round(statistics.pstdev(values), 6) if len(values) > 1 else 0.0}


class Series:
    """One figure over the windows: exact up to `cap` values, then a uniform sample of them."""

    def __init__(self, typecode: str = "d", cap: int = MAX_VALUES, leading_zeros: int = 0):
        self.values = array.array(typecode)
        self.cap = cap
        self.n = 0
        self.mean = self.m2 = 0.0
        self.lo = self.hi = None
        self._rng = random.Random(0)     # the same windows learn the same baseline
        for _ in range(leading_zeros):   # a protocol first seen now had a share of 0 in the windows before
            self.add(0)

    def _moments(self, v) -> None:
        n = self.n + 1
        delta = v - self.mean
        self.mean += delta / n
        self.m2 += delta * (v - self.mean)
        self.lo = v if self.lo is None or v < self.lo else self.lo
        self.hi = v if self.hi is None or v > self.hi else self.hi
        self.n = n

    def add(self, v) -> None:
        self._moments(v)
        if len(self.values) < self.cap:
            self.values.append(v)
        else:
            j = self._rng.randrange(self.n)
            if j < self.cap:
                self.values[j] = v

    def describe(self) -> dict:
        if self.n == len(self.values):
            return describe(self.values)
        return {"count": self.n, "sampled": len(self.values), "mean": round(self.mean, 6),
                "median": round(statistics.median(self.values), 6), "min": self.lo, "max": self.hi,
                "p95": percentile(self.values, 95), "p99": percentile(self.values, 99),
                "std": round(math.sqrt(self.m2 / self.n), 6)}


class Learner:
    """A baseline learned one window at a time (windows as hwdrivers.windows makes them, or stored).
    Only windows that had traffic count: an idle machine is not the baseline of a busy one."""

    def __init__(self, types=TYPES, cap: int = MAX_VALUES):
        self.types, self.cap = tuple(types), cap
        self.windows = 0
        self.bps, self.pps, self.rtt, self.resp = (Series(cap=cap) for _ in range(4))
        self.connections = Series("q", cap)
        self.shares: dict = {"l4": {}, "applications": {}}   # part -> protocol -> Series

    def add(self, w: dict) -> None:
        if not w["record_count"]:
            return
        self.windows += 1
        if "bandwidth" in self.types:
            self.bps.add(w["bandwidth"]["avg_bps"])
            self.pps.add(w["bandwidth"]["avg_pps"])
        if "latency" in self.types:
            lat = w["latency"]
            if lat["p95_rtt"] is not None:
                self.rtt.add(lat["p95_rtt"])
            if lat["response_time"]["p95"] is not None:
                self.resp.add(lat["response_time"]["p95"])
        if "protocol" in self.types:
            for part, series in self.shares.items():
                shares = w["protocol"][part]
                for name in shares:
                    if name not in series:
                        series[name] = Series(cap=self.cap, leading_zeros=self.windows - 1)
                for name, s in series.items():
                    s.add(shares.get(name, 0.0))
        if "connection" in self.types:
            self.connections.add(w["connections"]["total"])

    def result(self) -> dict:
        """{type: stats}."""
        out = {}
        if "bandwidth" in self.types:
            out["bandwidth"] = {**self.bps.describe(), "pps": self.pps.describe()}
        if "latency" in self.types:
            out["latency"] = {**self.rtt.describe(), "response_time": self.resp.describe()}
        if "protocol" in self.types:
            out["protocol"] = {"count": self.windows, **{
                part: {n: series[n].describe() for n in sorted(series)} for part, series in self.shares.items()}}
        if "connection" in self.types:
            out["connection"] = self.connections.describe()
        return out


def learn(windows, types=TYPES) -> dict:
    """{type: stats} from an iterable of windows."""
    learner = Learner(types)
    for w in windows:
        learner.add(w)
    return learner.result()


def save(store, name: str, learned: dict, window_s: int, source: str, windows: int) -> None:
    now = time.time()
    rows = [(name, t, json.dumps(stats), window_s, source, windows, now) for t, stats in learned.items()]
    store.write(lambda c: c.executemany(
        "INSERT OR REPLACE INTO baselines (name, type, stats, window_s, source, windows, created) VALUES (?,?,?,?,?,?,?)",
        rows))


def load(store, name: str) -> dict:
    """{type: stats} of a stored baseline ({} when there is none)."""
    rows = store.query("SELECT type, stats FROM baselines WHERE name = ?", (name,))
    return {r["type"]: json.loads(r["stats"]) for r in rows}


def stats_view(baselines: dict) -> dict:
    """The seeds' GET /baselines/stats shape."""
    out = {}
    b = baselines.get("bandwidth")
    if b and b.get("count"):
        out["bandwidth"] = {"mean_bps": b["mean"], "median_bps": b["median"], "max_bps": b["max"],
                            "min_bps": b["min"], "p95_bps": b["p95"]}
    lat = baselines.get("latency")
    if lat and lat.get("count"):
        out["latency"] = {"mean_rtt": lat["mean"], "median_rtt": lat["median"], "p95_rtt": lat["p95"],
                          "p99_rtt": lat["p99"]}
    p = baselines.get("protocol")
    if p:
        out["protocol"] = {"distribution": {part: {k: v.get("mean") for k, v in p[part].items()}
                                            for part in ("l4", "applications")}}
    c = baselines.get("connection")
    if c and c.get("count"):
        out["connection"] = {"mean_connections": c["mean"], "median_connections": c["median"]}
    return out
