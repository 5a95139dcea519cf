"""Event records: the few packets Python must see, with a payload snippet;
and DNS answers the C core marked as repeats of a template (src/dnsrepeat.c),
read as a few fields (DnsRepeat) by a reader that asks for them."""
import dataclasses
import struct
from typing import Optional

from hwdrivers import records as _records, srcsum
from hwdrivers._hw import ffi, lib
from hwdrivers.layout import Layout

KINDS = [ffi.string(lib.hw_event_name(i)).decode() for i in range(lib.HW_EV_COUNT)]
KIND_BITS = {name: 1 << i for i, name in enumerate(KINDS)}
PAYLOAD_SHIFT = 16             # PAYLOAD_BITS above every KIND_BITS
PAYLOAD_BITS = {name: 1 << (PAYLOAD_SHIFT + i) for i, name in enumerate(KINDS)}   # (a reader's bare: from_buffer)
assert len(KINDS) <= PAYLOAD_SHIFT


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
    record: Optional[object] = None  # dns: DnsRecord, tls: TlsRecord, tcp_src: TcpSourceRecord (hwdrivers.srcsum)
    record_error: str = ""           # why the payload gave no record (a malformed reason)
    query: Optional["PacketEvent"] = None  # dns: the query just before it, folded in by the C core (dnsgate.c;
                                           # without its payload bytes)

    @property
    def ts(self) -> float:
        return self.ts_ns / 1e9


class Template:
    """The facts of a DNS answer that later answers repeat (src/dnsrepeat.c): its record, as read from the answer
    that made the template; `facts` is the reader's (the detectors') own reading of it, kept once made."""
    __slots__ = ("record", "facts")

    def __init__(self, record):
        self.record = record
        self.facts = None


@dataclasses.dataclass(slots=True)
class DnsRepeat:
    """A DNS answer whose name-level facts repeat its template's, with its query folded in (the same client,
    port, id, name and type; sent to the server and through the MAC that answered).  What differs from one
    repeat to the next; the rest is template.record."""
    ts_ns: int
    src: str           # the server
    dst: str           # the client
    sport: int
    dport: int         # the client's port (its query's source port)
    src_mac: str       # the server's side: the MAC that answered, which the query was sent to
    dst_mac: str       # the client's
    query_ts_ns: int   # when its query was sent
    id: int
    ttl: Optional[int]  # the least TTL of its A/AAAA answers (None: it has none)
    template: Template
    kind = "dns"       # not a field: what the event would have been
    query = True       # (its query is folded in, always)

    @property
    def ts(self) -> float:
        return self.ts_ns / 1e9


TEMPLATES: dict = {}   # gen -> Template: from the answer that made it (struct hw_dns_repeat.defines) or, for one
                       # not known here (a new worker, its answer lost at a full ring), from its first repeat
TEMPLATES_MAX = 1 << 14  # past it, all are forgotten: the next repeat of each is read in full, and teaches it again


_EVENT = Layout("struct hw_event", skip=("snippet",))
SIZE = _EVENT.size
_UNPACK = _EVENT.struct.unpack_from
_SNIPPET = _EVENT.offsets["snippet"]
_REC = _EVENT.offsets["rec"]
_TEXT4, _TEXT6, _MACS = _records._TEXT4, _records._TEXT6, _records._MACS   # raw -> text, kept (records.ipv4)
_ipv4, _ipv6, _mac = _records.ipv4, _records.ipv6, _records.mac
_dns_record = _records.dns_from_buffer   # (records.from_buffer's for DNS, without its call)
_PAYLOAD_BIT = 1 << PAYLOAD_SHIFT   # bare >> kind & it: PAYLOAD_BITS[kind]
_TCP_SRC = lib.HW_EV_TCP_SRC
_DNS = lib.HW_EV_DNS
_FOLD = Layout("struct hw_dns_fold", skip=("name",))
_FOLD_UNPACK = _FOLD.struct.unpack_from
_FOLD_NAME = _FOLD.offsets["name"]
FOLD_AT = _REC + ffi.offsetof("struct hw_rec_dns_fold", "fold")   # a dns event's folded query: its ts first (0: none)
_FOLD_TS = struct.Struct("=Q").unpack_from
REP_AT = _REC + ffi.offsetof("struct hw_rec_dns_fold", "rep")
_FOLD_REP = struct.Struct(f"=Q{REP_AT - FOLD_AT - 8}x" + Layout("struct hw_dns_repeat").struct.format[1:]).unpack_from
                                   # (a reader of repeats: the folded query's ts and the repeat fields, one unpack)
_SHREC = struct.Struct("=IHH")     # struct hw_shrec: a packed record's length and where its parts are
_SHREC_SIZE = _SHREC.size
SHREC_UNPACK = _SHREC.unpack_from


