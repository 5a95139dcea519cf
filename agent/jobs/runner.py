"""Offline jobs: an uploaded capture is queued, processed by one of a
bounded pool of workers (the same C core as live capture, through
agent.calls.offline), and its calls stored as call sessions.

A job is a row in the store and a file in the jobs directory, so it
survives the agent: at start, a job that was running is queued again (or
failed, after max_attempts starts) and queued jobs are taken up in order.
Progress (bytes read) and status changes go on the bus (jobs:progress),
which GET /v1/jobs/{id}/events streams.  Finished jobs older than the
retention are removed with their files and sessions."""
import json
import logging
import os
import pathlib
import queue
import re
import threading
import time
import uuid
from typing import Optional

from agent.bus import iso
from agent.calls import offline
from agent.errors import AgentError
from agent.events import JobProgress
from agent.jobs import upload
from agent.services import Service
from hwdrivers.errors import Cancelled
from hwdrivers import CaptureError

log = logging.getLogger(__name__)
TERMINAL = ("completed", "failed")
PROGRESS_EVERY_S = 0.25
RETENTION_EVERY_S = 60.0
CANCEL_WAIT_S = 30.0


def job_not_found(job_id: str) -> AgentError:
    return AgentError("JOB_NOT_FOUND", f"job {job_id} not found", {"job_id": job_id, "resource": "job"})


def job_view(row: dict) -> dict:
    """A job in the seeds' shape (status, progress 0-100, times, totals, error), plus the file."""
    out = {"job_id": row["id"], "status": row["status"], "progress": int(row["progress"]),
           "created_at": iso(row["created"]), "filename": row["filename"], "size_bytes": row["size"]}
    if row["started"] is not None:
        out["started_at"] = iso(row["started"])
    if row["completed"] is not None:
        out["completed_at"] = iso(row["completed"])
    if row["status"] == "completed":
        out.update(total_packets=row["total_packets"], total_bytes=row["total_bytes"],
                   session_count=row["session_count"])
    if row["status"] == "failed":
        out["error"] = row["error"]
    return out


