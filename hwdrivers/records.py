"""Protocol records parsed in C (cdef/records.h) as typed Python objects.

An event of kind dns or tls carries its record; Python reads its fields and
never parses the payload bytes again."""
import dataclasses
import socket
from typing import NamedTuple, Optional

from hwdrivers._hw import ffi, lib
from hwdrivers.layout import Layout

MALFORMED_NAMES = [ffi.string(lib.hw_record_malformed_name(i)).decode() for i in range(lib.HW_RMAL_COUNT)]

DNS_TYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV",
             35: "NAPTR", 39: "DNAME", 41: "OPT", 43: "DS", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 50: "NSEC3",
             52: "TLSA", 64: "SVCB", 65: "HTTPS", 99: "SPF", 251: "IXFR", 252: "AXFR", 255: "ANY", 257: "CAA"}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED", 6: "YXDOMAIN",
          7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE", 16: "BADVERS"}
SECTIONS = {lib.HW_DNS_SEC_ANSWER: "answer", lib.HW_DNS_SEC_AUTHORITY: "authority"}
_T_A, _T_AAAA, _T_MX, _T_TXT, _T_SOA = 1, 28, 15, 16, 6


def dns_type(t: int) -> str:
    """A record type's mnemonic, as dnspython writes it (TYPE<n> when unknown)."""
    return DNS_TYPES.get(t) or f"TYPE{t}"


def dns_rcode(r: int) -> str:
    return RCODES.get(r) or str(r)


class DnsRR(NamedTuple):
    name: str          # owner, as on the wire (case kept), no trailing dot
    type: int
    ttl: int
    value: str         # A/AAAA: the address; names: the target; MX: "pref name"; SOA: "mname rname serial ..."
    section: str       # answer, authority
    txt: tuple = ()    # TXT: the character strings


class DnsRecord(NamedTuple):
    id: int
    flags: int
    rcode: int
    name: str          # the first question's name
    qtype: int
    qclass: int
    qdcount: int
    ancount: int
    nscount: int
    arcount: int
    rrs: tuple         # DnsRR of the answer and authority sections, in wire order
    rr_skipped: int    # answer/authority records past what the record holds
    edns: bool
    edns_udp_size: int
    edns_version: int
    edns_do: bool
    cut: bool          # a TCP message longer than the segment

    @property
    def response(self) -> bool:
        return bool(self.flags & 0x8000)

    @property
    def truncated(self) -> bool:
        return bool(self.flags & 0x0200)

    @property
    def answers(self) -> tuple:
        return tuple(r for r in self.rrs if r.section == "answer")


def _txt(raw: bytes) -> tuple:
    out, i = [], 0
    while i < len(raw):
        n = raw[i]
        out.append(raw[i + 1:i + 1 + n].decode("utf-8", "backslashreplace"))
        i += 1 + n
    return tuple(out)


_DNS = Layout("struct hw_rec_dns", skip=("name", "text"))
_DNS_UNPACK = _DNS.struct.unpack_from
_DNS_NAME, _DNS_TEXT = _DNS.offsets["name"], _DNS.offsets["text"]
_RR = Layout("struct hw_dns_rr")
_RR_UNPACK, _RR_SIZE, _RR_AT = _RR.struct.unpack_from, _RR.size, _DNS.offsets["rr"]
_V4, _V6 = socket.AF_INET, socket.AF_INET6
_ntop = socket.inet_ntop


def _rr(buf, at: int, text: bytes) -> DnsRR:
    ttl, t, _cls, section, addr_len, pref, owner_off, owner_len, data_off, data_len, *soa, addr = _RR_UNPACK(buf, at)
    owner = text[owner_off:owner_off + owner_len].decode("latin-1")
    txt = ()
    if addr_len == 4:
        value = _ntop(_V4, addr[:4])
    elif addr_len == 16:
        value = _ntop(_V6, addr)
    else:
        data = text[data_off:data_off + data_len]
        if t == _T_TXT:
            txt = _txt(data)
            value = " ".join(txt)
        else:
            value = data.decode("latin-1")
            if t == _T_MX:
                value = f"{pref} {value}"
            elif t == _T_SOA:
                value = f"{value} {' '.join(str(v) for v in soa)}"
    return DnsRR(owner, t, ttl, value, SECTIONS.get(section, ""), txt)


