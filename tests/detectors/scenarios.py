"""Labelled attack scenarios and their benign twins, written as pcap files.

Each scenario is the traffic a tap on a small LAN would see: a victim, its
gateway and resolver, servers on the Internet, and (in the attacks) an
attacker on the LAN.  The label says which detector must fire and with
which attacker address; a twin is the same traffic without the attack and
must raise nothing.  Used by the detector tests and by bench/detectors.py
(precision and recall)."""
import dataclasses
import pathlib
import struct
from typing import Optional

import dns.message
import dns.rrset

from tests.hwdrivers.packets import ACK, ETH_ARP, PSH, SYN, TCP, UDP, arp, eth, ipv4, tcp, udp

GW, GW_MAC, GW_MAC2 = "192.168.1.1", "00:1a:2b:3c:4d:01", "00:1a:2b:3c:4d:99"
VICTIM, VICTIM_MAC = "192.168.1.10", "3c:22:fb:10:10:10"
OTHER, OTHER_MAC = "192.168.1.20", "3c:22:fb:20:20:20"
ATTACKER, ATTACKER_MAC = "192.168.1.66", "de:ad:be:ef:66:66"
RESOLVER = "8.8.8.8"
BANK, BANK_IP, BANK_FORGED = "www.mybank.com", "151.101.1.10", "45.33.32.66"
T0 = 1_700_000_000.0
BROADCAST = "ff:ff:ff:ff:ff:ff"


@dataclasses.dataclass
class Scenario:
    name: str
    detector: str                      # the detector this scenario is about
    attack: bool                       # True: it must fire; False: the benign twin, it must not
    attacker: Optional[str] = None     # the address the finding must name (detection.attacker)
    attacker_mac: Optional[str] = None
    frames: list = dataclasses.field(default_factory=list)   # (ts, bytes)

    def add(self, ts: float, frame: bytes) -> None:
        self.frames.append((ts, frame))

    def write(self, directory: pathlib.Path) -> pathlib.Path:
        path = pathlib.Path(directory) / f"{self.name}.pcap"
        with open(path, "wb") as f:
            f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
            for ts, frame in sorted(self.frames, key=lambda x: x[0]):
                sec = int(ts)
                f.write(struct.pack("<IIII", sec, int(round((ts - sec) * 1e6)), len(frame), len(frame)) + frame)
        return path


# ---- frames ------------------------------------------------------------------------------

def arp_frame(op, sender_mac, sender_ip, target_mac, target_ip, eth_src=None, eth_dst=None):
    body = arp(op, sender_mac, sender_ip, target_mac if op == 2 else "00:00:00:00:00:00", target_ip)
    return eth(body, ETH_ARP, eth_src or sender_mac, eth_dst or (target_mac if op == 2 else BROADCAST))


def udp_frame(src, dst, sport, dport, payload, src_mac, dst_mac):
    return eth(ipv4(src, dst, UDP, udp(sport, dport, payload)), 0x0800, src_mac, dst_mac)


class TcpConn:
    """One TCP connection's frames, sequence numbers kept."""

    def __init__(self, sc: Scenario, client, cmac, server, smac, sport, dport, ts):
        self.sc, self.c, self.cmac, self.s, self.smac, self.sport, self.dport = sc, client, cmac, server, smac, sport, dport
        self.cseq, self.sseq, self.ts = 1000, 5000, ts
        self._send(True, SYN, b"")
        self._send(False, SYN | ACK, b"")
        self._send(True, ACK, b"")

    def _send(self, from_client, flags, payload):
        self.ts += 0.001
        if from_client:
            seg = tcp(self.sport, self.dport, flags, self.cseq, self.sseq if flags & ACK else 0, payload)
            frame = eth(ipv4(self.c, self.s, TCP, seg), 0x0800, self.cmac, self.smac)
        else:
            seg = tcp(self.dport, self.sport, flags, self.sseq, self.cseq, payload)
            frame = eth(ipv4(self.s, self.c, TCP, seg), 0x0800, self.smac, self.cmac)
        self.sc.add(self.ts, frame)
        adv = len(payload) + (1 if flags & SYN else 0)
        if from_client:
            self.cseq += adv
        else:
            self.sseq += adv

    def client(self, payload: bytes):
        self._send(True, PSH | ACK, payload)
        return self

    def server(self, payload: bytes):
        self._send(False, PSH | ACK, payload)
        return self


