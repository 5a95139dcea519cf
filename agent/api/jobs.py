"""/v1 offline jobs (the seeds' callflow visualizer): upload a capture,
follow its processing (status, Server-Sent Events), read its call sessions
(one session in detail and the live capture's calls: agent.api.calls)."""
import time

import bottle

from agent.api.app import WRITE, Api, dumps
from agent.api.events import sse_response
from agent.api.streams import too_many_streams
from agent.api.validate import Field
from agent.bus import now_iso
from agent.errors import AgentError

PAGE = {"page": Field(int, 1, 1, 10**9), "limit": Field(int, 50, 1, 1000)}
DELETE = {"cancel": Field(bool, False, doc="cancel a running job, then delete it")}
RETRY_MS = 3000


def _event(env) -> str:
    """One job event in the seeds' shape: {type, timestamp, data}."""
    body = {"type": env.event_type, "timestamp": env.timestamp, "job_id": env.data.job_id, "data": env.data.data}
    return f"id: {env.id}\nevent: {env.event_type}\ndata: {dumps(body)}\n\n"


def _snapshot(job: dict) -> str:
    data = {k: job[k] for k in ("status", "progress") if k in job}
    for k in ("session_count", "total_packets", "total_bytes", "error"):
        if k in job:
            data[k] = job[k]
    body = {"type": "status", "timestamp": now_iso(), "job_id": job["job_id"], "data": data}
    return f"event: status\ndata: {dumps(body)}\n\n"


def register(api: Api) -> None:
    agent = api.agent

    @api.route("POST", "/v1/jobs", "Upload a pcap or pcapng (multipart, part 'file') to be processed (201)",
               access=WRITE, tag="jobs")
    def submit():
        return 201, agent.jobs.submit(bottle.request.environ)

    @api.route("GET", "/v1/jobs", "Every job with its status", tag="jobs")
    def jobs():
        return agent.jobs.list()

    @api.route("GET", "/v1/jobs/<job_id>", "A job: status, progress, times, totals, error", tag="jobs")
    def job(job_id):
        return agent.jobs.get(job_id)

    @api.route("DELETE", "/v1/jobs/<job_id>", "Delete a job, its file and sessions (409 while running, unless cancel)",
               access=WRITE, query=DELETE, tag="jobs")
    def delete(job_id, cancel):
        return agent.jobs.delete(job_id, cancel)

    @api.route("GET", "/v1/jobs/<job_id>/sessions", "A completed job's call sessions, a page at a time",
               query=PAGE, tag="jobs")
    def sessions(job_id, page, limit):
        return agent.jobs.sessions(job_id, page, limit)

    @api.route("GET", "/v1/jobs/<job_id>/events", "Server-Sent Events of a job: status, progress, completion",
               tag="jobs")
    def events(job_id):
        key = bottle.request.environ["capbox.key"]
        slots = api.sse_slots
        if not slots.acquire(key.id):
            raise too_many_streams(slots)
        try:
            sub = agent.bus.subscribe(("jobs:progress",), maxsize=1000, name=f"job:{job_id}")
            try:
                job = agent.jobs.get(job_id)   # after subscribing: nothing falls between
            except AgentError:
                sub.close()
                raise
        except AgentError:
            slots.release(key.id)
            raise
        keepalive = agent.cfg.api.sse_keepalive_s

        def stream():
            try:
                yield f"retry: {RETRY_MS}\n\n"
                yield _snapshot(job)
                if job["status"] in ("completed", "failed"):
                    return
                quiet = time.monotonic()
                while not agent.stopping.is_set():
                    env = sub.get(timeout=1.0)
                    if env is None:
                        if time.monotonic() - quiet >= keepalive:
                            quiet = time.monotonic()
                            yield ": keepalive\n\n"
                        continue
                    if env.data.job_id != job_id:
                        continue
                    quiet = time.monotonic()
                    yield _event(env)
                    if env.event_type == "status" and env.data.data.get("status") in ("completed", "failed", "deleted"):
                        return
            finally:
                sub.close()
                slots.release(key.id)

        return sse_response(stream())
