"""Protocol records parsed in C (cdef/records.h) as typed Python objects
(slotted dataclasses: cheap to build, JSON objects on the event stream; read-only by convention).

An event of kind dns or tls carries its record; Python reads its fields and
never parses the payload bytes again."""
import dataclasses
import functools
import socket
from typing import Optional

from hwdrivers._hw import ffi, lib
from hwdrivers.layout import Layout

MALFORMED_NAMES = [ffi.string(lib.hw_record_malformed_name(i)).decode() for i in range(lib.HW_RMAL_COUNT)]

SECTIONS = {lib.HW_DNS_SEC_ANSWER: "answer", lib.HW_DNS_SEC_AUTHORITY: "authority"}
_T_A, _T_AAAA, _T_MX, _T_TXT, _T_SOA = 1, 28, 15, 16, 6


@functools.lru_cache(maxsize=1024)
def dns_type(t: int) -> str:
    """A record type's mnemonic, as dnspython writes it (TYPE<n> when unknown); the names are the C
    core's, which writes the dns log lines (cdef/logs.h)."""
    name = lib.hw_dns_type_name(t)
    return ffi.string(name).decode() if name != ffi.NULL else f"TYPE{t}"


@functools.lru_cache(maxsize=256)
def dns_rcode(r: int) -> str:
    name = lib.hw_dns_rcode_name(r)
    return ffi.string(name).decode() if name != ffi.NULL else str(r)


@dataclasses.dataclass(slots=True)
class DnsRR:
    name: str          # owner, as on the wire (case kept), no trailing dot
    type: int
    ttl: int
    value: str         # A/AAAA: the address; names: the target; MX: "pref name"; SOA: "mname rname serial ..."
    section: str       # answer, authority
    txt: tuple = ()    # TXT: the character strings


@dataclasses.dataclass
class DnsRecord:
    """A DNS message.  Read from the C core, an answer's records are made only when something reads `rrs`: what
    the DNS detector judges most answers by (their addresses, the least TTL: answer_ips) the core made once, and
    making each record was a third of reading the event."""
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
    __slots__ = (*__annotations__, "held")   # its fields and held (not a field: dns_from_buffer's, see rrs)

    def __getattr__(self, name: str):
        """rrs, made from held when first read (dns_from_buffer holds the C record's bytes from its first RR on, its
        RR count, answer_ips() and where its text starts in those bytes, and leaves rrs unset); held is None when
        it was never set."""
        if name == "held":
            return None
        if name != "rrs":
            raise AttributeError(name)
        raw, n, _, text_at = self.held
        text = raw[text_at:]
        rrs = self.rrs = tuple([_rr(raw, i * _RR_SIZE, text) for i in range(n)])
        return rrs

    @property
    def response(self) -> bool:
        return bool(self.flags & 0x8000)

    @property
    def truncated(self) -> bool:
        return bool(self.flags & 0x0200)

    @property
    def answers(self) -> tuple:
        return tuple(r for r in self.rrs if r.section == "answer")


def answer_ips(rec: DnsRecord):
    """(the distinct addresses of an answer's A/AAAA records in its answer section, sorted when more than one;
    the least TTL of those records, None when none; which of the addresses are public, bit i for the i-th, as
    hw_addr_public answers) as the C core made them, or None when it did not (the record was
    not read from the core, its text pool was full, or the answer has CNAMEs: read rrs)."""
    held = rec.held
    return held[2] if held is not None else None


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
_FACTS_MADE = lib.HW_DNS_FACTS_MADE
_RR_HEAD = Layout("struct hw_dns_rr", skip=("soa",)).struct.unpack_from   # one unpack with the address, no SOA
_V4, _V6 = socket.AF_INET, socket.AF_INET6
_ntop = socket.inet_ntop

# Text of raw addresses and MACs, kept (bounded): a LAN's few hosts fill every event, and inet_ntop was a
# quarter of reading one.  Keys are the raw bytes as the record holds them (an IPv4 address in a 16-byte field is
# read from its first 4: whatever follows makes another key for the same text); IPv6 has its own table.
# Answer addresses have tables of their own: a capture of ever-new answers would empty the hosts' tables.
_TEXT_MAX = 1 << 16
_TEXT4: dict = {}
_TEXT6: dict = {}
_MACS: dict = {}
_ANSWER4: dict = {}
_ANSWER6: dict = {}


def _remember(table: dict, raw: bytes, text: str) -> str:
    if len(table) >= _TEXT_MAX:
        table.clear()
    table[raw] = text
    return text