def dns_query(name, ident, rdtype="A"):
    q = dns.message.make_query(name, rdtype)
    q.id = ident
    return q


def dns_answer(query, ips, ttl=300):
    r = dns.message.make_response(query)
    if ips:
        rdtype = "AAAA" if ":" in ips[0] else "A"
        r.answer.append(dns.rrset.from_text(query.question[0].name, ttl, "IN", rdtype, *ips))
    return r.to_wire()


def dns_exchange(sc, ts, name, ident, answers, client=VICTIM, cmac=VICTIM_MAC, server=RESOLVER, smac=GW_MAC,
                 sport=53000, ttl=300):
    q = dns_query(name, ident)
    sc.add(ts, udp_frame(client, server, sport, 53, q.to_wire(), cmac, smac))
    for k, (ips, mac, src) in enumerate(answers):
        sc.add(ts + 0.002 + 0.010 * k, udp_frame(src or server, client, 53, sport, dns_answer(q, ips, ttl), mac or smac, cmac))


def tls_client_hello(sni: str, versions=(0x0304, 0x0303), suites=(0x1301, 0x1302, 0xC02F, 0xC030, 0x002F),
                     legacy=0x0303) -> bytes:
    name = sni.encode()
    ext = b""
    ext += struct.pack("!HHHBH", 0, len(name) + 5, len(name) + 3, 0, len(name)) + name
    if versions:
        sv = b"".join(struct.pack("!H", v) for v in versions)
        ext += struct.pack("!HHB", 43, len(sv) + 1, len(sv)) + sv
    body = struct.pack("!H", legacy) + bytes(32) + b"\x00" + struct.pack("!H", 2 * len(suites)) + \
        b"".join(struct.pack("!H", s) for s in suites) + b"\x01\x00" + struct.pack("!H", len(ext)) + ext
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def tls_server_hello(version: int, suite: int, random: bytes = bytes(32)) -> bytes:
    ext = b""
    legacy = version
    if version >= 0x0304:
        legacy = 0x0303
        ext = struct.pack("!HHH", 43, 2, version)
    body = struct.pack("!H", legacy) + random + b"\x00" + struct.pack("!H", suite) + b"\x00" + \
        struct.pack("!H", len(ext)) + ext
    hs = b"\x02" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x03" + struct.pack("!H", len(hs)) + hs


def http_request(method, host, path, body=b"", extra=""):
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Mozilla/5.0\r\n{extra}"
    if body:
        head += f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def http_response(status, reason, headers="", body=b""):
    return (f"HTTP/1.1 {status} {reason}\r\n{headers}Content-Length: {len(body)}\r\n\r\n").encode() + body


# ---- the LAN's ordinary life ----------------------------------------------------------------

def lan_baseline(sc: Scenario, ts: float) -> None:
    """Hosts resolving the gateway and each other, a few lookups: what every scenario starts with."""
    sc.add(ts, arp_frame(1, VICTIM_MAC, VICTIM, "", GW))
    sc.add(ts + 0.001, arp_frame(2, GW_MAC, GW, VICTIM_MAC, VICTIM))
    sc.add(ts + 0.5, arp_frame(1, OTHER_MAC, OTHER, "", GW))
    sc.add(ts + 0.501, arp_frame(2, GW_MAC, GW, OTHER_MAC, OTHER))
    sc.add(ts + 0.8, arp_frame(1, ATTACKER_MAC, ATTACKER, "", GW))
    sc.add(ts + 0.801, arp_frame(2, GW_MAC, GW, ATTACKER_MAC, ATTACKER))
    dns_exchange(sc, ts + 1.0, "www.wikipedia.org", 0x1001, [(["208.80.154.224"], None, None)])
    dns_exchange(sc, ts + 1.2, "updates.example.net", 0x1002, [(["93.184.216.34"], None, None)],
                 client=ATTACKER, cmac=ATTACKER_MAC, sport=41000)


# ---- ARP -------------------------------------------------------------------------------------

