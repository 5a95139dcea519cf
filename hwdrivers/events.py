"""Event records: the few packets Python must see, with a payload snippet."""
import dataclasses

from typing import Optional

from hwdrivers import records as _records
from hwdrivers._hw import ffi, lib
from hwdrivers.flows import format_addr, format_mac

KINDS = [ffi.string(lib.hw_event_name(i)).decode() for i in range(lib.HW_EV_COUNT)]
KIND_BITS = {name: 1 << i for i, name in enumerate(KINDS)}


@dataclasses.dataclass(frozen=True)
class PacketEvent:
    kind: str          # dns, arp, tls, http, sip, tcp_syn, tcp_rst, token
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
    record: Optional[object] = None  # dns: DnsRecord, tls: TlsRecord (hwdrivers.records), parsed in C
    record_error: str = ""           # why the payload gave no record (a malformed reason)

    @property
    def ts(self) -> float:
        return self.ts_ns / 1e9


def from_cdata(e) -> PacketEvent:
    family = e.family if e.family else 4
    return PacketEvent(
        kind=KINDS[e.kind], ts_ns=e.ts_ns, flow_id=e.flow_id,
        src=format_addr(family, e.src), dst=format_addr(family, e.dst),
        sport=e.sport, dport=e.dport, proto=e.proto, vlan=e.vlan, tcp_flags=e.tcp_flags,
        seq=e.seq, ack=e.ack, from_initiator=bool(e.from_initiator),
        src_mac=format_mac(e.src_mac), dst_mac=format_mac(e.dst_mac), wirelen=e.wirelen,
        payload_len=e.payload_len, payload=bytes(ffi.buffer(e.snippet, e.snippet_len)),
        record=_records.from_event(e) if e.has_rec else None,
        record_error=_records.MALFORMED_NAMES[e.rec_status] if e.rec_status else "",
    )