def from_buffer(buf, at: int, repeats: bool = False, rec: int = _REC, fold: int = FOLD_AT, bare: int = 0,
                packed: bool = False):
    """The event at byte offset `at` of a buffer of struct hw_event (one unpack, no cffi per field); with
    repeats, a DNS answer marked as a repeat of a known template is a DnsRepeat.  rec, fold, packed: where its
    record and a DNS event's folded query are, from `at`, and whether its DNS record is packed (a packed
    record's, from_packed; rec 0: its record was left out, hw_shring_unread).  bare: KIND_BITS of the
    kinds whose record the reader does not read (left None: records.record_of would parse the payload), and
    PAYLOAD_BITS of those whose payload it does not read when their record is read (left b"": not copied)."""
    (ts_ns, flow_id, src, dst, smac, dmac, wirelen, seq, ack, sport, dport, vlan, snippet_len, payload_len,
     kind, family, proto, tcp_flags, from_initiator, rec_status, has_rec) = _UNPACK(buf, at)
    if family == 6:
        src, dst = _TEXT6.get(src) or _ipv6(src), _TEXT6.get(dst) or _ipv6(dst)
    else:
        src, dst = _TEXT4.get(src) or _ipv4(src), _TEXT4.get(dst) or _ipv4(dst)
    smac, dmac = _MACS.get(smac) or _mac(smac), _MACS.get(dmac) or _mac(dmac)
    record = query = None
    learn = 0
    if kind == _DNS and has_rec:
        if repeats:
            query_ts, gen, defines, ttl, ident, has_ttl = _FOLD_REP(buf, at + fold)
        else:
            query_ts = _FOLD_TS(buf, at + fold)[0]
        if query_ts:
            if repeats:
                template = TEMPLATES.get(gen) if gen else None
                if template is not None:
                    return DnsRepeat(ts_ns, src, dst, sport, dport, smac, dmac, query_ts, ident,
                                     ttl if has_ttl else None, template)
                learn = defines or gen     # the answer that made a template, or a repeat of one not known here
            query = _folded_query(buf, at + fold)
    if has_rec and not rec_status and rec and not bare >> kind & 1:
        record = (_dns_record(buf, at + rec, packed) if kind == _DNS
                  else srcsum.tcpsrc_from_buffer(buf, at + rec, family) if kind == _TCP_SRC
                  else _records.from_buffer(kind, buf, at + rec))
        if learn:
            if len(TEMPLATES) >= TEMPLATES_MAX:
                TEMPLATES.clear()
            TEMPLATES[learn] = Template(record)
    return PacketEvent(KINDS[kind], ts_ns, flow_id, src, dst, sport, dport, proto, vlan, tcp_flags, seq, ack,
                       from_initiator != 0, smac, dmac, wirelen, payload_len,
                       b"" if record is not None and bare >> kind & _PAYLOAD_BIT
                       else bytes(buf[at + _SNIPPET:at + _SNIPPET + snippet_len]), record,
                       _records.MALFORMED_NAMES[rec_status] if rec_status else "", query)


def from_packed(buf, at: int, repeats: bool = False, bare: int = 0):
    """The event of a packed record (struct hw_shrec, cdef/shring.h) at byte offset `at` of a buffer."""
    _len, rec, fold = SHREC_UNPACK(buf, at)
    return from_buffer(buf, at + _SHREC_SIZE, repeats, rec, fold, bare, True)


def _folded_query(buf, at: int) -> PacketEvent:
    """The query event the C core's DNS gate folded into a dns event (struct hw_dns_fold at `at`), as its own
    event would have been but for its payload bytes."""
    (ts_ns, flow_id, src, dst, smac, dmac, wirelen, payload_len, sport, dport, vlan, ident, flags, qtype, qclass,
     rcode, arcount, name_len, family, proto, from_initiator, edns, cut, udp_size, edns_version,
     edns_do) = _FOLD_UNPACK(buf, at)
    if family == 6:
        src, dst = _TEXT6.get(src) or _ipv6(src), _TEXT6.get(dst) or _ipv6(dst)
    else:
        src, dst = _TEXT4.get(src) or _ipv4(src), _TEXT4.get(dst) or _ipv4(dst)
    rec = _records.DnsRecord(ident, flags, rcode, str(buf[at + _FOLD_NAME:at + _FOLD_NAME + name_len], "latin-1"),
                             qtype, qclass, 1, 0, 0, arcount, (), 0, edns != 0, udp_size, edns_version, edns_do != 0,
                             cut != 0)       # (as records.dns_from_buffer reads them)
    return PacketEvent("dns", ts_ns, flow_id, src, dst, sport, dport, proto, vlan, 0, 0, 0, from_initiator != 0,
                       _MACS.get(smac) or _mac(smac), _MACS.get(dmac) or _mac(dmac), wirelen, payload_len, b"", rec)


def from_cdata(e) -> PacketEvent:
    return from_buffer(ffi.buffer(e), 0)
