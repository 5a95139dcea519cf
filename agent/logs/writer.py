"""The log service: capture output in (packet events with their C records,
expired flows, finished calls), protocol log records out, to one rotated
JSON-lines file per type under <data_dir>/logs and to the index the API
searches.  It reads the bus like any consumer: a bounded queue whose drops
are counted (health, /metrics); the capture never waits for it.  The dns,
http and tls lines are made in C as the capture parses the messages (a
hwdrivers.logs Logger attached to each session before its first packet; it
is told which flows ended, so what waits for them goes out); the service
takes them every tick."""
import collections
import dataclasses
import itertools
import json
import logging
import os
import threading
import time

from agent.detectors.tls_downgrade import SUITES
from agent.events import LogRecord
from agent.logs.index import Index
from agent.logs.records import DNS_WAIT_S, PROTO_NUMBERS, Builder
from agent.outputs.eve import LOG_CHANNEL
from agent.outputs.evefile import EveFile, prune
from agent.services import Service
from hwdrivers.logs import Logger

log = logging.getLogger(__name__)
CHANNELS = {"dns": "packets:dns", "http": "packets:http", "tls": "packets:tls", "arp": "packets:arp",
            "ndp": "packets:ndp", "dhcp": "packets:dhcp", "conn": "flows:expired", "sip": "calls:updated",
            "rtp": "calls:updated"}
PRUNE_EVERY_S = 60.0
INDEX_FILE = "index.db"
ENDED_MAX = 65536                 # ended flows of the running capture remembered for ?flow=ID
C_LINES_MAX = 4 << 20             # bytes of one type's lines the C logger holds between two ticks: more than
                                  # this service indexes in a tick, so a bigger bound only grows memory


@dataclasses.dataclass(slots=True)
class EndedFlow:
    """What /v1/pcap?flow=ID needs of a flow that left the table (agent.recordings.packets.flow_window)."""
    id: int
    src: str
    dst: str
    sport: int
    dport: int
    proto: int
    vlan: int
    family: int
    first_ns: int
    last_ns: int


class LogFiles:
    """One stamped, rotated JSON-lines file per log type, and retention over all of them."""

    def __init__(self, root, types, rotate_bytes: int):
        self.root = root
        self.files = {t: EveFile(root / f"{t}.log", rotate_bytes, 0, stamped=True) for t in types}

    def write(self, kind: str, line: str) -> None:
        self.files[kind].write_line(line)

    def flush(self) -> None:
        for f in self.files.values():
            f.flush()

    def size(self) -> int:
        return sum(p.stat().st_size for f in self.files.values() for p in [f.path, *f.rotated()] if p.exists())

    def prune(self, keep_bytes: int, keep_s: float) -> int:
        """Rotated files past the budget go (the files being written stay)."""
        rotated = [p for f in self.files.values() for p in f.rotated()]
        live = sum(f.path.stat().st_size for f in self.files.values() if f.path.exists())
        return len(prune(rotated, max(1, keep_bytes - live) if keep_bytes else 0, keep_s))

    def close(self) -> None:
        for f in self.files.values():
            f.close()