def arp_poison_gateway() -> Scenario:
    """arpspoof -t victim gateway (and back): unsolicited replies every 2 s saying the
    gateway is at the attacker's MAC, while the real gateway still answers."""
    sc = Scenario("arp_poison_gateway", "arp_spoof", True, ATTACKER, ATTACKER_MAC)
    lan_baseline(sc, T0)
    sc.add(T0 + 2, arp_frame(1, ATTACKER_MAC, ATTACKER, "", VICTIM))
    sc.add(T0 + 2.001, arp_frame(2, VICTIM_MAC, VICTIM, ATTACKER_MAC, ATTACKER))
    for i in range(6):
        t = T0 + 5 + 2 * i
        sc.add(t, arp_frame(2, ATTACKER_MAC, GW, VICTIM_MAC, VICTIM))
        sc.add(t + 0.001, arp_frame(2, ATTACKER_MAC, VICTIM, GW_MAC, GW))
    sc.add(T0 + 9.5, arp_frame(1, VICTIM_MAC, VICTIM, "", GW))
    sc.add(T0 + 9.501, arp_frame(2, GW_MAC, GW, VICTIM_MAC, VICTIM))
    return sc


def arp_poison_cold_start() -> Scenario:
    """Poisoning already under way when the tap starts: the attacker's claim comes
    first, the real gateway's answers after."""
    sc = Scenario("arp_poison_cold_start", "arp_spoof", True, ATTACKER, ATTACKER_MAC)
    sc.add(T0, arp_frame(1, ATTACKER_MAC, ATTACKER, "", OTHER))
    sc.add(T0 + 0.001, arp_frame(2, OTHER_MAC, OTHER, ATTACKER_MAC, ATTACKER))
    for i in range(5):
        sc.add(T0 + 1 + 2 * i, arp_frame(2, ATTACKER_MAC, GW, VICTIM_MAC, VICTIM))
    sc.add(T0 + 4, arp_frame(1, OTHER_MAC, OTHER, "", GW))
    sc.add(T0 + 4.001, arp_frame(2, GW_MAC, GW, OTHER_MAC, OTHER))
    return sc


def arp_gateway_replaced() -> Scenario:
    """Twin: the gateway's NIC is replaced; the new one announces itself once and answers."""
    sc = Scenario("arp_gateway_replaced", "arp_spoof", False)
    lan_baseline(sc, T0)
    sc.add(T0 + 30, arp_frame(2, GW_MAC2, GW, BROADCAST, GW, eth_dst=BROADCAST))
    sc.add(T0 + 40, arp_frame(1, VICTIM_MAC, VICTIM, "", GW))
    sc.add(T0 + 40.001, arp_frame(2, GW_MAC2, GW, VICTIM_MAC, VICTIM))
    return sc


def arp_busy_lan() -> Scenario:
    """Twin: many hosts resolving each other, announcements, probes."""
    sc = Scenario("arp_busy_lan", "arp_spoof", False)
    lan_baseline(sc, T0)
    for i in range(2, 40):
        ip, m = f"192.168.1.{100 + i}", f"3c:22:fb:00:00:{i:02x}"
        t = T0 + 2 + i * 0.3
        sc.add(t, arp_frame(1, m, "0.0.0.0", "", ip))                    # probe
        sc.add(t + 0.1, arp_frame(1, m, ip, "", ip))                     # announcement
        sc.add(t + 0.2, arp_frame(1, m, ip, "", GW))
        sc.add(t + 0.201, arp_frame(2, GW_MAC, GW, m, ip))
    return sc


# ---- DNS -------------------------------------------------------------------------------------

def dns_race() -> Scenario:
    """A forged answer from the attacker's MAC (source address spoofed as the resolver)
    beats the real one to the victim."""
    sc = Scenario("dns_race", "dns_hijack", True, ATTACKER, ATTACKER_MAC)
    lan_baseline(sc, T0)
    dns_exchange(sc, T0 + 5, BANK, 0x4242, [([BANK_FORGED], ATTACKER_MAC, None), ([BANK_IP], GW_MAC, None)])
    return sc


def dns_bogon() -> Scenario:
    """The LAN's resolver (a compromised home router) answers a public bank name
    with a private address; it answered the same name correctly before."""
    sc = Scenario("dns_bogon", "dns_hijack", True, GW, GW_MAC)
    lan_baseline(sc, T0)
    dns_exchange(sc, T0 + 2, BANK, 0x5001, [([BANK_IP], None, None)], server=GW, ttl=60)
    dns_exchange(sc, T0 + 600, BANK, 0x5002, [(["10.10.10.66"], None, None)], server=GW, sport=53001)
    return sc


