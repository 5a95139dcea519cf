"""Every detector over a capture file, as the live path runs them: the C core
reads the file with events on (lossless), and each event goes, in order,
through the detector pipeline (agent.detectors.pipeline).

`capbox detect` runs the pipeline in the live agent's consumer worker
(agent.consumers), on the other core (Worker): this process reads the file
and fills the worker's shared ring, waiting for room when it is full (a file
loses nothing).  detect_file runs it in this process, for callers that read
the pipeline's tables or bring their own detectors (tests, bench)."""
import dataclasses
import subprocess
from typing import Optional

# (the detectors and the capture face are imported where they are used: `capbox detect` starts its Worker first)


BATCH = 256          # events read, then fed, at a time (the read buffer's size)
EVENT_RING = 1 << 12  # the C ring's events (6.7 kB each): 1 << 14 made 110 MB the core touched first on large.pcap
                      # (21,000 page faults more).  Lossless, it drains at half full, and what a batch adds still
                      # leaves the TCP source sweep its full 512 summaries a tick: the same events, in the same order
WORKER_RING = 1 << 11   # the worker's ring, in struct hw_event's bytes (14 MB; packed, 4 to 8 times the events)
WAIT_S = 0.001          # the longest wait for room in the worker's ring, or for its messages
STOP_S = 5.0            # for a worker that failed to exit, after its connection closed


class WorkerFailed(Exception):
    """The detector worker ended before the file did (killed, or a detector raised)."""


def _capture(path: str, bpf: str, kinds: frozenset):
    from hwdrivers import CaptureConfig
    return CaptureConfig(source=path, backend="pcapfile", bpf=bpf, events=kinds, event_ring=EVENT_RING,
                         lossless=True, idle_timeout_s=0, active_timeout_s=0, max_flows=1 << 20)


def detect_file(path: str, cfg, bpf: str = "", detectors: Optional[list] = None) -> tuple:
    """(detections, error or None, pipeline) for a file; CaptureError when it cannot be read at all."""
    from agent.detectors.pipeline import Pipeline
    from hwdrivers import Session, dnsgate
    pipeline = Pipeline(cfg, detectors)
    config = _capture(path, bpf, pipeline.kinds())
    found: list = []
    with Session(config) as s:
        repeats = cfg.dns_fold and cfg.dns_repeats and pipeline.repeats
        if cfg.dns_fold and "dns" in config.events:
            dnsgate.set_fold(s, True, repeats)

        def feed():
            while True:   # a batch at a time: the events of a whole ring alive at once cost the collector 0.3 s
                batch = s.read_events(BATCH, repeats=repeats, bare=pipeline.bare)
                found.extend(pipeline.feed_all(batch))
                if len(batch) < BATCH:
                    return
        error = s.run_to_eof(feed)
        while s.flush():         # the last TCP source summaries, as the ring takes them
            feed()
        feed()
        pipeline.dns_gate = dnsgate.counters(s) if s.dns_fold else {}
    return found, error, pipeline


class Worker:
    """The detectors in a worker process (agent.consumers, offline), started first so that its imports overlap
    this process's start; detect() once, then close()."""

    def __init__(self):
        from agent.consumers import spawn
        from hwdrivers.shring import SharedRing
        self.ring = SharedRing(WORKER_RING)
        self.proc, self.conn = spawn(self.ring, offline=True)
        self.found: list = []
        self.tally = None           # the worker's last agent.consumers.Tally

    def detect(self, path: str, cfg, bpf: str = "") -> tuple:
        """(detections, error or None, each detector's counters (Pipeline.counts()), the DNS gate's counters) of
        a file, as detect_file finds them; CaptureError when it cannot be read at all, WorkerFailed."""
        from hwdrivers import Session, dnsgate
        self._send(dataclasses.asdict(cfg))
        kinds, repeats = self._recv()
        with Session(_capture(path, bpf, kinds)) as s:
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


def aggregate(found: list, min_severity: str = "low") -> list:
    """One row per (type, attacker, target), as the threat store keeps them: the worst finding, with its count
    and the time span; rows below min_severity left out."""
    from agent.detectors.detector import SEVERITIES
    floor = SEVERITIES.index(min_severity)
    rows: dict = {}
    for d in found:         # (large.pcap: 19,619 findings, 18,648 rows)
        key = (d.type, d.attacker_mac or d.attacker, d.dst)
        row = rows.get(key)
        if row is None:
            rows[key] = {"detection": d, "count": 1, "first_seen": d.first_seen, "last_seen": d.first_seen}
            continue
        row["count"] += 1
        if d.first_seen > row["last_seen"]:
            row["last_seen"] = d.first_seen
        if d.score > row["detection"].score:
            row["detection"] = d
    if not floor:
        return list(rows.values())
    return [r for r in rows.values() if SEVERITIES.index(r["detection"].severity) >= floor]
