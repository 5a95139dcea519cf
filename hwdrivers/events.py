"""Event records: the few packets Python must see, with a payload snippet."""
import dataclasses
import socket
from typing import Optional

from hwdrivers import records as _records
from hwdrivers._hw import ffi, lib
from hwdrivers.layout import Layout

KINDS = [ffi.string(lib.hw_event_name(i)).decode() for i in range(lib.HW_EV_COUNT)]
KIND_BITS = {name: 1 << i for i, name in enumerate(KINDS)}


@dataclasses.dataclass(slots=True)
class PacketEvent:
    """One event.  Not frozen: a frozen dataclass costs 4 us to build (object.__setattr__ per field), a
    slotted one 0.7 us, and hundreds of thousands are built a second; treat it as read-only."""
    kind: str          # dns, arp, tls, http, sip, tcp_src, token, ndp, dhcp
    ts_ns: int
    flow_id: int
    src: str           # ARP: sender protocol address
    dst: str           # ARP: target protocol address
    sport: int
    dport: int
    proto: int
    vlan: int
    tcp_flags: int
    seq: int
    ack: int
    from_initiator: bool
    src_mac: str
    dst_mac: str
    wirelen: int
    payload_len: int   # as the headers announce it; payload may be shorter
    payload: bytes     # token: from up to 256 bytes before the match on
    record: Optional[object] = None  # dns: DnsRecord, tls: TlsRecord, tcp_src: TcpSourceRecord (hwdrivers.records)
    record_error: str = ""           # why the payload gave no record (a malformed reason)
    query: Optional[object] = None   # dns: the query just before it, folded in by the C core (records.FoldedQuery)

    @property
    def ts(self) -> float:
        return self.ts_ns / 1e9


_EVENT = Layout("struct hw_event", skip=("snippet",))
SIZE = _EVENT.size
_UNPACK = _EVENT.struct.unpack_from
_SNIPPET = _EVENT.offsets["snippet"]
_REC = _EVENT.offsets["rec"]
_V4, _V6 = socket.AF_INET, socket.AF_INET6
_ntop = socket.inet_ntop
_TCP_SRC = lib.HW_EV_TCP_SRC
_DNS = lib.HW_EV_DNS


def from_buffer(buf, at: int) -> PacketEvent:
    """The event at byte offset `at` of a buffer of struct hw_event (one unpack, no cffi per field)."""
    (ts_ns, flow_id, src, dst, smac, dmac, wirelen, seq, ack, sport, dport, vlan, snippet_len, payload_len,
     kind, family, proto, tcp_flags, from_initiator, rec_status, has_rec) = _UNPACK(buf, at)
    if family == 6:
        src, dst = _ntop(_V6, src), _ntop(_V6, dst)
    else:
        src, dst = _ntop(_V4, src[:4]), _ntop(_V4, dst[:4])
    record = query = None
    if has_rec and not rec_status:
        record = (_records.tcpsrc_from_buffer(buf, at + _REC, family) if kind == _TCP_SRC
                  else _records.from_buffer(kind, buf, at + _REC))
    if kind == _DNS and has_rec:
        query = _records.folded_query(buf, at + _REC)
    return PacketEvent(KINDS[kind], ts_ns, flow_id, src, dst, sport, dport, proto, vlan, tcp_flags, seq, ack,
                       bool(from_initiator), smac.hex(":"), dmac.hex(":"), wirelen, payload_len,
                       bytes(buf[at + _SNIPPET:at + _SNIPPET + snippet_len]), record,
                       _records.MALFORMED_NAMES[rec_status] if rec_status else "", query)


def query_event(q) -> PacketEvent:
    """The event of a query the C core folded into the next DNS event (records.FoldedQuery), as it would have
    come on its own (without its payload bytes): for what reads every DNS message (bus listeners)."""
    return PacketEvent("dns", q.ts_ns, q.flow_id, q.src, q.dst, q.sport, q.dport, q.proto, q.vlan, 0, 0, 0,
                       q.from_initiator, q.src_mac, q.dst_mac, q.wirelen, q.payload_len, b"", q.record)


def from_cdata(e) -> PacketEvent:
    return from_buffer(ffi.buffer(e), 0)
