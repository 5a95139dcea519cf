"""The protocol logs of a capture file, as the live path writes them: the C
core reads the file with events on (lossless) and every flow expired at the
end; sip and rtp come from the calls' two passes (agent.calls.offline)."""
from typing import Callable, Iterable

from agent.logs.records import Builder
from hwdrivers import CaptureConfig, CaptureError, Session

EVENT_KINDS = {"dns": "dns", "http": "http", "tls": "tls", "arp": "arp", "ndp": "ndp", "dhcp": "dhcp"}


def log_file(path: str, types: Iterable[str], emit: Callable[[str, dict], None], bpf: str = "") -> dict:
    """Call emit(type, record) for every record of the file, in the order they are made; the counts
    and the error that ended the file early (None).  CaptureError when it cannot be read at all."""
    types = frozenset(types)
    builder = Builder(types)
    counts = dict.fromkeys(sorted(types), 0)

    def out(records) -> None:
        for kind, rec in records:
            counts[kind] += 1
            emit(kind, rec)

    events = frozenset(k for t, k in EVENT_KINDS.items() if t in types)
    config = CaptureConfig(source=path, backend="pcapfile", bpf=bpf, events=events, event_ring=1 << 14,
                           lossless=True, flow_ring=1 << 16, idle_timeout_s=0, active_timeout_s=0, max_flows=1 << 20)
    with Session(config) as s:
        def batch() -> None:
            for ev in s.read_events():
                out(builder.feed(ev))
            for f in s.read_flows():
                out(builder.flow(f.as_dict()))
            out(builder.expire())
        error = s.run_to_eof(batch)
        while s.flush():                # every flow still open ends: its conn record, and what waited for it
            batch()
        batch()
        out(builder.flush())
        packets = s.counters().packets
    if types & {"sip", "rtp"} and error is None:
        from agent.calls.offline import analyse
        try:
            for call in analyse(path).calls:
                out(builder.call(call.detail()))
        except CaptureError as e:
            error = e
    return {"packets": packets, "records": counts, "error": error.message if error else None}
