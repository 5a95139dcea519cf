"""The protocol logs of a capture file, as the live path writes them: the C
core reads the file with events on (lossless) and every flow expired at the
end; the dns lines are made in C as the core parses the messages, the conn
lines in C from the expired flows, the http and tls lines in C as the core
parses the heads and handshakes (hwdrivers.logs), the other types by the
Builder; sip and rtp come from the calls' two passes
(agent.calls.offline)."""
import json
from typing import Callable, Iterable

from agent.detectors.suites import SUITES
from agent.logs.records import DNS_WAIT_S, Builder
from hwdrivers import CaptureConfig, CaptureError, Session
from hwdrivers.logs import Logger, flow_ids

EVENT_KINDS = {"dns": "dns", "http": "http", "tls": "tls", "arp": "arp", "ndp": "ndp", "dhcp": "dhcp"}


def log_text(path: str, types: Iterable[str], write: Callable[[str, bytes], None], bpf: str = "",
             tag: bool = False) -> dict:
    """Call write(type, lines) with the records of the file as '\\n'-ended JSON lines (several at a time, a
    bytes-like object valid during the call), in the order they are made; the counts and the error that ended
    the file early (None).  CaptureError when it cannot be read at all.  tag: each line starts with Zeek's
    "_path" (its type)."""
    types = frozenset(types)
    builder = Builder(types)
    logger = Logger(types, builder.salt, path=tag, suites=SUITES)
    counts = dict.fromkeys(sorted(types), 0)

    def out(records) -> None:
        for kind, rec in records:
            counts[kind] += 1
            write(kind, (json.dumps({"_path": kind, **rec} if tag else rec, separators=(",", ":"), default=str)
                         + "\n").encode())

    def made() -> None:
        for kind, lines in logger.take(copy=False):
            write(kind, lines)

    def conns(buf, n: int) -> list:
        left = logger.flows(buf, n)
        if builder.waits:       # what waited for the flows C logged (their ids listed only then: n ints a batch)
            for fid in builder.waiting(flow_ids(buf, n)):
                out(builder.ended(fid))
        made()          # after each 1,024 flows: the lines' buffers stay small (in cache, no page faults)
        return left if "conn" in types else []          # (no conn lines: no Python object per flow)

    events = frozenset(k for t, k in EVENT_KINDS.items() if t in types and t not in logger.kinds)
    # flow_ring: the flows end at the file's end, a ring's worth a flush; 4,096 records (800 KB) where 65,536
    # touched 13 MB once, 3,000 page faults on large.pcap
    config = CaptureConfig(source=path, backend="pcapfile", bpf=bpf, events=events, event_ring=1 << 14,
                           lossless=True, flow_ring=1 << 12, idle_timeout_s=0, active_timeout_s=0, max_flows=1 << 20)
    with Session(config) as s:
        # conn lines made as the flows leave the table; Python sees those it leaves (no IP flow's end waited
        # for in the Builder: C has http and tls)
        s.set_logger(logger, flows="conn" in types)

        def batch() -> None:
            for ev in s.read_events():
                out(builder.feed(ev))
            for f in s.flows_through(conns):
                out(builder.flow(f.as_dict()))
            builder.now = max(builder.now, logger.stats()["now"])   # the packet time the C logger saw too
            logger.expire(builder.now, DNS_WAIT_S)
            out(builder.expire())
            made()
        error = s.run_to_eof(batch)
        while s.flush():                # every flow still open ends: its conn record, and what waited for it
            batch()
        batch()
        logger.flush()
        made()
        out(builder.flush())
        packets = s.counters().packets
    counts.update(logger.stats()["records"])
    if types & {"sip", "rtp"} and error is None:
        from agent.calls.offline import analyse
        try:
            for call in analyse(path).calls:
                out(builder.call(call.detail()))
        except CaptureError as e:
            error = e
    return {"packets": packets, "records": counts, "error": error.message if error else None}


def log_file(path: str, types: Iterable[str], emit: Callable[[str, dict], None], bpf: str = "") -> dict:
    """log_text with emit(type, record) called with every record as a dict."""
    def write(kind: str, lines) -> None:
        for line in bytes(lines).splitlines():
            emit(kind, json.loads(line))
    return log_text(path, types, write, bpf)
