"""The live capture's calls: SIP packets from the bus (packets:sip) rebuilt
into calls; the RTP and RTCP endpoints their SDP names are registered with
the running capture's C core at once, which measures every later packet;
once a second the streams are read back.  A call is over when its BYE is
answered (plus a grace for the last RTP), when it stays silent for
calls.idle_timeout_s, or when the capture stops; then it is stored
(call_sessions, with its run) and its endpoints are forgotten.  Changes go
on the bus as calls:updated."""
import json
import logging
import threading
import time
from typing import Optional

from agent.calls import ladder
from agent.calls.dialogs import Call, Tracker
from agent.errors import AgentError
from agent.events import CallUpdated
from agent.services import Service
from hwdrivers import CaptureError

log = logging.getLogger(__name__)


def session_not_found(session_id: str) -> AgentError:
    return AgentError("SESSION_NOT_FOUND", f"session {session_id} not found",
                      {"session_id": session_id, "resource": "call_session"})


class CallsService(Service):
    name = "calls"
    channels = ("packets:sip", "capture:state")
    queue_size = 8192

    def start(self, agent) -> None:
        self.agent = agent
        self.cfg = agent.cfg.calls
        self.store = agent.store
        self.bus = agent.bus
        self._lock = threading.Lock()
        self.run_id: Optional[int] = None
        self.session = None            # the capture session the endpoints are registered with
        self.tracker = self._tracker()
        self.stored = 0
        self.watch_errors = 0
        self._heard = time.monotonic()  # when the newest packet time was seen

    def _tracker(self) -> Tracker:
        return Tracker(on_media=self._watch, max_calls=self.cfg.max_calls)

    def detail(self) -> dict:
        return {"active_calls": len(self.tracker.calls), "stored_calls": self.stored, "run_id": self.run_id,
                "sip_messages": self.tracker.messages, "watch_errors": self.watch_errors}

    # ---- the bus ---------------------------------------------------------------------

    def handle(self, env) -> None:
        if env.channel == "capture:state":
            if env.event_type == "capture_started":  # its first SIP packets may have come before this
                self.run_id = env.data.run_id
            elif env.event_type == "capture_stopped":
                self._finish_all("capture stopped")
                self.run_id = None
            return
        if not self.cfg.enabled:
            return
        ev = env.data
        with self._lock:
            if ev.ts_ns > self.tracker.last_ns:
                self._heard = time.monotonic()
            changed = self.tracker.feed(ev)
        for call in changed:
            self._publish(call)

    def _capture_session(self):
        """The running capture's C session, with RTP tracking on (once per run)."""
        run = self.agent.capture.run
        if run is None:
            return None
        if self.session is not run.session:
            try:
                run.session.rtp_init(max_endpoints=self.cfg.max_streams, max_streams=self.cfg.max_streams)
            except CaptureError as e:
                log.warning("RTP tracking could not start: %s", e.message)
            self.session = run.session
        return self.session

    def _watch(self, call: Call, endpoints: list) -> None:
        session = self._capture_session()
        if session is None:
            return
        for e in endpoints:
            try:
                session.rtp_watch(e)
            except CaptureError as err:  # a full table or a closed session: the call goes on without it
                self.watch_errors += 1
                if self.watch_errors == 1:
                    log.warning("RTP endpoint %s:%d not measured: %s", e.addr, e.port, err.message)

    def _publish(self, call: Call, detail: Optional[dict] = None) -> None:
        """A call changed; a finished one carries its detail (messages, streams: the sip and rtp logs')."""
        s = call.summary()
        self.bus.publish("calls:updated", "call_updated", CallUpdated(
            s["session_id"], s["call_id"], s["state"], s["type"], s["participants"], s["events_count"],
            detail or None), source="calls")

    # ---- once a second ----------------------------------------------------------------

    def tick(self, now: float) -> None:
        self._refresh()
        with self._lock:
            calls = list(self.tracker.calls.values())
            # packet time, running on with the wall clock while no packet comes
            last_ns = self.tracker.last_ns + (time.monotonic() - self._heard) * 1e9
        for call in calls:
            last = call.span()[1]
            if call.finished and last_ns - last >= self.cfg.ended_grace_s * 1e9 or \
                    last_ns - last >= self.cfg.idle_timeout_s * 1e9:
                self._finish(call, "ended" if call.finished else "idle")

    def _refresh(self) -> None:
        """Read the streams of the calls back from the C core."""
        session = self.session
        if session is None or not self.tracker.calls:
            return
        try:
            streams = session.rtp_streams()
        except CaptureError:  # the capture closed meanwhile
            return
        with self._lock:
            for call in self.tracker.calls.values():
                call.streams = []
            self.tracker.attach(streams)
            for s in streams:
                if s.last_ns > self.tracker.last_ns:
                    self.tracker.last_ns = s.last_ns
                    self._heard = time.monotonic()

    def _finish(self, call: Call, why: str) -> None:
        with self._lock:
            self.tracker.remove(call)
        if self.session is not None:
            try:
                self.session.rtp_forget(call.tag)
            except CaptureError:
                pass
        summary = call.summary()
        detail = call.detail()
        row = (call.id, self.run_id, call.call_id, summary["type"], summary["method"], summary["state"],
               summary["start_ts"], summary["end_ts"], summary["events_count"], json.dumps(summary),
               json.dumps(detail))
        keep = self.cfg.live_history

        def store(c):
            c.execute("INSERT OR REPLACE INTO call_sessions (id, job_id, run_id, call_id, type, method, state,"
                      " start_ts, end_ts, events_count, summary, detail) VALUES (?,NULL,?,?,?,?,?,?,?,?,?,?)", row)
            c.execute("DELETE FROM call_sessions WHERE job_id IS NULL AND id NOT IN (SELECT id FROM call_sessions"
                      " WHERE job_id IS NULL ORDER BY end_ts DESC LIMIT ?)", (keep,))
        self.store.submit_nowait(store)
        self.stored += 1
        self._publish(call, detail)
        log.debug("call %s %s (%s)", call.call_id, summary["state"], why)

    def _finish_all(self, why: str) -> None:
        self._refresh()
        for call in list(self.tracker.calls.values()):
            self._finish(call, why)
        self.session = None
        self.tracker = self._tracker()

    def stop(self) -> None:
        self._finish_all("agent stopped")

    # ---- what the faces ask ---------------------------------------------------------------

    def active(self) -> list:
        with self._lock:
            return [c.summary() for c in self.tracker.ordered()]

    def active_detail(self, session_id: str) -> Optional[dict]:
        with self._lock:
            for c in self.tracker.calls.values():
                if c.id == session_id:
                    return c.detail()
        return None

    def calls(self, page: int, limit: int, state: str = "") -> dict:
        """The live capture's calls: those going on, then the stored ones, newest first."""
        active = [{**s, "active": True} for s in reversed(self.active())]
        rows = self.store.query("SELECT summary FROM call_sessions WHERE job_id IS NULL ORDER BY start_ts DESC")
        stored = [{**json.loads(r["summary"]), "active": False} for r in rows]
        items = [s for s in active + stored if not state or s["state"] == state]
        start = (page - 1) * limit
        return {"page": page, "limit": limit, "total": len(items), "active": len(active),
                "capturing": self.agent.capture.run is not None, "calls": items[start:start + limit]}

    def ladder(self, session_id: str) -> dict:
        """A session's ladder diagram as text (what `capbox callflow` prints and the consoles show)."""
        return {"session_id": session_id, "text": ladder.text(self.session_detail(session_id))}

    def session_detail(self, session_id: str) -> dict:
        rows = self.store.query("SELECT detail, job_id FROM call_sessions WHERE id = ?", (session_id,))
        if rows:
            return {**json.loads(rows[0]["detail"]), "job_id": rows[0]["job_id"]}
        live = self.active_detail(session_id)
        if live is not None:
            return {**live, "job_id": None, "active": True}
        raise session_not_found(session_id)
