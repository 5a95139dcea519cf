"""Frames built byte by byte for the C core's tests, and a session to inject them into.

Checksums are left zero: the parser never reads them.  Every builder returns
bytes, so frames compose: eth(ipv4(A, B, udp(53, 1000, b"x"))).
"""
import pathlib
import socket
import struct

from hwdrivers import CaptureConfig, Session

# Link types (DLT / LINKTYPE values).
NULL, EN10MB, RAW, LINKTYPE_RAW, LOOP, SLL, IPV4, IPV6, SLL2 = 0, 1, 12, 101, 108, 113, 228, 229, 276

# Ethertypes.
ETH_IPV4, ETH_ARP, ETH_IPV6 = 0x0800, 0x0806, 0x86DD
ETH_VLAN, ETH_QINQ, ETH_QINQ_OLD = 0x8100, 0x88A8, 0x9100
ETH_MPLS, ETH_PPPOE_SESSION = 0x8847, 0x8864

# IP protocols and IPv6 extension headers.
TCP, UDP, ICMP, ICMP6 = 6, 17, 1, 58
HOP_BY_HOP, ROUTING, FRAGMENT, DEST_OPTS, NO_NEXT = 0, 43, 44, 60, 59

# TCP flags.
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

A4, B4 = "10.0.0.1", "10.0.0.2"
A6, B6 = "2001:db8::1", "2001:db8::2"
MAC_A, MAC_B = "02:00:0a:00:00:01", "02:00:0a:00:00:02"
BROADCAST = "ff:ff:ff:ff:ff:ff"

T0 = 1_700_000_000 * 10**9  # packet time base, ns
MS = 10**6
S = 10**9


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def addr(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)


# ---- transport ------------------------------------------------------------

def tcp(sport: int, dport: int, flags: int = ACK, seq: int = 1000, ack: int = 0,
        payload: bytes = b"", options: bytes = b"", data_offset: int = None) -> bytes:
    doff = (20 + len(options)) // 4 if data_offset is None else data_offset
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, 65535, 0, 0) + options + payload


def udp(sport: int, dport: int, payload: bytes = b"", length: int = None) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload) if length is None else length, 0) + payload


def icmp(type_: int, code: int = 0, ident: int = 0, seq: int = 0, payload: bytes = b"") -> bytes:
    """ICMP or ICMPv6 (same header layout)."""
    return struct.pack("!BBHHH", type_, code, 0, ident, seq) + payload


# ---- network --------------------------------------------------------------

def ipv4(src: str, dst: str, proto: int, payload: bytes, options: bytes = b"",
         total_length: int = None, ident: int = 1, frag: int = 0, version: int = 4,
         ihl: int = None) -> bytes:
    """frag: the flags/fragment-offset word (0x2000 = more fragments, offset in 8-byte units)."""
    hl = (20 + len(options)) // 4 if ihl is None else ihl
    tot = 20 + len(options) + len(payload) if total_length is None else total_length
    return struct.pack("!BBHHHBBH4s4s", version << 4 | hl, 0, tot, ident, frag, 64, proto, 0,
                       addr(src), addr(dst)) + options + payload


def ipv6(src: str, dst: str, next_header: int, payload: bytes, payload_length: int = None,
         version: int = 6) -> bytes:
    plen = len(payload) if payload_length is None else payload_length
    return struct.pack("!IHBB16s16s", version << 28, plen, next_header, 64, addr(src), addr(dst)) + payload


def ext6(next_header: int, units: int = 0) -> bytes:
    """Hop-by-hop, routing or destination options: (units + 1) * 8 bytes, padded with PadN."""
    pad = (units + 1) * 8 - 4
    return bytes((next_header, units, 1, pad)) + bytes(pad)


def frag6(next_header: int, offset_units: int = 0, more: bool = False, ident: int = 0x1234) -> bytes:
    return struct.pack("!BBHI", next_header, 0, offset_units << 3 | int(more), ident)


def arp(op: int, sender_mac: str, sender_ip: str, target_mac: str, target_ip: str) -> bytes:
    return struct.pack("!HHBBH6s4s6s4s", 1, ETH_IPV4, 6, 4, op, mac(sender_mac), addr(sender_ip),
                       mac(target_mac), addr(target_ip))


# ---- tunnels ----------------------------------------------------------------

ETH_TEB, ETH_ERSPAN, ETH_ERSPAN3 = 0x6558, 0x88BE, 0x22EB
GRE, IPIP, IPV6_IN_IP = 47, 4, 41


def gre(proto: int, payload: bytes, key: int = None, seq: int = None, csum: bool = False,
        flags: int = 0) -> bytes:
    fl = flags | (0x8000 if csum else 0) | (0x2000 if key is not None else 0) | (0x1000 if seq is not None else 0)
    out = struct.pack("!HH", fl, proto)
    if csum:
        out += bytes(4)
    if key is not None:
        out += struct.pack("!I", key)
    if seq is not None:
        out += struct.pack("!I", seq)
    return out + payload


def erspan2(session: int, frame: bytes, version: int = 1) -> bytes:
    """ERSPAN type II header (GRE 0x88be with a sequence number) and the mirrored frame."""
    return struct.pack("!HHI", version << 12, session & 0x3FF, 0) + frame


def erspan3(session: int, frame: bytes, platform: bool = False) -> bytes:
    """ERSPAN type III (GRE 0x22eb); the O bit announces the 8-byte platform sub-header."""
    head = struct.pack("!HHIHH", 2 << 12, session & 0x3FF, 0, 0, int(platform))
    return head + (bytes(8) if platform else b"") + frame