def dns_two_resolvers() -> Scenario:
    """Twin: the victim asks two resolvers the same question (same id); both answer,
    the same addresses in another order, and one answer is duplicated."""
    sc = Scenario("dns_two_resolvers", "dns_hijack", False)
    lan_baseline(sc, T0)
    q = dns_query(BANK, 0x71E5)
    sc.add(T0 + 3, udp_frame(VICTIM, RESOLVER, 53100, 53, q.to_wire(), VICTIM_MAC, GW_MAC))
    sc.add(T0 + 3.5, udp_frame(VICTIM, "1.1.1.1", 53100, 53, q.to_wire(), VICTIM_MAC, GW_MAC))
    a1 = dns_answer(q, [BANK_IP, "151.101.65.10"])
    a2 = dns_answer(q, ["151.101.65.10", BANK_IP])
    sc.add(T0 + 3.52, udp_frame(RESOLVER, VICTIM, 53, 53100, a1, GW_MAC, VICTIM_MAC))
    sc.add(T0 + 3.5201, udp_frame(RESOLVER, VICTIM, 53, 53100, a1, GW_MAC, VICTIM_MAC))
    sc.add(T0 + 3.53, udp_frame("1.1.1.1", VICTIM, 53, 53100, a2, GW_MAC, VICTIM_MAC))
    return sc


def dns_local_names() -> Scenario:
    """Twin: local names resolving to private addresses, a CDN name rotating its addresses."""
    sc = Scenario("dns_local_names", "dns_hijack", False)
    lan_baseline(sc, T0)
    dns_exchange(sc, T0 + 2, "printer.lan", 0x6001, [(["192.168.1.50"], None, None)], server=GW)
    dns_exchange(sc, T0 + 3, "nas.home.arpa", 0x6002, [(["192.168.1.51"], None, None)], server=GW)
    dns_exchange(sc, T0 + 4, "cdn.example.net", 0x6003, [(["93.184.216.10"], None, None)], ttl=20)
    dns_exchange(sc, T0 + 40, "cdn.example.net", 0x6004, [(["93.184.216.11"], None, None)], ttl=20)
    return sc


# ---- SSL stripping --------------------------------------------------------------------------

def ssl_strip_redirect_and_post() -> Scenario:
    """The victim used the bank over TLS; later its plain-HTTP visit is answered by the
    attacker's proxy, whose redirect points to http:// (the https:// rewritten), and
    the victim posts its password in clear."""
    sc = Scenario("ssl_strip_redirect_and_post", "ssl_strip", True, ATTACKER, ATTACKER_MAC)
    lan_baseline(sc, T0)
    c = TcpConn(sc, VICTIM, VICTIM_MAC, BANK_IP, GW_MAC, 50000, 443, T0 + 2)
    c.client(tls_client_hello(BANK)).server(tls_server_hello(0x0304, 0x1301))
    c = TcpConn(sc, VICTIM, VICTIM_MAC, ATTACKER, ATTACKER_MAC, 50001, 80, T0 + 300)
    c.client(http_request("GET", BANK, "/"))
    c.server(http_response(302, "Found", f"Location: http://{BANK}/login\r\n"))
    c.client(http_request("GET", BANK, "/login"))
    c.server(http_response(200, "OK", "Content-Type: text/html\r\n",
                           f'<form action="http://{BANK}/login" method="post">'.encode()))
    c.client(http_request("POST", BANK, "/login", b"username=alice&password=hunter2"))
    return sc


def http_upgrade() -> Scenario:
    """Twin: the plain-HTTP visit is redirected to https:// and the victim follows it;
    another site without TLS gets a form posted in clear."""
    sc = Scenario("http_upgrade", "ssl_strip", False)
    lan_baseline(sc, T0)
    c = TcpConn(sc, VICTIM, VICTIM_MAC, BANK_IP, GW_MAC, 50010, 80, T0 + 2)
    c.client(http_request("GET", BANK, "/"))
    c.server(http_response(301, "Moved Permanently", f"Location: https://{BANK}/\r\n"))
    c = TcpConn(sc, VICTIM, VICTIM_MAC, BANK_IP, GW_MAC, 50011, 443, T0 + 2.2)
    c.client(tls_client_hello(BANK)).server(tls_server_hello(0x0304, 0x1301))
    c = TcpConn(sc, VICTIM, VICTIM_MAC, "93.184.216.34", GW_MAC, 50012, 80, T0 + 10)
    c.client(http_request("GET", "forum.example.net", "/"))
    c.server(http_response(200, "OK", "Content-Type: text/html\r\n", b"<a href='/about'>about</a>"))
    c.client(http_request("POST", "forum.example.net", "/search", b"q=weather"))
    return sc


