"""The log service: capture output in (packet events with their C records,
expired flows, finished calls), protocol log lines out, handed to the log
indexer (agent.logs.indexer, a child process) that writes one rotated
JSON-lines file per type under <data_dir>/logs and the index the API
searches.  It reads the bus like any consumer: a bounded queue whose drops
are counted (health, /metrics); the capture never waits for it.  The dns,
http and tls lines are made in C as the capture parses the messages (a
hwdrivers.logs Logger attached to each session before its first packet; it
is told which flows ended, so what waits for them goes out); the service
takes them every tick and hands them on as they are, unparsed."""
import collections
import dataclasses
import json
import logging
import os
import threading
import time

from agent.detectors.suites import SUITES
from agent.events import LogRecord
from agent.logs.indexer import PRUNE_EVERY_S, Indexer, Settings, parse, pieces
from agent.logs.records import DNS_WAIT_S, PROTO_NUMBERS, Builder
from agent.outputs.eve import LOG_CHANNEL
from agent.services import Service
from hwdrivers.logs import Logger

log = logging.getLogger(__name__)
CHANNELS = {"dns": "packets:dns", "http": "packets:http", "tls": "packets:tls", "arp": "packets:arp",
            "ndp": "packets:ndp", "dhcp": "packets:dhcp", "conn": "flows:expired", "sip": "calls:updated",
            "rtp": "calls:updated"}
ENDED_MAX = 65536                 # ended flows of the running capture remembered for ?flow=ID
C_LINES_MAX = 4 << 20             # bytes of one type's lines the C logger holds between two takes (40 MB/s
                                  # at tick_s 0.1; 100 k DNS packets/s make 22 MB/s of dns lines): a bigger
                                  # bound only grows memory
HAND_OVER_S = 0.25                # the indexer is ticked (files flushed, its counters read) and Python's own
                                  # records handed over this often


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


class LogService(Service):
    name = "logs"
    critical = False
    tick_s = 0.1                            # the C logger's lines taken this often: at 0.25 s its 4 MB bound
                                            # dropped 40,000 of 150,000 dns lines at 100 k DNS packets/s
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
        self.indexer = Indexer(Settings(str(agent.cfg.logs_dir), tuple(sorted(self.types)), c.rotate_mb << 20,
                                        c.keep_mb, c.keep_s))
        agent.health.register_losses("protocol_logs", self.losses)
        self.bus = agent.bus
        self.written: collections.Counter = collections.Counter()
        self._made = collections.defaultdict(list)      # type -> lines made here since the last tick
        self._given = False                             # lines handed over since the indexer's last tick
        self._next_retain = time.time() + PRUNE_EVERY_S  # a tick for the indexer's retention even when idle
        self._next_hand_over = 0.0

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
                self.indexer.tick()                 # the indexer started now, before the traffic it will index
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
        """The lines the C logger made, to the indexer as they are."""
        if self.logger is None:
            return
        if flush:
            self.logger.flush()
        else:
            self.logger.expire(self.builder.now, DNS_WAIT_S)
        for kind, lines in self.logger.take():
            self._give(kind, lines)

    def _write(self, records) -> None:
        """Records made here (conn of the flows Python saw end, arp, ndp, dhcp, sip, rtp): their lines go to
        the indexer at the next tick, a buffer per type."""
        for kind, rec in records:
            self._made[kind].append(json.dumps(rec, separators=(",", ":"), default=str))

    def _hand_over(self) -> None:
        made, self._made = self._made, collections.defaultdict(list)
        for kind, lines in made.items():
            self._give(kind, ("\n".join(lines) + "\n").encode())

    def _give(self, kind: str, buf: bytes) -> None:
        """'\n'-ended lines to the indexer (files and index) and, when somebody follows, as records to the bus."""
        if not self.indexer.give(kind, buf):
            return
        self._given = True
        self.written[kind] += buf.count(b"\n")
        if self.bus.listening(LOG_CHANNEL):          # EVE http/tls, SSE followers: else no message is made
            for text in pieces(buf):
                for rec in parse(text):
                    self.bus.publish(LOG_CHANNEL, kind, LogRecord(rec), source="logs")

    def tick(self, now: float) -> None:
        self._take()
        if now < self._next_hand_over:
            return
        self._next_hand_over = now + HAND_OVER_S
        self._write(self.builder.expire())
        self._hand_over()
        if self._given or now >= self._next_retain:   # an idle agent (none given) starts no indexer at boot
            self._given = False
            self._next_retain = now + PRUNE_EVERY_S
            self.indexer.tick()

    def stop(self) -> None:
        self._take(flush=True)
        self._write(self.builder.flush())
        self._hand_over()
        self.indexer.stop()

    def losses(self) -> dict:
        """Lines the C logger dropped because nobody took them in time (this service stalled), by type."""
        logger = self.logger
        lost = self.c_dropped + collections.Counter(logger.stats()["dropped"] if logger else {})
        return {**{f"c_logger:{kind}": n for kind, n in lost.items() if n}, **self.indexer.losses()}

    def detail(self) -> dict:
        tally = self.indexer.counts()
        return {"written": dict(self.written), "records": sum(self.written.values()), "indexed": tally.indexed,
                "index_pruned": tally.index_pruned, "files_pruned": tally.files_pruned,
                "unreadable": tally.unreadable, "indexer": self.indexer.detail(),
                "held_early": self.builder.overflow + (self.logger.stats()["held_early"] if self.logger else 0)}
