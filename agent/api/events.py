"""/v1/events: the bus as Server-Sent Events.

Each message carries event_type, timestamp, source, correlation_id and data;
`id:` lines let a client resume with Last-Event-ID from a bounded backlog;
a comment line keeps idle connections open; at most N streams per key."""
import time

import bottle

from agent.api.app import Api, dumps
from agent.api.streams import too_many_streams
from agent.api.validate import Field
from agent.bus import CHANNELS
from agent.errors import validation

QUERY = {"channels": Field(str, "", doc="comma-separated channels, empty for all"),
         "last_event_id": Field(int, 0, 0, doc="resume after this id (or the Last-Event-ID header)")}
RETRY_MS = 3000
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
    slots = api.sse_slots
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