def ipv4(raw: bytes) -> str:
    """The text of an IPv4 address (its first 4 bytes)."""
    return _TEXT4.get(raw) or _remember(_TEXT4, raw, _ntop(_V4, raw[:4]))


def ipv6(raw: bytes) -> str:
    return _TEXT6.get(raw) or _remember(_TEXT6, raw, _ntop(_V6, raw))


def mac(raw: bytes) -> str:
    return _MACS.get(raw) or _remember(_MACS, raw, raw.hex(":"))


def _rr(buf, at: int, text: bytes) -> DnsRR:
    ttl, t, _cls, section, addr_len, pref, owner_off, owner_len, data_off, data_len, addr = _RR_HEAD(buf, at)
    owner = text[owner_off:owner_off + owner_len].decode("latin-1")
    txt = ()
    if addr_len == 4:
        value = _ANSWER4.get(addr) or _remember(_ANSWER4, addr, _ntop(_V4, addr[:4]))
    elif addr_len == 16:
        value = _ANSWER6.get(addr) or _remember(_ANSWER6, addr, _ntop(_V6, addr))
    else:
        soa = _RR_UNPACK(buf, at)[10:15]
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


def dns_from_buffer(buf, at: int, packed: bool = False) -> DnsRecord:
    """The struct hw_rec_dns at byte offset `at` of a buffer (packed: as a shared ring packs it, src/shring.c
    put_rec): its RRs' bytes held (one copy), made when read."""
    (ident, flags, rcode, qd, an, ns, ar, qtype, qclass, edns, edns_version, edns_do, n, udp_size, skipped,
     name_len, text_len, cut, n_addr, n_cname, facts, min_ttl, ips_off, ips_len, ips_public) = _DNS_UNPACK(buf, at)
    # (str() of a slice: one copy from any buffer, without bytes() first; x != 0: bool(x) without its call)
    rec = DnsRecord(ident, flags, rcode, str(buf[at + _DNS_NAME:at + _DNS_NAME + name_len], "latin-1"), qtype, qclass,
                    qd, an, ns, ar, (), skipped, edns != 0, udp_size, edns_version, edns_do != 0, cut != 0)
    if n:
        if packed:
            rr = at + (_DNS_NAME + name_len + 7 & -8)    # its n records, then its text
            text = rr + n * _RR_SIZE
        else:
            rr, text = at + _RR_AT, at + _DNS_TEXT
        ips = None
        if facts == _FACTS_MADE and not n_cname:
            ips = (str(buf[text + ips_off:text + ips_off + ips_len], "ascii").split(" ") if ips_len else [],
                   min_ttl if n_addr else None, ips_public)
        rec.held = (bytes(buf[rr:text + text_len]), n, ips, text - rr)
        del rec.rrs
    return rec


@dataclasses.dataclass(slots=True)
class TlsCertificate:
    sha256: str        # hex of the DER
    subject: str       # RFC 2253
    issuer: str
    not_before: int    # seconds since the epoch
    not_after: int
    parsed: bool       # False: the DER did not parse (only the fingerprint is known)


@dataclasses.dataclass(slots=True)
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


@dataclasses.dataclass(slots=True)
class ArpRecord:
    op: int                # 1 request, 2 reply
    sender_mac: str
    sender_ip: str
    target_mac: str
    target_ip: str


@dataclasses.dataclass(slots=True)
class NdpPrefix:
    prefix: str
    length: int
    on_link: bool
    autonomous: bool
    valid_s: int
    preferred_s: int


@dataclasses.dataclass(slots=True)
class NdpRecord:
    type: int              # 133 RS, 134 RA, 135 NS, 136 NA, 137 redirect
    code: int
    flags: int             # NA: 0x80 router, 0x40 solicited, 0x20 override; RA: 0x80 managed, 0x40 other
    target: str            # NS, NA, redirect ("" otherwise)
    source_mac: str        # source link-layer address option ("" when absent)
    target_mac: str        # target link-layer address option
    router_lifetime: int   # RA, seconds
    router_pref: int       # RA: -1 low, 0 medium, 1 high
    hop_limit: int
    reachable_ms: int
    retrans_ms: int
    mtu: int
    prefixes: tuple        # NdpPrefix of an RA
    rdnss: tuple           # RA: recursive DNS servers (RFC 8106)


@dataclasses.dataclass(slots=True)
class DhcpRecord:
    version: int           # 4 or 6
    msg_type: int          # v4 option 53; v6 message type
    op: int                # v4: 1 request, 2 reply
    xid: int
    client_mac: str        # v4 chaddr, v6 a DUID-LL(T)'s MAC; "" when unknown
    server_id: str         # v4 option 54 as an address; v6 the server DUID as hex
    offered: str           # v4 yiaddr, v6 IAADDR; "" when none
    requested: str         # v4 option 50
    router: str            # v4 option 3 (first)
    lease_s: int
    client_ip: str         # v4 ciaddr ("0.0.0.0" when none); v6 ""
    routers: tuple         # v4 option 3
    dns: tuple             # v4 option 6, v6 option 23


