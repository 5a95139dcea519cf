"""Baselines: what normal looks like, learned from a span of windows.

Four types, as the seeds have them: bandwidth (bits/s per window),
latency (handshake RTT and response time, ms, pooled over the windows'
samples), protocol (each protocol's share of a window's packets) and
connection (new connections per window).  Each statistic set has mean,
median, min, max, p95, p99, std and the count it was learned from."""
import json
import statistics
import time

from hwdrivers.windows import percentile

TYPES = ("bandwidth", "latency", "protocol", "connection")


def describe(values: list) -> dict:
    if not values:
        return {"count": 0}
    return {"count": len(values), "mean": round(statistics.fmean(values), 6),
            "median": round(statistics.median(values), 6), "min": min(values), "max": max(values),
            "p95": percentile(values, 95), "p99": percentile(values, 99),
            "std": round(statistics.pstdev(values), 6) if len(values) > 1 else 0.0}


def _full(windows: list) -> list:
    """Windows that had traffic: an idle machine is not the baseline of a busy one."""
    return [w for w in windows if w["record_count"]]


def learn(windows: list, types=TYPES) -> dict:
    """{type: stats} from windows (dicts as hwdrivers.windows makes them, or stored)."""
    full = _full(windows)
    out = {}
    if "bandwidth" in types:
        out["bandwidth"] = {**describe([w["bandwidth"]["avg_bps"] for w in full]),
                            "pps": describe([w["bandwidth"]["avg_pps"] for w in full])}
    if "latency" in types:
        rtts = [w["latency"]["p95_rtt"] for w in full if w["latency"]["p95_rtt"] is not None]
        resp = [w["latency"]["response_time"]["p95"] for w in full if w["latency"]["response_time"]["p95"] is not None]
        out["latency"] = {**describe(rtts), "response_time": describe(resp)}
    if "protocol" in types:
        proto = {"count": len(full)}
        for part in ("l4", "applications"):
            names = sorted({k for w in full for k in w["protocol"][part]})
            proto[part] = {n: describe([w["protocol"][part].get(n, 0.0) for w in full]) for n in names}
        out["protocol"] = proto
    if "connection" in types:
        out["connection"] = describe([w["connections"]["total"] for w in full])
    return out


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