class LogService(Service):
    name = "logs"
    critical = False
    ended: dict = {}                        # flow id -> EndedFlow of the capture's flows that left the table
    _lock = threading.Lock()                # (class values: a service not started remembers none)

    @classmethod
    def wanted(cls, cfg) -> bool:
        return cfg.logs.enabled and bool(cfg.logs.types)

    def start(self, agent) -> None:
        c = self.cfg = agent.cfg.logs
        self.types = frozenset(c.types)
        self.c_types = frozenset({"dns", "http", "tls"} & self.types)   # made by the C logger, not from bus events
        ended = {"flows:expired"} if self.c_types & {"http", "tls"} else set()  # what waits in the C logger
        self.channels = tuple(sorted({CHANNELS[t] for t in self.types - self.c_types} | {"capture:state"} | ended))
        self.queue_size = c.queue
        self.builder = Builder(self.types)
        self.logger = None                  # the C logger of the running capture's session
        self.c_dropped: collections.Counter = collections.Counter()   # lines earlier sessions' loggers dropped
        self._next = None                   # (logger, salt) of a session made, its capture_started not yet read
        self._lock = threading.Lock()
        self.ended = collections.OrderedDict()
        if self.c_types:
            agent.capture.session_hooks.append(self._attach)
            agent.health.register_losses("protocol_logs", self.losses)
        self.files = LogFiles(agent.cfg.logs_dir, sorted(self.types), c.rotate_mb << 20)
        self.index = Index(agent.cfg.logs_dir / INDEX_FILE)
        self.bus = agent.bus
        self.written: collections.Counter = collections.Counter()
        self.files_pruned = 0
        self._next_prune = 0.0

    def handle(self, env) -> None:
        ch, data = env.channel, env.data
        if ch == "flows:expired":
            self._remember(data)
            out = self.builder.flow(data)
            if self.logger is not None and self.c_types & {"http", "tls"}:
                self.logger.ended(data["id"])
        elif ch == "calls:updated":
            out = self.builder.call(data["detail"]) if data.get("detail") else []
        elif ch == "capture:state":
            out = self.builder.flush()
            self._take(flush=True)
            if env.event_type == "capture_started":  # a new run: new flow ids, new uids (C's and Python's alike)
                with self._lock:
                    if self.logger is not None:
                        self.c_dropped.update(self.logger.stats()["dropped"])
                    self.logger, salt = self._next or (None, None)
                    self._next = None
                    self.ended.clear()              # flow ids start over
                self.builder = Builder(self.types, salt)
        else:
            out = self.builder.feed(data)
        self._write(out)

    def _remember(self, f: dict) -> None:
        """An expired flow (an active timeout's records of one flow share its id: their union)."""
        first, last = round(f["first"] * 1e9), round(f["last"] * 1e9)
        with self._lock:
            old = self.ended.pop(f["id"], None)
            if old is None and len(self.ended) >= ENDED_MAX:
                self.ended.popitem(last=False)
            name = str(f["proto"])
            self.ended[f["id"]] = EndedFlow(
                f["id"], f["src"], f["dst"], f["sport"], f["dport"],
                PROTO_NUMBERS.get(name) or (int(name) if name.isdigit() else 0), f["vlan"], 6 if ":" in f["src"] else 4,
                min(first, old.first_ns) if old else first, max(last, old.last_ns) if old else last)

    def ended_flow(self, flow_id: int):
        """A flow of the running (or last) capture that left the table, None when not remembered."""
        with self._lock:
            return self.ended.get(flow_id)

    def _attach(self, session) -> None:
        """A capture session is made (in the thread starting it): its DNS messages, HTTP heads and TLS
        handshakes go to a new C logger."""
        salt = os.urandom(16)
        logger = Logger(self.c_types, salt, bytes_max=C_LINES_MAX, suites=SUITES)
        session.set_logger(logger)
        with self._lock:
            self._next = (logger, salt)

    def _take(self, flush: bool = False) -> None:
        """The lines the C logger made, read back for the index (its time, hosts and names) in one parse of
        the whole buffer."""
        if self.logger is None:
            return
        if flush:
            self.logger.flush()
        else:
            self.logger.expire(self.builder.now, DNS_WAIT_S)
        for kind, lines in self.logger.take():
            text = lines.decode().splitlines()
            self._lines(zip(itertools.repeat(kind), json.loads("[" + ",".join(text) + "]"), text))

    def _write(self, records) -> None:
        self._lines((kind, rec, json.dumps(rec, separators=(",", ":"), default=str)) for kind, rec in records)

    def _lines(self, records) -> None:
        """(type, record, its JSON line) to the files, the index and (when somebody follows) the bus."""
        now = time.time()
        follow = self.bus.listening(LOG_CHANNEL)       # EVE http/tls, SSE followers: else no message is made
        for kind, rec, line in records:
            self.files.write(kind, line)
            self.index.add(kind, rec, line, now)
            self.written[kind] += 1
            if follow:
                self.bus.publish(LOG_CHANNEL, kind, LogRecord(rec), source="logs")

    def tick(self, now: float) -> None:
        self._take()
        self._write(self.builder.expire())
        self.files.flush()
        self.index.commit()
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_EVERY_S
            self.retain()

    def retain(self) -> None:
        """Retention: the index takes at most half the size budget, the files the rest."""
        keep = self.cfg.keep_mb << 20
        self.index.prune(keep // 2, self.cfg.keep_s)
        self.files_pruned += self.files.prune(keep - self.index.size() if keep else 0, self.cfg.keep_s)

    def stop(self) -> None:
        self._take(flush=True)
        self._write(self.builder.flush())
        self.files.close()
        self.index.close()

    def losses(self) -> dict:
        """Lines the C logger dropped because nobody took them in time (this service stalled), by type."""
        logger = self.logger
        lost = self.c_dropped + collections.Counter(logger.stats()["dropped"] if logger else {})
        return {f"c_logger:{kind}": n for kind, n in lost.items() if n}

    def detail(self) -> dict:
        return {"written": dict(self.written), "records": sum(self.written.values()), "indexed": self.index.added,
                "index_pruned": self.index.pruned, "files_pruned": self.files_pruned,
                "held_early": self.builder.overflow + (self.logger.stats()["held_early"] if self.logger else 0)}
