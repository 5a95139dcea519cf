"""The packet consumers on a core of their own: a worker process, child of
the agent (or of `capbox detect`: Worker), runs the detectors on the events of a shared-memory ring and sends
back only what they found and their counters, as typed records.  The agent
publishes the findings on attacks:detected as the detector threads did, so
threats, verification, SSE and EVE see no difference.

Why a process: the detectors cost tens of microseconds an event in Python;
as threads of the agent they shared one GIL with the dispatcher and the REST
API (issue 17).  The dispatcher copies events into the ring
(hwdrivers.shring) and never waits: a full ring drops and counts.  The agent
supervises the worker (thread `consumers`): one that dies is started again,
and /v1/health shows its restarts and the ring's drops."""
import dataclasses
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import types
from multiprocessing.connection import Connection
from typing import Optional

# (the bus, the events and the pipeline are imported where they are used: `capbox detect` imports this module to
# start its worker, first, and the worker's own imports would wait for them)

log = logging.getLogger(__name__)

RING_EVENTS = 8192       # struct hw_event's bytes shared (55 MB): packed, about 68,000 of large.pcap's DNS events,
                         # 0.7 s of 100,000 events/s while the worker is busy elsewhere
BATCH = 256              # events the worker takes from the ring at once: fed while what taking them made is still in
                         # the core's cache (1,024 events' objects, about a megabyte, outgrew it: large.pcap's replay,
                         # 2.14 s of CPU with 1,024 a batch, 2.01 s with 256, 1.96 s with 128); fewer cut the DNS
                         # capture's runs of repeats short (dnsrun reads each link once a run: 0.63 s, 0.64, 0.68)
TALLY_S = 1.0            # the worker sends its counters this often
IDLE_S = (0.001, 0.02)   # the worker's wait on an empty ring: from the first to the longest
RESTART_S = (0.5, 10.0)  # wait before starting a dead worker again: doubled per restart, up to the second
STOP_S = 5.0             # for a worker to exit (after "stop", or its connection closed)
OFFLINE_RING = 1 << 11   # `capbox detect`'s ring, in struct hw_event's bytes (14 MB; packed, 8 to 13 times the events)
WAIT_S = 0.005           # `capbox detect`'s longest wait for room in the ring, or for the worker's messages: a
                         # full ring holds a third of a second of the worker's work (1 ms: 38 us of CPU a wait,
                         # 2,600 waits on large.pcap)


@dataclasses.dataclass
class Folding:
    """What the dispatcher lets the C core do with the DNS events bound for the worker: fold each query into the
    next DNS event ([detection] dns_fold), mark answers that repeat their template (dns_repeats); and the
    session's gate counters (hwdrivers.dnsgate) while it folds."""
    fold: bool = False
    repeats: bool = False
    counters: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Found:
    """A detection the worker made, with the packet that raised it."""
    detection: "Detection"       # agent.events'
    packet_kind: str
    packet_ts: float


@dataclasses.dataclass(frozen=True)
class Tally:
    """The worker's counters, sent once a second."""
    events: int         # taken from the ring (every kind)
    fed: int            # of those, given to the detectors
    queries: int        # DNS queries folded into those (hwdrivers.dnsgate), given to the detectors too
    errors: int         # events a detector raised an exception on, or that could not be read
    detectors: dict     # name -> {"threshold": ..., counts}


# ---- the worker (its own process: python -m agent.consumers RING_FD CONN_FD [offline]) ---------

def spawn(ring, offline: bool = False) -> tuple:
    """(process, Connection) of a new worker reading ring; the caller sends it the [detection] section, as a dict
    (see work()).  A live agent's worker is in a session of its own (a terminal's Ctrl-C is the agent's: it
    stops the worker in order); `capbox detect`'s stays in its process group and goes with it.  -P: this
    checkout's agent, not one in the working directory."""
    mine, theirs = socket.socketpair()
    with theirs:
        proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "agent.consumers", str(ring.fd), str(theirs.fileno())] + ["offline"] * offline,
            pass_fds=(ring.fd, theirs.fileno()), stdin=subprocess.DEVNULL, start_new_session=not offline)
    return proc, Connection(mine.detach())


