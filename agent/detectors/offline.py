"""Every detector over a capture file, as the live path runs them: the C core
reads the file with events on (lossless), and each event goes, in order,
through the detector pipeline (agent.detectors.pipeline).

`capbox detect` runs the pipeline in the live agent's consumer worker, on
the other core (agent.consumers.Worker, reading the file as file_config
says); detect_file runs it in this process, for callers that read the
pipeline's tables or bring their own detectors (tests, bench)."""
from typing import Optional

from agent.detectors.detector import SEVERITIES
from agent.detectors.pipeline import Pipeline
from hwdrivers import CaptureConfig, Session, dnsgate


BATCH = 256          # events read, then fed, at a time (the read buffer's size)
EVENT_RING = 1 << 12  # the C ring's events (6.7 kB each): 1 << 14 made 110 MB the core touched first on large.pcap
                      # (21,000 page faults more).  Lossless, it drains at half full, and what a batch adds still
                      # leaves the TCP source sweep its full 512 summaries a tick: the same events, in the same order


def file_config(path: str, bpf: str, kinds: frozenset) -> CaptureConfig:
    """The capture of a file for the detectors: lossless, flows expired only at its end."""
    return CaptureConfig(source=path, backend="pcapfile", bpf=bpf, events=kinds, event_ring=EVENT_RING,
                         lossless=True, idle_timeout_s=0, active_timeout_s=0, max_flows=1 << 20)


def detect_file(path: str, cfg, bpf: str = "", detectors: Optional[list] = None) -> tuple:
    """(detections, error or None, pipeline) for a file; CaptureError when it cannot be read at all."""
    pipeline = Pipeline(cfg, detectors)
    config = file_config(path, bpf, pipeline.kinds())
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


class Threats:
    """One row per (type, attacker, target), as the threat store keeps them: the worst finding, with its count
    and the time span.  Fed a list of findings at a time: `capbox detect` folds them in as the worker sends
    them, while it waits for the worker anyway, not all after the worker's end (large.pcap: 19,619 findings,
    18,648 rows)."""

    def __init__(self):
        self.by_key: dict = {}

    def add(self, found: list) -> None:
        by_key = self.by_key
        for d in found:
            key = (d.type, d.attacker_mac or d.attacker, d.dst)
            row = by_key.get(key)
            if row is None:
                by_key[key] = {"detection": d, "count": 1, "first_seen": d.first_seen, "last_seen": d.first_seen}
                continue
            row["count"] += 1
            if d.first_seen > row["last_seen"]:
                row["last_seen"] = d.first_seen
            if d.score > row["detection"].score:
                row["detection"] = d

    def rows(self, min_severity: str = "low") -> list:
        """The rows, those below min_severity left out."""
        floor = SEVERITIES.index(min_severity)
        if not floor:
            return list(self.by_key.values())
        return [r for r in self.by_key.values() if SEVERITIES.index(r["detection"].severity) >= floor]


def aggregate(found: list, min_severity: str = "low") -> list:
    """Threats' rows of a list of findings."""
    threats = Threats()
    threats.add(found)
    return threats.rows(min_severity)