def dns_from_buffer(buf, at: int) -> DnsRecord:
    """The struct hw_rec_dns at byte offset `at` of a buffer."""
    (ident, flags, rcode, qd, an, ns, ar, qtype, qclass, edns, edns_version, edns_do, n, udp_size, skipped,
     name_len, text_len, cut) = _DNS_UNPACK(buf, at)
    rrs = ()
    if n:
        text = bytes(buf[at + _DNS_TEXT:at + _DNS_TEXT + text_len])
        base = at + _RR_AT
        rrs = tuple(_rr(buf, base + i * _RR_SIZE, text) for i in range(n))
    name = bytes(buf[at + _DNS_NAME:at + _DNS_NAME + name_len]).decode("latin-1")
    return DnsRecord(ident, flags, rcode, name, qtype, qclass, qd, an, ns, ar, rrs, skipped, bool(edns), udp_size,
                     edns_version, bool(edns_do), bool(cut))


@dataclasses.dataclass(frozen=True)
class TlsCertificate:
    sha256: str        # hex of the DER
    subject: str       # RFC 2253
    issuer: str
    not_before: int    # seconds since the epoch
    not_after: int
    parsed: bool       # False: the DER did not parse (only the fingerprint is known)


@dataclasses.dataclass(frozen=True)
class TlsRecord:
    hs_type: int           # first handshake message: 1 ClientHello, 2 ServerHello, 11 Certificate; 21 alert
    sslv2: bool
    record_version: int
    version: int           # the hello's (legacy) version
    selected_version: int  # ServerHello supported_versions, 0 when absent
    cipher: int            # ServerHello: the chosen suite
    ciphers: tuple         # ClientHello suites (SSLv2 hellos: the 24-bit cipher specs)
    extensions: tuple
    groups: tuple
    point_formats: tuple
    sig_algs: tuple
    versions: tuple        # ClientHello supported_versions
    sni: str
    alpn: tuple
    ja3: str
    ja3s: str
    ja4: str
    certificates: tuple    # TlsCertificate, TLS <= 1.2 (and SSLv2 ServerHello)
    client_hello: bool
    server_hello: bool
    alert_level: int
    alert_desc: int
    server_random_tail: bytes  # the last 8 bytes of the ServerHello random (downgrade sentinel)

    @property
    def negotiated_version(self) -> int:
        return self.selected_version or self.version


def _list(l) -> tuple:
    return tuple(l.v[0:l.n])


def _str(c) -> str:
    return ffi.string(c).decode("utf-8", "backslashreplace")


def tls_from_cdata(t) -> TlsRecord:
    certs = tuple(TlsCertificate(bytes(c.sha256).hex(), _str(c.subject), _str(c.issuer), c.not_before, c.not_after,
                                 bool(c.parsed)) for c in t.certs[0:t.n_certs])
    return TlsRecord(
        t.hs_type, bool(t.sslv2), t.record_version, t.version, t.selected_version, t.cipher,
        tuple(t.v2_ciphers[0:t.n_v2_ciphers]) if t.sslv2 else _list(t.ciphers),
        _list(t.extensions), _list(t.groups), _list(t.point_formats), _list(t.sig_algs), _list(t.versions),
        _str(t.sni), tuple(_str(a) for a in t.alpn[0:t.n_alpn]), _str(t.ja3), _str(t.ja3s), _str(t.ja4), certs,
        bool(t.has_client_hello), bool(t.has_server_hello), t.alert_level, t.alert_desc,
        bytes(t.server_random_tail))


def from_buffer(kind: int, buf, at: int) -> Optional[object]:
    """The record of an event of this kind at byte offset `at` of a buffer (the event's rec union)."""
    if kind == lib.HW_EV_DNS:
        return dns_from_buffer(buf, at)
    if kind == lib.HW_EV_TLS:  # rare: read through cffi
        return tls_from_cdata(ffi.cast("struct hw_rec_tls *", ffi.cast("char *", ffi.from_buffer(buf)) + at))
    return None


def parse_dns(payload: bytes, tcp: bool = False):
    """A DNS message parsed by the C core (tests, offline tools): DnsRecord, or the malformed reason."""
    out = ffi.new("struct hw_rec_dns *")
    rc = lib.hw_dns_parse(payload, len(payload), int(tcp), out)
    return MALFORMED_NAMES[rc] if rc else dns_from_buffer(ffi.buffer(out), 0)


def parse_tls(payload: bytes):
    """TLS records parsed by the C core: TlsRecord, or the malformed reason."""
    out = ffi.new("struct hw_rec_tls *")
    rc = lib.hw_tls_parse(payload, len(payload), out)
    return MALFORMED_NAMES[rc] if rc else tls_from_cdata(out)