def work(ring_fd: int, conn_fd: int, offline: bool = False, keep: Optional[list] = None) -> int:
    """Feed the ring's events to the pipeline until the agent says stop or goes away.

    offline (`capbox detect`, agent.detectors.offline): the worker first sends back (the kinds it reads, whether
    it reads DNS repeats), then sends lists of Detections (in order, as Pipeline.feed_all finds them: an
    exception ends it, as in one process) and waits at most IDLE_S[0] on an empty ring; at "end" it takes
    what is left, sends its last Tally and exits.  Live, each finding goes back as a Found, and an event a
    detector fails on is counted and skipped.  keep: a list the pipeline is left in, for a process that ends
    with os._exit (its tables, about a million objects on large.pcap, took 0.14 s to free as work returned,
    while `capbox detect` waited for the worker's end)."""
    from agent.detectors import DETECTORS  # noqa: F401  (their modules, loaded while the [detection] section comes)
    from agent.detectors.pipeline import GC_THRESHOLD, GC_THRESHOLD_OFFLINE, Pipeline, tune_gc
    from hwdrivers.shring import SharedRing
    conn = Connection(conn_fd)
    # the [detection] section, sent as a dict: unpickling its class would import agent.config and with it the
    # capture face (some 20 modules, each tens of ms booting under TCG); the detectors read its attributes
    pipeline = Pipeline(types.SimpleNamespace(**conn.recv()))
    if keep is not None:
        keep.append(pipeline)
    tune_gc(GC_THRESHOLD_OFFLINE if offline else GC_THRESHOLD)
    kinds = pipeline.kinds()
    repeats = pipeline.repeats           # DNS answers the C core marked as repeats, read as a few fields
    if offline:
        conn.send((kinds, repeats))
    ring = SharedRing(fd=ring_fd)
    events = fed = errors = 0
    idle, next_tally, ending = IDLE_S[0], 0.0, False
    try:
        while True:
            n, batch = ring.take(BATCH, kinds, repeats, pipeline.bare)
            if offline:
                found = pipeline.feed_all(batch)
            else:
                found = []
                for ev in batch:
                    try:
                        found.extend(Found(d, ev.kind, ev.ts) for d in pipeline.feed(ev))
                    except Exception:     # one bad event must not stop the detectors
                        if not errors:
                            log.exception("consumer worker: a %s event failed", ev.kind)
                        errors += 1
            events, fed = events + n, fed + len(batch)
            if found:
                conn.send(found)
            now = time.monotonic()
            if now >= next_tally or (ending and not n):
                next_tally = now + TALLY_S
                conn.send(Tally(events, fed, pipeline.queries, errors + ring.unreadable, pipeline.counts()))
            if n:
                idle = IDLE_S[0]
            elif ending:
                return 0                              # everything the agent put in before "end" was taken
            elif conn.poll(idle):
                msg = conn.recv()
                if msg == "stop":
                    return 0
                ending = msg == "end"
            elif not offline:
                idle = min(idle * 2, IDLE_S[1])
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return 0                              # the agent is gone
    finally:
        ring.close()


# ---- `capbox detect`'s side ------------------------------------------------------------------

class WorkerFailed(Exception):
    """The detector worker ended before the file did (killed, or a detector raised)."""