def vxlan(vni: int, frame: bytes, flags: int = 0x08) -> bytes:
    return struct.pack("!BBHI", flags, 0, 0, vni << 8) + frame


def geneve(vni: int, payload: bytes, proto: int = ETH_TEB, options: bytes = b"", version: int = 0) -> bytes:
    return struct.pack("!BBHI", version << 6 | len(options) // 4, 0, proto, vni << 8) + options + payload


def gtp(teid: int, packet: bytes, ext: bytes = b"", version: int = 1, msg: int = 0xFF) -> bytes:
    """GTP-U v1; ext: packed extension headers (the first announced as a PDU session container)."""
    flags = version << 5 | 0x10 | (0x04 if ext else 0)
    opt = struct.pack("!HBB", 0, 0, 0x85) if ext else b""
    return struct.pack("!BBHI", flags, msg, len(opt) + len(ext) + len(packet), teid) + opt + ext + packet


# ---- link -----------------------------------------------------------------

def eth(payload: bytes, ethertype: int = ETH_IPV4, src: str = MAC_A, dst: str = MAC_B) -> bytes:
    return mac(dst) + mac(src) + struct.pack("!H", ethertype) + payload


def tag(vid: int, inner_type: int) -> bytes:
    """One 802.1Q tag's body (TCI and the next ethertype); the TPID is the ethertype before it."""
    return struct.pack("!HH", vid, inner_type)


def mpls(*labels: int) -> bytes:
    """A label stack; the bottom-of-stack bit on the last."""
    return b"".join(struct.pack("!I", label << 12 | (i == len(labels) - 1) << 8 | 64)
                    for i, label in enumerate(labels))


def pppoe(ppp_proto: int, payload: bytes) -> bytes:
    return struct.pack("!BBHHH", 0x11, 0, 0x0001, 2 + len(payload), ppp_proto) + payload


def sll(payload: bytes, proto: int = ETH_IPV4, src: str = MAC_A) -> bytes:
    return struct.pack("!HHH8sH", 0, 1, 6, mac(src) + bytes(2), proto) + payload


def sll2(payload: bytes, proto: int = ETH_IPV4, src: str = MAC_A) -> bytes:
    return struct.pack("!HHIHBB8s", proto, 0, 1, 1, 0, 6, mac(src) + bytes(2)) + payload


def null(payload: bytes, family: int, byteorder: str = "little") -> bytes:
    return family.to_bytes(4, byteorder) + payload


# ---- whole frames -----------------------------------------------------------

def host_mac(ip: str) -> str:
    """Every IPv4 test host has its own MAC: 02:00 and the address."""
    return "02:00:" + ":".join(f"{b:02x}" for b in addr(ip))


def _eth4(ip: bytes, src: str, dst: str, vlan: int = None) -> bytes:
    if vlan is not None:
        return eth(tag(vlan, ETH_IPV4) + ip, ETH_VLAN, host_mac(src), host_mac(dst))
    return eth(ip, ETH_IPV4, host_mac(src), host_mac(dst))


def tcp4(src: str = A4, dst: str = B4, sport: int = 40000, dport: int = 80, vlan: int = None,
         pad_to: int = 0, **kw) -> bytes:
    frame = _eth4(ipv4(src, dst, TCP, tcp(sport, dport, **kw)), src, dst, vlan)
    return frame + bytes(max(0, pad_to - len(frame)))


def udp4(src: str = A4, dst: str = B4, sport: int = 40000, dport: int = 53, payload: bytes = b"",
         vlan: int = None) -> bytes:
    return _eth4(ipv4(src, dst, UDP, udp(sport, dport, payload)), src, dst, vlan)


def icmp4(src: str = A4, dst: str = B4, type_: int = 8, ident: int = 1, seq: int = 1) -> bytes:
    return _eth4(ipv4(src, dst, ICMP, icmp(type_, 0, ident, seq, b"ping")), src, dst)


# ---- payloads ---------------------------------------------------------------

def tls_hello(handshake_type: int = 1) -> bytes:
    """A TLS 1.2 ClientHello (1) or ServerHello (2) record, the smallest valid shape."""
    body = b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00" + b"\x00\x00"
    hs = bytes([handshake_type]) + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(hs).to_bytes(2, "big") + hs


TLS_ALERT = bytes.fromhex("15030300020228")                  # fatal handshake_failure
# SSLv2 record header (length 28, high bit set), CLIENT-HELLO offering TLS 1.0, one cipher, a 16-byte challenge
SSL2_CLIENT_HELLO = bytes.fromhex("801c" "01" "0301" "0003" "0000" "0010" "010080") + bytes(16)
HTTP_GET = b"GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n"
HTTP_200 = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
SIP_INVITE = b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1\r\n\r\n"


def dns_query(name: str = "example.com", ident: int = 0x1234) -> bytes:
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + qname + b"\x00\x01\x00\x01"


# ---- the session ----------------------------------------------------------

_EMPTY_PCAP = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, EN10MB)


def session(tmp_path: pathlib.Path, **config) -> Session:
    """A session on an empty capture file: nothing arrives but what the test injects."""
    path = tmp_path / "empty.pcap"
    path.write_bytes(_EMPTY_PCAP)
    defaults = dict(flow_ring=4096, lossless=True, idle_timeout_s=0, active_timeout_s=0)
    return Session(CaptureConfig(str(path), **{**defaults, **config}))


def flows(s: Session) -> list:
    """Every flow record, in id order, after expiring what is left in the table."""
    s.flush()
    return sorted(s.read_flows(), key=lambda r: r.id)