@dataclasses.dataclass(slots=True)
class HttpRecord:
    response: bool
    method: str
    uri: str
    version: str
    status: int            # 0 for a request
    host: str
    location: str
    content_type: str
    content_length: int    # -1 when absent
    hsts: bool             # Strict-Transport-Security present
    hsts_max_age: int
    hsts_subdomains: bool
    cookies: tuple         # (name, secure, httponly, samesite) of each Set-Cookie (first 4)
    form_password: str     # a url-encoded form post's password-like field name, "" when none
    complete: bool         # the head ended within the segment
    user_agent: str = ""   # a request's User-Agent


_HTTP = Layout("struct hw_rec_http")
_HTTP_UNPACK = _HTTP.struct.unpack_from
_COOKIE_AT = _HTTP.offsets["cookie_names"]
_COOKIE_NAME = dict(ffi.typeof("struct hw_rec_http").fields)["cookie_names"].type.item.length   # bytes a name


def _cstr(raw: bytes) -> str:
    """A C string held in a char array (to its first NUL), as _str reads it."""
    return raw.partition(b"\0")[0].decode("utf-8", "backslashreplace")


def http_from_buffer(buf, at: int) -> HttpRecord:
    """The struct hw_rec_http at byte offset `at` of a buffer (one unpack: cffi's per-field reads cost more than
    the detectors' work on most heads); the one reader of it, events' and parse_http's."""
    (response, complete, hsts, hsts_subdomains, form_password, n_cookies, status, hsts_max_age, content_length,
     cookie_flags, method, version, host, uri, location, content_type, password_field,
     user_agent) = _HTTP_UNPACK(buf, at)
    cookies = ()
    if n_cookies:
        names = bytes(buf[at + _COOKIE_AT:at + _COOKIE_AT + n_cookies * _COOKIE_NAME])
        cookies = tuple((_cstr(names[i * _COOKIE_NAME:(i + 1) * _COOKIE_NAME]), bool(cookie_flags[i] & 1),
                         bool(cookie_flags[i] & 2), bool(cookie_flags[i] & 4)) for i in range(n_cookies))
    return HttpRecord(bool(response), _cstr(method), _cstr(uri), _cstr(version), status, _cstr(host),
                      _cstr(location), _cstr(content_type), content_length, bool(hsts), hsts_max_age,
                      bool(hsts_subdomains), cookies, _cstr(password_field) if form_password else "", bool(complete),
                      _cstr(user_agent))


def _mac(raw) -> str:
    return bytes(raw).hex(":")


def arp_from_cdata(a) -> ArpRecord:
    return ArpRecord(a.op, _mac(a.sender_mac), _ntop(_V4, bytes(a.sender_ip)), _mac(a.target_mac),
                     _ntop(_V4, bytes(a.target_ip)))


def ndp_from_cdata(r) -> NdpRecord:
    prefixes = tuple(NdpPrefix(_ntop(_V6, bytes(x.prefix)), x.len, bool(x.flags & 0x80), bool(x.flags & 0x40),
                               x.valid, x.preferred) for x in r.prefixes[0:r.n_prefixes])
    return NdpRecord(r.type, r.code, r.flags, _ntop(_V6, bytes(r.target)) if r.type in (135, 136, 137) else "",
                     _mac(r.source_mac) if r.has_source_mac else "", _mac(r.target_mac) if r.has_target_mac else "",
                     r.router_lifetime, r.router_pref, r.hop_limit, r.reachable_ms, r.retrans_ms, r.mtu, prefixes,
                     tuple(_ntop(_V6, bytes(a)) for a in r.rdnss[0:r.n_rdnss]))


def dhcp_from_cdata(r) -> DhcpRecord:
    v4 = r.version == 4
    sid = bytes(r.server_id[0:r.server_id_len])
    offered = (_ntop(_V4, bytes(r.offered)[:4]) if v4 else _ntop(_V6, bytes(r.offered))) if r.has_offered else ""
    return DhcpRecord(r.version, r.msg_type, r.op, r.xid, _mac(r.client_mac) if r.has_client_mac else "",
                      (_ntop(_V4, sid) if v4 and len(sid) == 4 else sid.hex()), offered,
                      _ntop(_V4, bytes(r.requested)) if r.has_requested else "",
                      _ntop(_V4, bytes(r.router)) if r.has_router else "", r.lease_s,
                      _ntop(_V4, bytes(r.client_ip)) if v4 else "",
                      tuple(_ntop(_V4, bytes(a)) for a in r.routers[0:r.n_routers]),
                      tuple(_ntop(_V4, bytes(a)[:4]) if v4 else _ntop(_V6, bytes(a)) for a in r.dns[0:r.n_dns]))