class JobsService(Service):
    name = "jobs"
    channels = None

    def start(self, agent) -> None:
        self.agent = agent
        self.cfg = agent.cfg.jobs
        self.limits = offline.Limits(max_streams=agent.cfg.calls.max_streams, max_calls=agent.cfg.calls.max_calls)
        self.store = agent.store
        self.bus = agent.bus
        self.dir = agent.cfg.jobs_dir
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.dir.chmod(0o700)          # uploaded captures are the users' traffic
        self.queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._cancel: dict = {}        # running job id -> Event
        self._finished: dict = {}      # running job id -> Event set when its worker let go
        self._next_retention = 0.0
        for stale in self.dir.glob("upload-*.part"):  # uploads cut off by a stop
            stale.unlink(missing_ok=True)
        self._recover()
        self.workers = []
        for i in range(self.cfg.workers):
            c = agent.health.register(f"jobs-worker-{i + 1}", critical=False)
            agent.health.spawn(c, self._worker)
            self.workers.append(c)

    def _recover(self) -> None:
        """Jobs the last run left unfinished are queued again, never lost."""
        rows = self.store.query("SELECT * FROM jobs WHERE status IN ('queued', 'running') ORDER BY created")
        for r in rows:
            if not os.path.isfile(r["path"]):
                self._fail(r["id"], "the uploaded file is gone")
                continue
            if r["status"] == "running" and r["attempts"] >= self.cfg.max_attempts:
                self._fail(r["id"], f"the agent stopped while processing it, {r['attempts']} times")
                continue
            if r["status"] == "running":
                self.store.write(lambda c, i=r["id"]: c.execute(
                    "UPDATE jobs SET status = 'queued', progress = 0, started = NULL WHERE id = ?", (i,)))
                log.info("job %s was running when the agent stopped: queued again", r["id"])
            self.queue.put(r["id"])

    def detail(self) -> dict:
        return {"queued": self.queue.qsize(), "running": len(self._cancel), "workers": self.cfg.workers}

    def tick(self, now: float) -> None:
        if now >= self._next_retention:
            self._next_retention = now + min(RETENTION_EVERY_S, self.cfg.retention_hours * 3600 / 4)
            self.expire(now)

    def stop(self) -> None:
        for ev in list(self._cancel.values()):
            ev.set()  # running jobs stop at their next look; they stay 'running' and are requeued at start
        for _ in self.workers:
            self.queue.put(None)    # an idle worker wakes now, not at its next poll

    # ---- the faces' calls -------------------------------------------------------------

    def submit(self, environ: dict) -> dict:
        """A job from an upload (the request's multipart body)."""
        waiting = self.store.query("SELECT COUNT(*) AS n FROM jobs WHERE status = 'queued'")[0]["n"]
        if waiting >= self.cfg.max_queued:
            raise AgentError("JOB_QUEUE_FULL", f"{waiting} jobs are waiting already; try again later",
                             {"max_queued": self.cfg.max_queued})
        name, tmp, size, fmt = upload.receive(environ, str(self.dir), self.cfg.max_size_mb << 20)
        job_id = str(uuid.uuid4())
        path = self.dir / f"{job_id}.{fmt}"
        os.replace(tmp, path)
        try:
            self.store.write(lambda c: c.execute(
                "INSERT INTO jobs (id, status, filename, path, size, created) VALUES (?, 'queued', ?, ?, ?, ?)",
                (job_id, name, str(path), size, time.time())))
        except Exception:
            path.unlink(missing_ok=True)
            raise
        log.info("job %s queued: %s (%d bytes)", job_id, name, size)
        self._publish(job_id, "status", {"status": "queued"})
        self.queue.put(job_id)
        return {"job_id": job_id, "status": "queued"}

    def _row(self, job_id: str) -> dict:
        rows = self.store.query("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise job_not_found(job_id)
        return rows[0]

    def get(self, job_id: str) -> dict:
        return job_view(self._row(job_id))

    def list(self) -> dict:
        rows = self.store.query("SELECT * FROM jobs ORDER BY created DESC")
        return {"jobs": [job_view(r) for r in rows], "total": len(rows)}

    def sessions(self, job_id: str, page: int, limit: int) -> dict:
        row = self._row(job_id)
        if row["status"] != "completed":
            raise AgentError("JOB_NOT_COMPLETED", f"job {job_id} is {row['status']}, not completed yet",
                             {"job_id": job_id, "current_status": row["status"]})
        total = self.store.query("SELECT COUNT(*) AS n FROM call_sessions WHERE job_id = ?", (job_id,))[0]["n"]
        rows = self.store.query("SELECT summary FROM call_sessions WHERE job_id = ? ORDER BY start_ts, rowid"
                                " LIMIT ? OFFSET ?", (job_id, limit, (page - 1) * limit))
        return {"job_id": job_id, "page": page, "limit": limit, "total": total,
                "sessions": [json.loads(r["summary"]) for r in rows]}

    def delete(self, job_id: str, cancel: bool = False) -> dict:
        row = self._row(job_id)
        cancelled = False
        # in _cancel and still queued: being claimed; completed or failed: its worker is only letting go
        if row["status"] == "running" or (job_id in self._cancel and row["status"] == "queued"):
            if not cancel:
                raise AgentError("CANNOT_DELETE_JOB", f"job {job_id} is running: wait, or DELETE with ?cancel=true",
                                 {"job_id": job_id, "current_status": "running", "hint": "?cancel=true"})
            with self._lock:
                ev, finished = self._cancel.get(job_id), self._finished.get(job_id)
            if ev is not None:
                ev.set()
                if not finished.wait(CANCEL_WAIT_S):
                    raise AgentError("CANNOT_DELETE_JOB", f"job {job_id} did not stop in {CANCEL_WAIT_S:.0f} s",
                                     {"job_id": job_id, "current_status": "running"})
            cancelled = True
        self._remove(job_id, row["path"])
        self._publish(job_id, "status", {"status": "deleted", "cancelled": cancelled})
        log.info("job %s deleted%s", job_id, " (cancelled)" if cancelled else "")
        return {"message": "Job cancelled and deleted" if cancelled else "Job deleted successfully",
                "job_id": job_id, "cancelled": cancelled}

    def _remove(self, job_id: str, path: str) -> None:
        self.store.write(lambda c: c.execute("DELETE FROM jobs WHERE id = ?", (job_id,)))  # sessions cascade
        pathlib.Path(path).unlink(missing_ok=True)

    def expire(self, now: Optional[float] = None) -> int:
        """Remove finished jobs older than the retention; returns how many went."""
        cutoff = (now or time.time()) - self.cfg.retention_hours * 3600
        rows = self.store.query("SELECT id, path FROM jobs WHERE status IN ('completed', 'failed') AND"
                                " COALESCE(completed, created) < ?", (cutoff,))
        for r in rows:
            self._remove(r["id"], r["path"])
            self._publish(r["id"], "status", {"status": "deleted", "reason": "retention"})
        if rows:
            log.info("%d jobs older than %.1f h removed", len(rows), self.cfg.retention_hours)
        return len(rows)

    # ---- workers ---------------------------------------------------------------------------

    def _publish(self, job_id: str, kind: str, data: dict) -> None:
        self.bus.publish("jobs:progress", kind, JobProgress(job_id, data), source="jobs")

    def _fail(self, job_id: str, error: str) -> None:
        self.store.write(lambda c: c.execute(
            "UPDATE jobs SET status = 'failed', error = ?, completed = ? WHERE id = ?", (error, time.time(), job_id)))
        self._publish(job_id, "status", {"status": "failed", "error": error})

    def _worker(self, component) -> None:
        while not component.stop.is_set():
            component.beat()
            try:
                job_id = self.queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if job_id is None:
                continue
            try:
                self._process(job_id, component)
            except Exception as e:  # a job fails; the worker goes on
                log.exception("job %s failed inside the agent", job_id)
                try:
                    self._fail(job_id, f"internal error: {type(e).__name__}")
                except Exception:
                    log.exception("job %s: recording the failure failed too", job_id)

    def _claim(self, job_id: str) -> Optional[dict]:
        def claim(c):
            n = c.execute("UPDATE jobs SET status = 'running', started = ?, attempts = attempts + 1, progress = 0"
                          " WHERE id = ? AND status = 'queued'", (time.time(), job_id)).rowcount
            return c.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone() if n else None
        with self._lock:
            row = self.store.write(claim)
            if row is None:
                return None  # deleted while it waited
            self._cancel[job_id] = threading.Event()
            self._finished[job_id] = threading.Event()
        return dict(row)

    def _process(self, job_id: str, component) -> None:
        row = self._claim(job_id)
        if row is None:
            return
        cancel, finished = self._cancel[job_id], self._finished[job_id]
        self._publish(job_id, "status", {"status": "running"})
        log.info("job %s running: %s", job_id, row["filename"])
        last = {"t": 0.0, "pct": -1}

        def progress(fraction: float, packets: int, bytes_: int) -> None:
            component.beat()
            pct = min(99, int(fraction * 100))  # 100 only once the sessions are stored
            now = time.monotonic()
            if pct != last["pct"] and now - last["t"] >= PROGRESS_EVERY_S:
                last.update(t=now, pct=pct)
                self.store.submit_nowait(lambda c: c.execute("UPDATE jobs SET progress = ? WHERE id = ?",
                                                             (pct, job_id)))
                self._publish(job_id, "progress", {"progress": pct, "packets": packets, "bytes": bytes_})

        started = time.monotonic()
        try:
            result = offline.analyse(row["path"], progress, cancel.is_set, self.limits)
            if result.error is not None:
                self._fail(job_id, f"failed to read the capture: {_public(result.error.message, row)}")
            else:
                self._complete(job_id, result, time.monotonic() - started)
        except Cancelled:
            log.info("job %s cancelled", job_id)
        except CaptureError as e:
            self._fail(job_id, f"failed to read the capture: {_public(e.message, row)}")
        finally:
            with self._lock:
                self._cancel.pop(job_id, None)
                self._finished.pop(job_id, None)
            finished.set()

    def _complete(self, job_id: str, result, seconds: float) -> None:
        calls = result.calls
        rows = []
        for call in calls:
            summary = call.summary()
            rows.append((call.id, job_id, call.call_id, summary["type"], summary["method"], summary["state"],
                         summary["start_ts"], summary["end_ts"], summary["events_count"], json.dumps(summary),
                         json.dumps(call.detail())))

        def store(c):
            if not c.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone():
                return False  # deleted meanwhile
            c.executemany("INSERT INTO call_sessions (id, job_id, call_id, type, method, state, start_ts, end_ts,"
                          " events_count, summary, detail) VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
            c.execute("UPDATE jobs SET status = 'completed', progress = 100, completed = ?, total_packets = ?,"
                      " total_bytes = ?, session_count = ? WHERE id = ?",
                      (time.time(), result.packets, result.bytes, len(rows), job_id))
            return True
        if self.store.write(store, timeout=120):
            log.info("job %s completed: %d sessions, %d packets in %.2f s", job_id, len(rows), result.packets,
                     seconds)
            self._publish(job_id, "status", {"status": "completed", "progress": 100, "sessions": len(rows),
                                             "packets": result.packets, "bytes": result.bytes})


def _public(message: str, row) -> str:
    """A C core message as a client may see it: the file as uploaded, no path on the box."""
    message = message.replace(row["path"], row["filename"])
    return re.sub(r"(?:/[^/\s:'\"]+)+/([^/\s:'\"]+)", r"\1", message)