class Worker:
    """`capbox detect`'s worker (offline): started first, so that its imports overlap the CLI's start; this
    process reads the file and fills the worker's ring, waiting for room when it is full (a file loses
    nothing).  detect() once, then close()."""

    def __init__(self):
        from hwdrivers.shring import SharedRing
        self.ring = SharedRing(OFFLINE_RING)
        self.proc, self.conn = spawn(self.ring, offline=True)
        self.found: list = []
        self.threats = None                    # detect()'s agent.detectors.offline.Threats of them
        self.tally: Optional[Tally] = None     # its last

    def detect(self, path: str, cfg, bpf: str = "") -> tuple:
        """(detections, error or None, each detector's counters (Pipeline.counts()), the DNS gate's counters) of
        a file, as agent.detectors.offline.detect_file finds them; CaptureError when it cannot be read at all, WorkerFailed."""
        from agent.detectors.offline import Threats, file_config
        from hwdrivers import Session, dnsgate
        self.threats = Threats()     # (its rows made as the findings come, while this process waits for them)
        self._send(dataclasses.asdict(cfg))
        kinds, repeats = self._recv()
        with Session(file_config(path, bpf, kinds)) as s:
            if cfg.dns_fold and "dns" in kinds:
                dnsgate.set_fold(s, True, cfg.dns_repeats and repeats)

            def fill():
                self.ring.fill(s, 1 << 62, wait=self._wait)
                while self.conn.poll(0):     # its findings as they come: a worker blocked on a full socket waits
                    self._take(self._recv())
            error = s.run_to_eof(fill)
            while s.flush():         # the last TCP source summaries, as the ring takes them
                fill()
            fill()
            gate = dnsgate.counters(s) if s.dns_fold else {}
        self._send("end")            # it takes what is left, sends its last counters and exits
        while True:
            try:
                self._take(self.conn.recv())
            except (EOFError, OSError):
                break
        if self.proc.wait() != 0 or self.tally is None:
            raise self._failed()
        return self.found, error, self.tally.detectors, gate

    def _wait(self) -> None:
        """While the ring is full: the worker's messages, or WAIT_S."""
        if self.conn.poll(WAIT_S):
            self._take(self._recv())
        elif self.proc.poll() is not None:
            raise self._failed()

    def _send(self, msg) -> None:
        try:
            self.conn.send(msg)
        except OSError:
            raise self._failed() from None

    def _recv(self):
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            raise self._failed() from None

    def _take(self, msg) -> None:
        if isinstance(msg, list):
            self.found.extend(msg)
            if self.threats is not None:
                self.threats.add(msg)
        else:
            self.tally = msg

    def _failed(self) -> WorkerFailed:
        try:
            code = self.proc.wait(STOP_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        how = f"was killed by signal {-code}" if code < 0 else f"exited with {code}"
        return WorkerFailed(f"the detector worker (pid {self.proc.pid}) {how} before the end of the file")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.conn.close()
        self.ring.close()


# ---- the agent's side --------------------------------------------------------------------------

def dispatch_events(session, ring, bus, limit: int = 4096, folding: Optional[Folding] = None) -> int:
    """The dispatcher's step: up to limit events from the session, every one into the worker's ring (without
    one, none); as Python records, published on their bus channels, only the kinds something in this
    process reads (all of them without a ring).  How many were taken.

    With a ring and folding.fold, the C core folds each DNS query into the next DNS event while nothing in
    this process reads DNS events; one that starts reading gets the folded queries as events.  With
    folding.repeats it also marks answers that repeat their template: the worker reads those as a few fields
    (this process, reading in full, never sees the difference)."""
    from agent.bus import EVENT_CHANNELS
    from hwdrivers import dnsgate
    if ring is not None:
        listened = frozenset(k for k, ch in EVENT_CHANNELS.items() if bus.listening(ch))
        fold = folding is not None and folding.fold and "dns" in session.config.events and "dns" not in listened
        if fold != session.dns_fold:
            dnsgate.set_fold(session, fold, folding is not None and folding.repeats)
        taken, events = ring.fill(session, limit, listened)
        if fold:
            folding.counters = dnsgate.counters(session)
    else:
        events = session.read_events(limit)
        taken = len(events)
    for ev in events:
        if ev.kind == "dns" and ev.query is not None:     # folded before a listener came: its own event again
            bus.publish(EVENT_CHANNELS["dns"], "dns_packet", ev.query, source="capture")
            ev = dataclasses.replace(ev, query=None)
        bus.publish(EVENT_CHANNELS[ev.kind], f"{ev.kind}_packet", ev, source="capture")
    return taken


class Consumers:
    """The worker process and its ring, started with the first capture, supervised until shutdown."""

    def __init__(self, cfg, bus, health):
        self.cfg = cfg
        self.bus = bus
        self.health = health
        self.ring = None
        self.proc: Optional[subprocess.Popen] = None
        self.conn: Optional[Connection] = None
        self.restarts = 0
        self.found = 0
        self.bad_messages = 0
        self.tally: Optional[Tally] = None
        self.folding = Folding(cfg.detection.dns_fold, cfg.detection.dns_repeats)   # the dispatcher's DNS gate
        self._lock = threading.Lock()
        self.component = health.register("consumers", critical=False, detail=self.detail)
        self.component.state = "idle"

    @staticmethod
    def wanted(cfg) -> bool:
        return cfg.detection.enabled and cfg.detection.process

    def ensure_started(self):
        """The ring, with the worker reading it (started on first use: an agent that never captures runs none)."""
        from hwdrivers.shring import SharedRing
        with self._lock:
            if self.ring is None:
                self.ring = SharedRing(RING_EVENTS)
                self._spawn()
                self.health.spawn(self.component, self._supervise)
            return self.ring

    def _spawn(self) -> None:
        self.proc, self.conn = spawn(self.ring)
        self.conn.send(dataclasses.asdict(self.cfg.detection))    # a dict: see work()
        log.info("consumer worker %d started", self.proc.pid)

    def _supervise(self, component) -> None:
        try:
            while not component.stop.is_set():
                try:
                    if self.conn.poll(0.2):
                        msg = self.conn.recv()
                        self._receive(msg)
                        continue
                except (EOFError, OSError):
                    pass                      # the worker went away: its exit code says why, below
                except Exception:             # a message we cannot read: said once, the worker goes on
                    if not self.bad_messages:
                        log.exception("consumer worker: a message could not be read")
                    self.bad_messages += 1
                if self.proc.poll() is not None or self.conn.closed:
                    self._restart(component)
                component.beat()
        finally:
            self._stop_worker()

    def _receive(self, msg) -> None:
        from agent.events import AttackDetected
        if isinstance(msg, Tally):
            self.tally = msg
            return
        for f in msg:
            self.found += 1
            d = f.detection
            found = AttackDetected(d, d.verify is not None, f"{f.packet_kind}_packet", f.packet_ts)
            self.bus.publish("attacks:detected", "attack_detected", found, source=d.type)

    def _restart(self, component) -> None:
        try:
            code = self.proc.wait(1.0)
        except subprocess.TimeoutExpired:     # its end of the socket closed, yet it runs: not ours any more
            self.proc.kill()
            code = self.proc.wait()
        self.conn.close()
        self.restarts += 1
        component.error = f"worker exited with {code}; restarted {self.restarts} time(s)"
        log.error("consumer worker %d exited with %s; starting another", self.proc.pid, code)
        if not component.stop.wait(min(RESTART_S[0] * 2 ** (self.restarts - 1), RESTART_S[1])):
            self._spawn()

    def _stop_worker(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            self.conn.send("stop")
        except OSError:
            pass
        try:
            proc.wait(STOP_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        """At shutdown, after the capture stopped: the worker ends, the ring goes."""
        self.component.stop.set()
        if self.component.thread is not None:
            self.component.thread.join(STOP_S + 1)
        with self._lock:
            ring, self.ring = self.ring, None
        if ring is not None:
            ring.close()

    def dropped(self) -> int:
        """Events the ring had no room for (since the agent started)."""
        ring = self.ring
        return sum(ring.dropped.values()) if ring is not None else 0

    def losses(self) -> dict:
        """Events the ring had no room for, by kind; the worker's restarts (each loses its events in hand)."""
        ring = self.ring
        dropped = dict(ring.dropped) if ring else {}   # a copy in one step: the dispatcher adds kinds meanwhile
        out = {f"shared_ring:{k}": v for k, v in dropped.items() if v}
        if self.restarts:
            out["consumer_restarts"] = self.restarts
        return out

    def detail(self) -> dict:
        ring, tally, proc = self.ring, self.tally, self.proc
        return {"pid": proc.pid if proc else None, "restarts": self.restarts,
                "ring": None if ring is None else {"capacity_bytes": ring.capacity, "queued": ring.used(),
                                                   "moved": ring.moved, "dropped": dict(ring.dropped)},
                "dns_gate": self.folding.counters,
                "events": tally.events if tally else 0, "fed": tally.fed if tally else 0,
                "queries": tally.queries if tally else 0,
                "errors": tally.errors if tally else 0, "found": self.found, "bad_messages": self.bad_messages,
                "detectors": tally.detectors if tally else {}}


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="capbox consumers: %(levelname)s %(message)s")
    from agent.consumers import work as _work   # its records pickle as agent.consumers', not __main__'s
    if sys.argv[3:] == ["offline"]:    # a terminal's Ctrl-C stops `capbox detect`; this one ends as its connection
        import signal                  # closes (no traceback of its own)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _kept: list = []
    code = _work(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:] == ["offline"], _kept)
    logging.shutdown()
    os._exit(code)                  # its tables (about a million objects) left unfreed: 0.2 s of CPU at the end