def _cast(ctype: str, buf, at: int):
    return ffi.cast(ctype, ffi.cast("char *", ffi.from_buffer(buf)) + at)


def from_buffer(kind: int, buf, at: int) -> Optional[object]:
    """The record of an event of this kind at byte offset `at` of a buffer (the event's rec union)."""
    if kind == lib.HW_EV_DNS:
        return dns_from_buffer(buf, at)
    if kind == lib.HW_EV_TLS:  # rarer kinds: read through cffi
        return tls_from_cdata(_cast("struct hw_rec_tls *", buf, at))
    if kind == lib.HW_EV_ARP:
        return arp_from_cdata(_cast("struct hw_rec_arp *", buf, at))
    if kind == lib.HW_EV_HTTP:
        return http_from_buffer(buf, at)
    if kind == lib.HW_EV_NDP:
        return ndp_from_cdata(_cast("struct hw_rec_ndp *", buf, at))
    if kind == lib.HW_EV_DHCP:
        return dhcp_from_cdata(_cast("struct hw_rec_dhcp *", buf, at))
    return None


def parse_dns(payload: bytes, tcp: bool = False):
    """A DNS message parsed by the C core (tests, offline tools): DnsRecord, or the malformed reason."""
    out = ffi.new("struct hw_rec_dns *")
    rc = lib.hw_dns_parse(payload, len(payload), int(tcp), out)
    if rc:
        return MALFORMED_NAMES[rc]
    lib.hw_dns_facts(out)         # (as the core does for the events it hands to Python)
    return dns_from_buffer(ffi.buffer(out), 0)


def parse_tls(payload: bytes):
    """TLS records parsed by the C core: TlsRecord, or the malformed reason."""
    out = ffi.new("struct hw_rec_tls *")
    rc = lib.hw_tls_parse(payload, len(payload), out)
    return MALFORMED_NAMES[rc] if rc else tls_from_cdata(out)


def parse_ndp(icmp6: bytes):
    """An ICMPv6 neighbour-discovery message (from its type byte) parsed by the C core: NdpRecord or the reason."""
    out = ffi.new("struct hw_rec_ndp *")
    rc = lib.hw_ndp_parse(icmp6, len(icmp6), out)
    return MALFORMED_NAMES[rc] if rc else ndp_from_cdata(out)


def parse_dhcp(payload: bytes, version: int = 4):
    """A DHCPv4 or DHCPv6 UDP payload parsed by the C core: DhcpRecord or the reason."""
    out = ffi.new("struct hw_rec_dhcp *")
    rc = lib.hw_dhcp_parse(payload, len(payload), version, out)
    return MALFORMED_NAMES[rc] if rc else dhcp_from_cdata(out)


def parse_arp(body: bytes):
    """An Ethernet/IPv4 ARP body parsed by the C core: ArpRecord or the reason."""
    out = ffi.new("struct hw_rec_arp *")
    rc = lib.hw_arp_parse(body, len(body), out)
    return MALFORMED_NAMES[rc] if rc else arp_from_cdata(out)


def record_of(ev) -> Optional[object]:
    """The record of a PacketEvent: the one the core attached, or (an event made by hand, without one)
    its payload parsed by the C core now; None when there is none or the payload is malformed."""
    if ev.record is not None or ev.record_error:
        return ev.record
    parse = {"dns": lambda p: parse_dns(p, tcp=ev.proto == 6), "tls": parse_tls, "arp": parse_arp,
             "http": parse_http, "dhcp": lambda p: parse_dhcp(p, 4 if ev.sport in (67, 68) else 6),
             "ndp": lambda p: parse_ndp(bytes((ev.dport >> 8, ev.dport & 0xFF, 0, 0)) + p)}.get(ev.kind)
    rec = parse(ev.payload) if parse else None
    return None if isinstance(rec, str) else rec


def parse_http(head: bytes):
    """An HTTP/1.x head parsed by the C core: HttpRecord or the reason."""
    out = ffi.new("struct hw_rec_http *")
    rc = lib.hw_http_parse(head, len(head), out)
    return MALFORMED_NAMES[rc] if rc else http_from_buffer(ffi.buffer(out), 0)
