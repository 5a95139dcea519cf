"""The stats_samples table: what the stats thread writes every store.stats_interval_s
(packets, rates, CPU and memory) and publishes on system:health, and what
/v1/stats reads back over a period with the capture runs and the findings."""
import json
import time

from agent.events import SystemHealth
from agent.stats import system


def sample(data_dir, capture, store, bus, health) -> tuple:
    """One sample row written (never waiting on the store) and published; (health status, pps)."""
    sysinfo = system.system(str(data_dir))
    run = capture.run
    c = capture.counters()
    row = (time.time(), c.packets if c else 0, c.bytes if c else 0,
           (c.backend_dropped + c.backend_if_dropped) if c else 0, c.flows_active if c else 0,
           run.rates.pps if run else 0.0, run.rates.bps if run else 0.0,
           sysinfo["cpu_percent"], sysinfo["memory"]["percent"])
    store.submit_nowait(lambda conn: conn.execute(
        "INSERT INTO stats_samples VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row))
    status = health.status()
    bus.publish("system:health", "health", SystemHealth(status, sysinfo["cpu_percent"], sysinfo["memory"]["percent"],
                                                        row[5], row[6]), source="agent")
    return status, row[5]


def summary(agent, period_s: int) -> dict:
    """The figures of the last period_s seconds, for /v1/stats."""
    since = time.time() - period_s
    rows, runs, ended = agent.store.read(lambda q: (
        q("SELECT COUNT(*) AS samples, MIN(ts) AS first, MAX(ts) AS last, MAX(pps) AS max_pps, AVG(pps) AS avg_pps,"
          " MAX(bps) AS max_bps, AVG(bps) AS avg_bps, MAX(flows_active) AS max_flows_active,"
          " AVG(cpu_percent) AS avg_cpu_percent, MAX(memory_percent) AS max_memory_percent"
          " FROM stats_samples WHERE ts >= ?", (since,))[0],
        q("SELECT id, started, stopped, backend, source, reason, stats FROM capture_runs"
          " WHERE stopped IS NULL OR stopped >= ? ORDER BY id DESC LIMIT 20", (since,)),
        # the runs that ended in the period (whole), and the one going on
        q("SELECT COALESCE(SUM(json_extract(stats, '$.packets')), 0) AS packets,"
          " COALESCE(SUM(json_extract(stats, '$.malformed')), 0) AS malformed,"
          " COALESCE(SUM(json_extract(stats, '$.dropped')), 0) AS dropped"
          " FROM capture_runs WHERE stopped >= ? AND stats IS NOT NULL", (since,))[0]))   # one snapshot
    runs = [{**r, "stats": json.loads(r["stats"]) if r["stats"] else None} for r in runs]
    c = agent.capture.counters()
    run = agent.capture.run
    packets = ended["packets"] + (c.packets if c else 0)
    capture = {"packets_captured": packets,
               "packets_analyzed": packets - ended["malformed"] - (c.malformed if c else 0),
               "packets_dropped": ended["dropped"] + ((c.backend_dropped + c.backend_if_dropped) if c else 0),
               "capture_rate_pps": round(run.rates.pps, 1) if run else 0.0,
               "flows_active": c.flows_active if c else 0, "running": run is not None}
    threats = agent.threats.stats(since)
    verification = agent.verifier.stats(since)
    verification.update(attacks_confirmed=threats.pop("attacks_confirmed"),
                        attacks_refuted=threats.pop("attacks_refuted"))
    return {"since": since, "capture": capture, "detection": threats["detection"], "verification": verification,
            "path_statistics": verification["path_statistics"], "deception": agent.deception.stats(since),
            "top_attackers": threats["top_attackers"],
            "samples": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in rows.items()},
            "capture_runs": runs, "bus": agent.bus.stats(),
            "store": {"pending_writes": agent.store.pending, "written": agent.store.written,
                      "dropped": agent.store.dropped}}
