"""The in-process event bus: named channels, bounded subscriber queues.

Every channel carries one dataclass (agent.events.CHANNEL_TYPES); a publish
of anything else (a bare dict) is a TypeError.  Publishing never blocks: a
full subscriber queue counts a drop for that subscriber and the publisher
goes on.  A bounded backlog with increasing ids
lets an SSE client resume after a reconnect (Last-Event-ID)."""
import collections
import dataclasses
import datetime
import itertools
import queue
import secrets
import threading
from typing import Any, Iterable, Optional

from agent.events import CHANNEL_TYPES

CHANNELS = tuple(CHANNEL_TYPES)
# the channel of each kind of packet event the C core hands up (hwdrivers.events)
EVENT_CHANNELS = {"dns": "packets:dns", "arp": "packets:arp", "tls": "packets:tls", "http": "packets:http",
                  "sip": "packets:sip", "tcp_src": "packets:tcp", "token": "packets:token",
                  "ndp": "packets:ndp", "dhcp": "packets:dhcp"}


def iso(ts: Optional[float]) -> Optional[str]:
    """ISO 8601 UTC with milliseconds, as the seeds write times."""
    if ts is None:
        return None
    dt = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> float:
    """Unix seconds, or an ISO 8601 time (UTC when it names no zone), as unix seconds; ValueError otherwise."""
    try:
        return float(text)
    except ValueError:
        pass
    dt = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (dt if dt.tzinfo else dt.replace(tzinfo=datetime.timezone.utc)).timestamp()


def now_iso() -> str:
    return iso(datetime.datetime.now(datetime.timezone.utc).timestamp())


@dataclasses.dataclass(frozen=True)
class Envelope:
    """One bus message, in the seeds' event format."""

    id: int
    channel: str
    event_type: str
    timestamp: str
    source: str
    correlation_id: str
    data: Any

    def as_dict(self) -> dict:
        """The seeds' event format, data as its JSON fields (what SSE, EVE and syslog see)."""
        data = self.data.as_dict() if hasattr(self.data, "as_dict") else self.data
        return {"event_type": self.event_type, "timestamp": self.timestamp, "source": self.source,
                "correlation_id": self.correlation_id, "channel": self.channel, "data": data}


class Subscription:
    def __init__(self, bus: "Bus", channels: frozenset, maxsize: int, name: str):
        self._bus = bus
        self.channels = channels
        self.name = name
        self.queue: queue.Queue = queue.Queue(maxsize)
        self.dropped = 0

    def wants(self, channel: str) -> bool:
        return not self.channels or channel in self.channels

    def get(self, timeout: Optional[float] = None) -> Optional[Envelope]:
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self._bus.unsubscribe(self)


class Bus:
    def __init__(self, backlog: int = 1000):
        self._lock = threading.Lock()
        self._subs: list = []
        self._ids = itertools.count(1)
        self._salt = secrets.randbits(48)  # correlation ids: unique per process without a urandom call per event
        # the last `backlog` envelopes of each channel, so that a flood on one (packets, log records)
        # never pushes out another's (a capture stopping) before a client resumes
        self._backlog: dict = collections.defaultdict(lambda: collections.deque(maxlen=backlog))
        self.published = collections.Counter()

    def publish(self, channel: str, event_type: str, data: Any, source: str = "agent",
                correlation_id: Optional[str] = None) -> Envelope:
        kind = CHANNEL_TYPES.get(channel)
        if kind is None:
            raise ValueError(f"unknown channel {channel!r}")
        if not isinstance(data, kind):
            raise TypeError(f"{channel} carries agent.events {kind.__name__}, not {type(data).__name__}")
        n = next(self._ids)
        env = Envelope(n, channel, event_type, now_iso(), source,
                       correlation_id or f"cor_{(self._salt + n) & 0xFFFFFFFFFFFF:012x}", data)
        with self._lock:
            self._backlog[channel].append(env)
            self.published[channel] += 1
            subs = list(self._subs)
        for s in subs:
            if s.wants(channel):
                try:
                    s.queue.put_nowait(env)
                except queue.Full:
                    s.dropped += 1
        return env

    def wake_all(self) -> None:
        """Every subscriber blocked in get() returns (None) now: the agent is stopping."""
        with self._lock:
            subs = list(self._subs)
        for s in subs:
            try:
                s.queue.put_nowait(None)
            except queue.Full:
                pass                # it has events to read, so it is not blocked

    def subscribe(self, channels: Iterable[str] = (), maxsize: int = 1024, name: str = "") -> Subscription:
        channels = frozenset(channels)
        unknown = channels - set(CHANNELS)
        if unknown:
            raise ValueError(f"unknown channels: {', '.join(sorted(unknown))}")
        sub = Subscription(self, channels, maxsize, name)
        with self._lock:
            self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def listening(self, channel: str) -> bool:
        """Whether any subscriber takes channel: a publisher with costly messages can skip making them."""
        with self._lock:
            return any(s.wants(channel) for s in self._subs)

    def since(self, last_id: int, channels: frozenset = frozenset()) -> list:
        """Backlog entries after last_id (for Last-Event-ID resume), in publication order."""
        with self._lock:
            kept = [e for ch, q in self._backlog.items() if not channels or ch in channels for e in q
                    if e.id > last_id]
        return sorted(kept, key=lambda e: e.id)

    def stats(self) -> dict:
        with self._lock:
            subs = [{"name": s.name, "channels": sorted(s.channels), "queued": s.queue.qsize(),
                     "capacity": s.queue.maxsize, "dropped": s.dropped} for s in self._subs]
        return {"published": dict(self.published), "subscribers": subs}