# ---- TLS downgrade ----------------------------------------------------------------------------

def tls_forced_down() -> Scenario:
    """A TLS 1.3-capable client pushed to TLS 1.0: the ServerHello comes from the
    attacker's MAC in the server's name."""
    sc = Scenario("tls_forced_down", "tls_downgrade", True, ATTACKER, ATTACKER_MAC)   # by its own address
    lan_baseline(sc, T0)
    c = TcpConn(sc, VICTIM, VICTIM_MAC, BANK_IP, ATTACKER_MAC, 50100, 443, T0 + 3)
    c.client(tls_client_hello(BANK)).server(tls_server_hello(0x0301, 0x002F))
    return sc


def tls_modern() -> Scenario:
    """Twin: a TLS 1.3 client meets a TLS 1.3 server and a TLS 1.2-only one."""
    sc = Scenario("tls_modern", "tls_downgrade", False)
    lan_baseline(sc, T0)
    c = TcpConn(sc, VICTIM, VICTIM_MAC, BANK_IP, GW_MAC, 50200, 443, T0 + 3)
    c.client(tls_client_hello(BANK)).server(tls_server_hello(0x0304, 0x1301))
    c = TcpConn(sc, VICTIM, VICTIM_MAC, "93.184.216.34", GW_MAC, 50201, 443, T0 + 4)
    c.client(tls_client_hello("old.example.net")).server(tls_server_hello(0x0303, 0xC02F))
    return sc


WEB, WEB_MAC = "192.168.1.20", "3c:22:fb:20:20:20"


def syns(sc: Scenario, src, src_mac, dst, dst_mac, start: float, rate: float, ports, count: int) -> None:
    """count SYNs from src at rate a second, cycling through ports, each answered by a SYN-ACK."""
    for k in range(count):
        ts, port = start + k / rate, ports[k % len(ports)]
        sport = 1024 + k % 60000
        sc.add(ts, eth(ipv4(src, dst, TCP, tcp(sport, port, SYN, 1000 + k, 0)), 0x0800, src_mac, dst_mac))
        sc.add(ts + 0.0002, eth(ipv4(dst, src, TCP, tcp(port, sport, SYN | ACK, 9000, 1001 + k)), 0x0800, dst_mac,
                                src_mac))


def syn_flood_one_service() -> Scenario:
    """hping3 -S --flood -p 80 from a host on the LAN: 6,000 SYNs at 2,000/s to one web server."""
    sc = Scenario("syn_flood_one_service", "syn_flood", True, ATTACKER, ATTACKER_MAC)
    lan_baseline(sc, T0)
    syns(sc, ATTACKER, ATTACKER_MAC, WEB, WEB_MAC, T0 + 3, 2000.0, [80], 6000)
    return sc


def syn_busy_client() -> Scenario:
    """The benign twin: a load test opening 3,000 connections at 50/s, and a fast port scan of one host
    (many ports: the analysis's port_scan, not a flood)."""
    sc = Scenario("syn_busy_client", "syn_flood", False)
    lan_baseline(sc, T0)
    syns(sc, VICTIM, VICTIM_MAC, WEB, WEB_MAC, T0 + 3, 50.0, [80, 443], 3000)
    syns(sc, ATTACKER, ATTACKER_MAC, WEB, WEB_MAC, T0 + 3, 1000.0, list(range(1, 3001)), 3000)
    return sc


SCENARIOS = [arp_poison_gateway, arp_poison_cold_start, arp_gateway_replaced, arp_busy_lan, dns_race, dns_bogon,
             dns_two_resolvers, dns_local_names, ssl_strip_redirect_and_post, http_upgrade, tls_forced_down,
             tls_modern, syn_flood_one_service, syn_busy_client]
