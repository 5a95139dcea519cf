"""Every detector as one pipeline: an event goes to the detectors that read
its kind, then ONE shared Lan learns it, once (a claim is judged against
what was known before it).  Eight detectors each learning their own Lan
cost eight times the learning; this is the object the offline `capbox
detect` and the live detector service both feed.

A DNS event may carry the query just before it (folded in by the C core:
hwdrivers.dnsgate): that query is judged and learnt first, exactly as its
own event would have been.  A DNS answer the C core marked as a repeat of
its template (hwdrivers.events.DnsRepeat, when the pipeline reads them:
`repeats`) is judged from the template's facts and its own few fields, in
the same steps: its query, the query's frame, the answer, its frame."""
import gc
from typing import Iterable, Optional

from agent.detectors.lan import FRAME_KINDS, LEARN_KINDS, Lan
from hwdrivers.events import KIND_BITS, PAYLOAD_BITS, DnsRepeat


UNREAD_RECORDS = ("http",)   # kinds whose C record no detector reads (ssl_strip parses the head and body itself):
                             # read bare (hwdrivers.events.from_buffer), 5 us an event saved
UNREAD_PAYLOADS = ("dns",)   # kinds whose payload no detector reads when their C record is there (dns_hijack reads
                             # the record; records.record_of parses the payload of one without): not copied
GC_THRESHOLD = (50000, 20, 100)   # young objects between collections: the default 700 made a third of the work
GC_THRESHOLD_OFFLINE = (1 << 20, 20, 100)   # `capbox detect`, with no pause to keep short: large.pcap's 17
                                            # collections (0.27 s, each walking the tables) are none


def tune_gc(threshold: tuple = GC_THRESHOLD) -> None:
    """For a process that mostly feeds the pipeline (the worker, `capbox detect`): its tables hold about a million
    objects, and the collector walked them every few thousand allocations (the bench DNS capture: 5.2 s of CPU
    with the default thresholds, 3.8 s with these).  What was imported before is frozen out of its walks."""
    gc.freeze()
    gc.set_threshold(*threshold)


class Pipeline:
    def __init__(self, cfg, detectors: Optional[list] = None):
        from agent.detectors import DETECTORS
        self.detectors = detectors if detectors is not None else [cls(cfg) for cls in DETECTORS]
        self.lan = Lan()
        self.unlearned = 0
        self.queries = 0           # DNS queries folded into the events fed (a DnsRepeat's too), fed before them
        self.dns_gate: dict = {}   # the C core's DNS gate counters, when it folded queries (hwdrivers.dnsgate)
        self.route: dict = {}
        for d in self.detectors:
            d.lan = self.lan
            for k in d.kinds:
                self.route.setdefault(k, []).append(d)
        self.judges = {k: tuple(d.judge for d in ds) for k, ds in self.route.items()}   # (bound once: feed's loop)
        self.learns = frozenset(LEARN_KINDS) & self.kinds()
        dns = self.route.get("dns", ())
        self.dns = dns[0] if len(dns) == 1 else None
        self.repeats = hasattr(self.dns, "judge_exchange")   # its one DNS detector can read DnsRepeats
        self.bare = sum(KIND_BITS[k] for k in UNREAD_RECORDS) + sum(PAYLOAD_BITS[k] for k in UNREAD_PAYLOADS)
                                                               # the readers' bare

    def kinds(self) -> frozenset:
        """The event kinds the pipeline wants from the capture."""
        return frozenset(k for d in self.detectors for k in d.all_kinds())

    def feed(self, event) -> list:
        """The detections one packet event raises."""
        if event.__class__ is DnsRepeat:
            return self.feed_repeat(event)
        return self.feed_all((event,))

    def feed_query(self, q) -> list:
        """A DNS query folded into the next DNS event (its PacketEvent.query), as its own event would have been."""
        self.queries += 1
        out: list = []
        for d in self.route.get("dns", ()):
            found = d.judge_query(q)
            if found:
                out.extend(found)
        if "dns" in self.learns:
            try:
                self.lan.frame(q.src, q.dst, q.src_mac, q.dst_mac, q.ts_ns / 1e9)   # (q.ts: a property's call)
            except (ValueError, IndexError, KeyError, UnicodeError):
                self.unlearned += 1
        return out

    def feed_repeat(self, r) -> list:
        """A DNS answer that repeats its template, its query folded in: as feed_query(query) + feed(answer), the
        LAN learning each one's frame after it is judged (one call: the one DNS detector does all four steps)."""
        self.queries += 1
        return self.dns.judge_exchange(r, self.lan.frame if "dns" in self.learns else None)

    def counts(self) -> dict:
        """Each detector's threshold and counters (health)."""
        return {d.name: {"threshold": d.threshold, **d.counts} for d in self.detectors}

    def feed_all(self, events: Iterable) -> list:
        """The detections of events in order; DNS repeats one after another go to the DNS detector as one run
        (dns_hijack.judge_run: what feed_repeat() of each finds).  Each event's steps are here, not a call of
        feed() each (feed is feed_all of one: 150,000 calls fewer on large.pcap)."""
        out: list = []
        run: list = []
        judges, learns, lan = self.judges, self.learns, self.lan
        for ev in events:
            if ev.__class__ is DnsRepeat:
                run.append(ev)
                continue
            if run:
                out.extend(self._run(run))
                run = []
            kind = ev.kind
            if kind == "dns" and (q := getattr(ev, "query", None)) is not None:   # a query folded into it goes first
                out.extend(self.feed_query(q))
            for judge in judges.get(kind, ()):
                found = judge(ev)
                if found:
                    out.extend(found)
            if kind in learns:
                try:
                    if kind in FRAME_KINDS:        # Lan.learn's own steps for them, without its call (110,000 a file)
                        lan.frame(ev.src, ev.dst, ev.src_mac, ev.dst_mac, ev.ts_ns / 1e9)
                    else:
                        lan.learn(ev)
                except (ValueError, IndexError, KeyError, UnicodeError):
                    self.unlearned += 1
        if run:
            out.extend(self._run(run))
        return out

    def _run(self, run: list) -> list:
        """DNS repeats one after another, to the DNS detector as one run."""
        self.queries += len(run)
        return self.dns.judge_run(run, self.lan.frame if "dns" in self.learns else None)
