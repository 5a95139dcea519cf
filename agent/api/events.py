"""/v1/events: the bus as Server-Sent Events.

Each message carries event_type, timestamp, source, correlation_id and data;
`id:` lines let a client resume with Last-Event-ID from a bounded backlog;
a comment line keeps idle connections open; at most N streams per key."""
import threading
import time

import bottle

from agent.api.app import Api, dumps
from agent.api.validate import Field
from agent.bus import CHANNELS
from agent.errors import AgentError, validation

QUERY = {"channels": Field(str, "", doc="comma-separated channels, empty for all"),
         "last_event_id": Field(int, 0, 0, doc="resume after this id (or the Last-Event-ID header)")}
RETRY_MS = 3000
RESERVED_WORKERS = 8


class StreamSlots:
    """Open streams per key, bounded; and in all, since a stream holds a
    server worker thread for its whole life."""

    def __init__(self, limit: int, total: int):
        self.limit = limit
        self.total_limit = total
        self._open: dict = {}
        self._lock = threading.Lock()

    def acquire(self, key_id: str) -> bool:
        with self._lock:
            if self._open.get(key_id, 0) >= self.limit or sum(self._open.values()) >= self.total_limit:
                return False
            self._open[key_id] = self._open.get(key_id, 0) + 1
            return True

    def release(self, key_id: str) -> None:
        with self._lock:
            self._open[key_id] -= 1

    def total(self) -> int:
        with self._lock:
            return sum(self._open.values())


def too_many_streams(slots: StreamSlots) -> AgentError:
    return AgentError("RATE_LIMIT_EXCEEDED",
                      f"too many event streams (at most {slots.limit} per key, {slots.total_limit} in all)",
                      {"limit": slots.limit, "total_limit": slots.total_limit, "window_seconds": 0,
                       "retry_after_seconds": 5, "reason": "too_many_streams"})


def sse_response(stream) -> bottle.HTTPResponse:
    """A Server-Sent Events response of a generator of event texts."""
    return bottle.HTTPResponse(stream, status=200, headers={
        "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no", **{k: v for k, v in bottle.response.headers.items() if k.startswith("X-")}})


def format_event(env) -> str:
    return f"id: {env.id}\nevent: {env.event_type}\ndata: {dumps(env.as_dict())}\n\n"


def register(api: Api) -> None:
    agent = api.agent
    # a stream holds a worker: keep some for every other request
    slots = agent.sse_slots = StreamSlots(agent.cfg.api.sse_max_streams_per_key,
                                          max(1, agent.cfg.api.threads - RESERVED_WORKERS))
    keepalive = agent.cfg.api.sse_keepalive_s

    @api.route("GET", "/v1/events", "Server-Sent Events of the bus (channels= filter, Last-Event-ID resume)",
               query=QUERY)
    def events(channels, last_event_id):
        chans = frozenset(c for c in channels.split(",") if c)
        unknown = chans - set(CHANNELS)
        if unknown:
            raise validation(f"unknown channel {sorted(unknown)[0]!r}", field="channels", channels=list(CHANNELS))
        header = bottle.request.get_header("Last-Event-ID", "")
        if header.isdigit():
            last_event_id = int(header)
        key = bottle.request.environ["capbox.key"]
        if not slots.acquire(key.id):
            raise too_many_streams(slots)
        sub = agent.bus.subscribe(chans, maxsize=1000, name=f"sse:{key.id}")
        backlog = agent.bus.since(last_event_id, chans) if last_event_id else []

        def stream():
            sent = last_event_id
            try:
                yield f"retry: {RETRY_MS}\n\n"
                for env in backlog:
                    sent = env.id
                    yield format_event(env)
                quiet_since = time.monotonic()
                while not agent.stopping.is_set():
                    env = sub.get(timeout=1.0)
                    if env is None:
                        if time.monotonic() - quiet_since >= keepalive:
                            quiet_since = time.monotonic()
                            yield ": keepalive\n\n"
                        continue
                    if env.id <= sent:
                        continue
                    sent = env.id
                    quiet_since = time.monotonic()
                    yield format_event(env)
            finally:
                sub.close()
                slots.release(key.id)

        return sse_response(stream())
