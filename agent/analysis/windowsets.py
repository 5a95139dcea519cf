"""The analysis service: windows of the live capture (from the bus) and of
capture files (computed in the background), stored in window sets, with
baselines and anomalies, and what the faces ask of them.

A window set is one series: a live capture run, or one pcap computation.
The "current" set, unless one is named, is the newest."""
import concurrent.futures
import json
import logging
import os
import threading
import time
from typing import Optional

from agent.analysis import anomalies as detection
from agent.analysis import baselines as learning
from agent.analysis import windows as offline
from agent.bus import iso
from agent.errors import AgentError, validation
from agent.events import Anomaly
from agent.confine import confine
from agent.services import Service
from hwdrivers import CaptureError

log = logging.getLogger(__name__)
DEFAULT_BASELINE = "default"
CHUNK = 256     # windows read at once when going over a set (about 6 MB of dicts at the soak's traffic)


def _no_windows(set_id=None) -> AgentError:
    return AgentError("METRICS_NOT_COMPUTED", "no traffic windows yet: run POST /v1/windows/compute first "
                      "(or let a capture run for a window)", {"hint": "POST /v1/windows/compute", "set": set_id},
                      status=400)


class AnalysisService(Service):
    name = "analysis"
    channels = ("windows:closed", "capture:state")
    queue_size = 1024

    def start(self, agent) -> None:
        self.agent = agent
        self.cfg = agent.cfg.analysis
        self.store = agent.store
        self.bus = agent.bus
        self.live_set: Optional[int] = None
        self.live_detector: Optional[detection.Detector] = None
        self.live_first: Optional[float] = None
        self.live_learned = False
        self._jobs = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="analysis-job")
        self._lock = threading.Lock()
        # runs left unfinished by a stop are over
        self.store.write(lambda c: c.execute(
            "UPDATE window_sets SET status = 'failed', error = 'agent stopped' WHERE status = 'running'"))

    def stop(self) -> None:
        self._jobs.shutdown(wait=False, cancel_futures=True)

    def detail(self) -> dict:
        return {"live_set": self.live_set, "baseline_complete": self.baseline_complete()}

    # ---- live ---------------------------------------------------------------------

    def handle(self, env) -> None:
        if env.channel == "capture:state":
            if env.event_type == "capture_started":
                self.live_set = self._new_set("live", env.data.source, self.agent.capture.window_s,
                                              "running")
                self.live_detector = detection.Detector(self.cfg, self.baseline(DEFAULT_BASELINE))
                self.live_first, self.live_learned = None, False
            elif env.event_type == "capture_stopped" and self.live_set is not None:
                self._finish_set(self.live_set, "complete")
                self.live_set = None
            return
        if env.event_type == "window_closed" and self.live_set is not None:
            w = env.data.window
            self._store_windows(self.live_set, [w])
            found = self.live_detector.detect(w)
            self._store_anomalies(self.live_set, found)
            for a in found:
                self.bus.publish("anomalies:detected", "anomaly_detected", Anomaly(**a), source="analysis")
            if self.live_first is None:
                self.live_first = w["window_start"]
            self._maybe_learn(w["window_end"])

    def _maybe_learn(self, now: float) -> None:
        """The live baseline is complete once baseline_duration_hours of windows were seen."""
        if self.live_learned or self.live_first is None \
                or now - self.live_first < self.cfg.baseline_duration_hours * 3600:
            return
        self.live_learned = True  # looked up once per capture, not on every window
        if self.baseline(DEFAULT_BASELINE):
            return
        self.generate_baselines(types=learning.TYPES, set_id=self.live_set, force=True)
        log.info("baseline %r learned from %.1f h of live windows", DEFAULT_BASELINE,
                 self.cfg.baseline_duration_hours)

    # ---- storage ---------------------------------------------------------------------

    def _new_set(self, kind: str, source: str, window_s: int, status: str) -> int:
        return self.store.write(lambda c: c.execute(
            "INSERT INTO window_sets (kind, source, window_s, created, status) VALUES (?, ?, ?, ?, ?)",
            (kind, source, window_s, time.time(), status)).lastrowid)

    def _finish_set(self, set_id: int, status: str, error: Optional[str] = None) -> None:
        self.store.write(lambda c: c.execute(
            "UPDATE window_sets SET status = ?, error = ?, finished = ?, progress = 100 WHERE id = ?",
            (status, error, time.time(), set_id)))

    def _store_windows(self, set_id: int, windows: list) -> None:
        rows = [(set_id, w["window_id"], w["window_start"], w["window_end"], w["record_count"],
                 w["bandwidth"]["bytes"], json.dumps(w)) for w in windows]
        self.store.write(lambda c: c.executemany(
            "INSERT OR REPLACE INTO windows (set_id, idx, start, end, packets, bytes, data) VALUES (?,?,?,?,?,?,?)",
            rows))

    def _store_anomalies(self, set_id: int, found: list) -> None:
        if not found:
            return
        now = time.time()
        rows = [(set_id, a["window_id"], a["window_start"], a["window_end"], a["type"], a["severity"], a["message"],
                 a["metric"], json.dumps(a["current_value"]), json.dumps(a["threshold"]), a["flow_src"],
                 a["flow_dst"], a["key"], now) for a in found]
        self.store.write(lambda c: c.executemany(
            "INSERT INTO anomalies (set_id, window_idx, window_start, window_end, type, severity, message, metric,"
            " current_value, threshold, flow_src, flow_dst, key, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows))

    # ---- window sets ------------------------------------------------------------------

    def sets(self) -> list:
        return self.store.query("SELECT * FROM window_sets ORDER BY id DESC LIMIT 100")

    def current_set(self, set_id: Optional[int] = None) -> dict:
        if set_id:
            rows = self.store.query("SELECT * FROM window_sets WHERE id = ?", (set_id,))
            if not rows:
                raise AgentError("NOT_FOUND", f"window set {set_id} not found", {"set": set_id})
            return rows[0]
        rows = self.store.query("SELECT * FROM window_sets WHERE id IN (SELECT set_id FROM windows) "
                                "ORDER BY id DESC LIMIT 1")
        if not rows:
            raise _no_windows()
        return rows[0]

    def windows(self, set_id: Optional[int] = None, limit: int = 50, offset: int = 0) -> dict:
        ws = self.current_set(set_id)
        total = self.store.query("SELECT COUNT(*) AS n FROM windows WHERE set_id = ?", (ws["id"],))[0]["n"]
        rows = self.store.query("SELECT data FROM windows WHERE set_id = ? ORDER BY idx LIMIT ? OFFSET ?",
                                (ws["id"], limit, offset))
        items = [json.loads(r["data"]) for r in rows]
        return {"count": len(items), "total": total, "offset": offset, "limit": limit, "set": _set_view(ws),
                "windows": items}

    def window(self, window_id: int, set_id: Optional[int] = None) -> dict:
        ws = self.current_set(set_id)
        rows = self.store.query("SELECT data FROM windows WHERE set_id = ? AND idx = ?", (ws["id"], window_id))
        if not rows:
            total = self.store.query("SELECT COUNT(*) AS n FROM windows WHERE set_id = ?", (ws["id"],))[0]["n"]
            raise AgentError("NOT_FOUND", f"window {window_id} not found",
                             {"window_id": window_id, "total_windows": total, "set": ws["id"]})
        return {**json.loads(rows[0]["data"]), "set": ws["id"]}

    def iter_windows(self, set_id: int, start: Optional[float] = None, end: Optional[float] = None):
        """The set's windows in order, read CHUNK at a time: a day of live windows is 200 MB as dicts,
        and nothing that goes over them (learning, detection, the summary) needs them all at once."""
        after = -1
        while True:
            rows = self.store.query(
                "SELECT idx, data FROM windows WHERE set_id = ? AND idx > ? AND start >= ? AND end <= ?"
                " ORDER BY idx LIMIT ?", (set_id, after, start if start is not None else -1e18,
                                          end if end is not None else 1e18, CHUNK))
            for r in rows:
                yield json.loads(r["data"])
            if len(rows) < CHUNK:
                return
            after = rows[-1]["idx"]

    def summary(self, set_id: Optional[int] = None) -> dict:
        ws = self.current_set(set_id)
        n = packets = bytes_ = conns = 0
        first = last = max_rtt = None
        bps: list = []      # one float a window (a day of 10 s windows: 8,640), for the mean, max and min
        rtts: list = []
        for x in self.iter_windows(ws["id"]):
            n, packets, bytes_ = n + 1, packets + x["record_count"], bytes_ + x["bandwidth"]["bytes"]
            conns += x["connections"]["total"]
            first, last = first if first is not None else x["window_start"], x["window_end"]
            bps.append(x["bandwidth"]["avg_bps"])
            lat = x["latency"]
            if lat["mean_rtt"] is not None:
                rtts.append(lat["mean_rtt"])
            if lat["max_rtt"] is not None:
                max_rtt = lat["max_rtt"] if max_rtt is None else max(max_rtt, lat["max_rtt"])
        return {"set": _set_view(ws), "total_windows": n,
                "time_span": round(last - first, 6) if n else 0.0, "packets": packets, "bytes": bytes_,
                "bandwidth": {"mean_bps": round(sum(bps) / len(bps), 3) if bps else None,
                              "max_bps": max(bps, default=None), "min_bps": min(bps, default=None)},
                "latency": {"mean_rtt": round(sum(rtts) / len(rtts), 3) if rtts else None, "max_rtt": max_rtt},
                "connections": {"total_across_windows": conns, "mean_per_window": round(conns / n, 3) if n else 0.0}}

    # ---- computing a capture file ----------------------------------------------------------

    def compute(self, pcap_file: str, window_s: int, force: bool) -> tuple:
        """(status, body): 200 with a finished set for the same file and size unless force, else 202
        with the job (its set) and where to follow it."""
        path = confine(pcap_file, self.agent.cfg.pcap_dirs(), "pcap_file", "capture file")
        if not force:
            done = self.store.query("SELECT * FROM window_sets WHERE kind = 'pcap' AND source = ? AND window_s = ?"
                                    " AND status = 'complete' ORDER BY id DESC LIMIT 1", (path, window_s))
            if done:
                return 200, {"message": "already computed (force to compute again)", "set": _set_view(done[0]),
                             "window_count": self._count(done[0]["id"])}
        set_id = self._new_set("pcap", path, window_s, "queued")
        self._jobs.submit(self._compute_job, set_id, path, window_s)
        return 202, {"message": "computing", "job_id": set_id, "set": set_id, "status": "queued",
                     "status_url": f"/v1/windows/jobs/{set_id}", "window_size": window_s}

    def _count(self, set_id: int) -> int:
        return self.store.query("SELECT COUNT(*) AS n FROM windows WHERE set_id = ?", (set_id,))[0]["n"]

    def _compute_job(self, set_id: int, path: str, window_s: int) -> None:
        started = time.monotonic()
        self.store.write(lambda c: c.execute("UPDATE window_sets SET status = 'running' WHERE id = ?", (set_id,)))

        def progress(fraction: float):
            self.store.submit_nowait(lambda c: c.execute("UPDATE window_sets SET progress = ? WHERE id = ?",
                                                         (round(fraction * 100, 1), set_id)))
        detector, counts = detection.Detector(self.cfg, self.baseline(DEFAULT_BASELINE)), [0, 0]

        def store(batch: list) -> None:          # as the windows close: a long capture's are not all held
            found = [a for w in batch for a in detector.detect(w)]
            self._store_windows(set_id, batch)
            self._store_anomalies(set_id, found)
            counts[0], counts[1] = counts[0] + len(batch), counts[1] + len(found)
        try:
            _, error = offline.compute(path, window_s, long_flow_s=self.cfg.long_lived_s, progress=progress,
                                       sink=store)
            if error is not None:
                self._finish_set(set_id, "failed", error.message)
            else:
                self._finish_set(set_id, "complete")
            log.info("windows of %s: %d in %.2f s, %d anomalies", path, counts[0], time.monotonic() - started,
                     counts[1])
        except CaptureError as e:
            self._finish_set(set_id, "failed", e.message)
        except Exception as e:  # the job fails, the service goes on
            log.exception("computing windows of %s failed", path)
            self._finish_set(set_id, "failed", f"{type(e).__name__}: {e}")

    def job(self, set_id: int) -> dict:
        rows = self.store.query("SELECT * FROM window_sets WHERE id = ?", (set_id,))
        if not rows:
            raise AgentError("NOT_FOUND", f"job {set_id} not found", {"job_id": set_id})
        return {**_set_view(rows[0]), "window_count": self._count(set_id)}

    # ---- anomalies ----------------------------------------------------------------------

    def anomalies(self, set_id=None, type_: str = "", severity: str = "", limit: int = 100, offset: int = 0,
                  window_id: Optional[int] = None) -> dict:
        ws = self.current_set(set_id)
        where, args = ["set_id = ?"], [ws["id"]]
        for col, val in (("type", type_), ("severity", severity)):
            if val:
                where.append(f"{col} = ?")
                args.append(val)
        if window_id is not None:
            where.append("window_idx = ?")
            args.append(window_id)
        clause = " AND ".join(where)
        total = self.store.query(f"SELECT COUNT(*) AS n FROM anomalies WHERE {clause}", tuple(args))[0]["n"]
        rows = self.store.query(f"SELECT * FROM anomalies WHERE {clause} ORDER BY window_idx, id LIMIT ? OFFSET ?",
                                (*args, limit, offset))
        items = [_anomaly_view(r) for r in rows]
        return {"count": len(items), "total": total, "offset": offset, "limit": limit,
                "filters": {"type": type_ or None, "severity": severity or None}, "set": ws["id"],
                "anomalies": items}

    def by_type(self, set_id=None) -> dict:
        ws = self.current_set(set_id)
        rows = self.store.query("SELECT type, severity, COUNT(*) AS n FROM anomalies WHERE set_id = ?"
                                " GROUP BY type, severity", (ws["id"],))
        out: dict = {}
        for r in rows:
            t = out.setdefault(r["type"], {"count": 0, "by_severity": {}})
            t["count"] += r["n"]
            t["by_severity"][r["severity"]] = r["n"]
        return {"total": sum(t["count"] for t in out.values()), "set": ws["id"], "by_type": out}

    def top(self, set_id=None, limit: int = 10) -> dict:
        ws = self.current_set(set_id)
        rows = self.store.query(
            "SELECT type, key, COUNT(*) AS count, MIN(window_start) AS first_seen, MAX(window_end) AS last_seen,"
            " MAX(CASE severity WHEN 'high' THEN 2 ELSE 1 END) AS sev,"
            " (SELECT message FROM anomalies b WHERE b.set_id = a.set_id AND b.key = a.key ORDER BY id DESC LIMIT 1)"
            " AS message, MAX(flow_src) AS flow_src, MAX(flow_dst) AS flow_dst"
            " FROM anomalies a WHERE set_id = ? GROUP BY type, key ORDER BY count DESC, last_seen DESC LIMIT ?",
            (ws["id"], limit))
        return {"set": ws["id"], "top": [{"type": r["type"], "severity": "high" if r["sev"] == 2 else "medium",
                                          "message": r["message"], "count": r["count"],
                                          "first_seen": r["first_seen"], "last_seen": r["last_seen"],
                                          "flow_src": r["flow_src"], "flow_dst": r["flow_dst"]} for r in rows]}

    def detect(self, set_id=None, force: bool = False, window_start=None, window_end=None,
               baseline: str = DEFAULT_BASELINE) -> dict:
        ws = self.current_set(set_id)
        started = time.monotonic()
        existing = self.store.query("SELECT COUNT(*) AS n FROM anomalies WHERE set_id = ?", (ws["id"],))[0]["n"]
        if existing and not force and window_start is None and window_end is None:
            rows = self.store.query("SELECT type, severity FROM anomalies WHERE set_id = ?", (ws["id"],))
            return {"message": "anomalies already detected (force to detect again)", "anomaly_count": existing,
                    "detection_time": 0.0, "summary": detection.summarize(rows), "set": ws["id"],
                    "timestamp": iso(time.time())}
        detector, found, n, lo, hi = detection.Detector(self.cfg, self.baseline(baseline)), [], 0, None, None
        for w in self.iter_windows(ws["id"], window_start, window_end):
            found.extend(detector.detect(w))
            n, lo, hi = n + 1, w["window_id"] if lo is None else lo, w["window_id"]
        if not n:
            raise _no_windows(ws["id"])
        self.store.write(lambda c: c.execute(
            "DELETE FROM anomalies WHERE set_id = ? AND window_idx BETWEEN ? AND ?", (ws["id"], lo, hi)))
        self._store_anomalies(ws["id"], found)
        return {"message": "Anomaly detection completed", "anomaly_count": len(found),
                "detection_time": round(time.monotonic() - started, 3), "summary": detection.summarize(found),
                "windows": n, "baseline": baseline if self.baseline(baseline) else None,
                "set": ws["id"], "timestamp": iso(time.time())}

    # ---- baselines ---------------------------------------------------------------------------

    def baseline(self, name: str = DEFAULT_BASELINE) -> dict:
        return learning.load(self.store, name)

    def baseline_complete(self) -> bool:
        return bool(self.baseline(DEFAULT_BASELINE))

    def baselines(self, name: str = DEFAULT_BASELINE) -> dict:
        rows = self.store.query("SELECT * FROM baselines WHERE name = ?", (name,))
        return {"available": len(rows), "name": name, "baseline_complete": self.baseline_complete(),
                "baseline_duration_hours": self.cfg.baseline_duration_hours,
                "baselines": {r["type"]: json.loads(r["stats"]) for r in rows},
                "learned_from": {r["type"]: {"source": r["source"], "windows": r["windows"], "window_s": r["window_s"],
                                             "created": iso(r["created"])} for r in rows},
                "timestamp": iso(time.time())}

    def baseline_of(self, type_: str, name: str = DEFAULT_BASELINE) -> dict:
        rows = self.store.query("SELECT * FROM baselines WHERE name = ? AND type = ?", (name, type_))
        if not rows:
            raise AgentError("NOT_FOUND", f"baseline {type_} not found", {"type": type_, "name": name})
        return {"type": type_, "name": name, "baseline": json.loads(rows[0]["stats"]),
                "timestamp": iso(rows[0]["created"])}

    def generate_baselines(self, types=learning.TYPES, set_id=None, force: bool = False, name: str = DEFAULT_BASELINE,
                           window_start=None, window_end=None) -> dict:
        unknown = set(types) - set(learning.TYPES)
        if unknown:
            raise validation(f"unknown baseline type {sorted(unknown)[0]!r}", field="types", choices=list(learning.TYPES))
        ws = self.current_set(set_id)
        started = time.monotonic()
        have = {r["type"] for r in self.store.query("SELECT type FROM baselines WHERE name = ?", (name,))}
        todo = [t for t in types if force or t not in have]
        generated = {t: t in todo for t in types}
        if todo:
            learner, n = learning.Learner(todo), 0
            for w in self.iter_windows(ws["id"], window_start, window_end):
                learner.add(w)
                n += 1
            if not n:
                raise _no_windows(ws["id"])
            learning.save(self.store, name, learner.result(), ws["window_s"], f"set {ws['id']}: {ws['source']}", n)
        return {"message": "Baselines generated" if todo else "baselines exist (force to learn them again)",
                "name": name, "generated": generated, "set": ws["id"],
                "generation_time": round(time.monotonic() - started, 3), "timestamp": iso(time.time())}

    def baseline_stats(self, name: str = DEFAULT_BASELINE) -> dict:
        b = self.baseline(name)
        if not b:
            raise AgentError("NOT_FOUND", f"no baseline {name!r}: POST /v1/baselines/generate first", {"name": name})
        return {"name": name, "baseline_stats": learning.stats_view(b), "timestamp": iso(time.time())}


def _set_view(row: dict) -> dict:
    return {"id": row["id"], "kind": row["kind"], "source": os.path.basename(row["source"]) if row["kind"] == "pcap"
            else row["source"], "window_size": row["window_s"], "status": row["status"], "progress": row["progress"],
            "error": row["error"], "created": iso(row["created"]), "finished": iso(row["finished"])}


def _anomaly_view(r: dict) -> dict:
    return {"id": r["id"], "type": r["type"], "severity": r["severity"], "window_id": r["window_idx"],
            "window_start": r["window_start"], "window_end": r["window_end"], "message": r["message"],
            "metric": r["metric"], "current_value": json.loads(r["current_value"]),
            "threshold": json.loads(r["threshold"]), "flow_src": r["flow_src"], "flow_dst": r["flow_dst"]}
