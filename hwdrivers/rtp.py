"""RTP and RTCP streams: the endpoints Python names and what the C core
measured on them (sequence, loss, RFC 3550 jitter), as plain objects."""
import dataclasses
import ipaddress
from typing import Mapping

from hwdrivers._hw import ffi, lib
from hwdrivers.errors import CaptureError, ErrorCode
from hwdrivers.flows import format_addr

KINDS = {"rtp": lib.HW_RTP_RTP, "rtcp": lib.HW_RTP_RTCP}
KIND_NAMES = {v: k for k, v in KINDS.items()}
DYNAMIC_FIRST = 96


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """An address and port that carries RTP (or RTCP) for a call (tag) from
    from_ns on; clock maps dynamic payload types to their clock rate (0 for
    telephone-event, whose timestamps do not advance)."""

    addr: str
    port: int
    tag: int
    kind: str = "rtp"
    from_ns: int = 0
    clock: Mapping[int, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Stream:
    src: str
    dst: str
    sport: int
    dport: int
    kind: str          # rtp or rtcp
    ssrc: int
    tag: int
    first_ns: int
    last_ns: int
    packets: int
    bytes: int
    expected: int      # RTP: from the first to the highest sequence number
    lost: int          # expected - packets (negative with duplicates)
    seq_errors: int
    markers: int
    clock_rate: int
    payload_types: tuple
    jitter_ms: float
    max_jitter_ms: float
    mean_jitter_ms: float
    max_delta_ms: float
    mean_delta_ms: float

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["ssrc"] = f"0x{self.ssrc:08X}"
        return d


def endpoint_to_cdata(e: Endpoint):
    try:
        ip = ipaddress.ip_address(e.addr)
    except ValueError:
        raise CaptureError(ErrorCode.ARG, f"{e.addr!r} is not an IP address") from None
    if e.kind not in KINDS:
        raise CaptureError(ErrorCode.ARG, f"unknown RTP endpoint kind {e.kind!r}")
    if not 0 < e.port < 65536:
        raise CaptureError(ErrorCode.ARG, f"port {e.port} out of range")
    c = ffi.new("struct hw_rtp_endpoint *")
    raw = ip.packed
    ffi.memmove(c.addr, raw, len(raw))
    c.family = ip.version
    c.kind = KINDS[e.kind]
    c.port = e.port
    c.tag = e.tag
    c.from_ns = max(0, e.from_ns)
    for pt, rate in e.clock.items():
        if DYNAMIC_FIRST <= pt < DYNAMIC_FIRST + lib.HW_RTP_DYN:
            c.clock[pt - DYNAMIC_FIRST] = rate
    return c


def stream_from_cdata(s) -> Stream:
    pts = tuple(n for n in range(128) if s.pt_mask[n >> 5] >> (n & 31) & 1)
    return Stream(
        src=format_addr(s.family, s.src), dst=format_addr(s.family, s.dst), sport=s.sport, dport=s.dport,
        kind=KIND_NAMES.get(s.kind, str(s.kind)), ssrc=s.ssrc, tag=s.tag, first_ns=s.first_ns, last_ns=s.last_ns,
        packets=s.packets, bytes=s.bytes, expected=s.expected, lost=s.lost, seq_errors=s.seq_errors,
        markers=s.markers, clock_rate=s.clock_rate, payload_types=pts, jitter_ms=s.jitter_ms,
        max_jitter_ms=s.max_jitter_ms, mean_jitter_ms=s.mean_jitter_ms, max_delta_ms=s.max_delta_ms,
        mean_delta_ms=s.mean_delta_ms)


def stats_from_cdata(s) -> dict:
    return {name: getattr(s, name) for name, _ in ffi.typeof("struct hw_rtp_stats").fields}
