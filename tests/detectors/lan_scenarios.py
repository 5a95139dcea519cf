"""Labelled scenarios for what the detectors learn from the whole LAN, and
the newer attack classes: ARP poisoning where the gateway never ARPs, IPv6
neighbour spoofing, rogue RAs, rogue DHCP servers, NXDOMAIN rewriting, an
SSL 2.0 session; each with its benign twin.  Same form as scenarios.py."""
import ipaddress
import struct

import dns.message
import dns.rcode

from tests.detectors.scenarios import (ATTACKER, ATTACKER_MAC, BROADCAST, GW, GW_MAC, RESOLVER, T0, VICTIM,
                                       VICTIM_MAC, Scenario, TcpConn, arp_frame, dns_exchange, dns_query, udp_frame)
from tests.hwdrivers.packets import eth, ipv6, udp

ICMP6 = 58
GW6, VICTIM6, ATTACKER6 = "fe80::1", "fe80::10", "fe80::66"
ALL_NODES = "ff02::1"


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def _icmp6(type_: int, word: bytes, body: bytes) -> bytes:
    return bytes([type_, 0]) + b"\x00\x00" + word + body


def nd_frame(src, dst, src_mac, dst_mac, type_, word=b"\x00" * 4, body=b"") -> bytes:
    return eth(ipv6(src, dst, ICMP6, _icmp6(type_, word, body)), 0x86DD, src_mac, dst_mac)


def lla(kind: int, mac: str) -> bytes:
    return bytes([kind, 1]) + _mac(mac)


def na(src, dst, src_mac, dst_mac, target, tlla, solicited=True, override=True) -> bytes:
    flags = (0x40 if solicited else 0) | (0x20 if override else 0)
    return nd_frame(src, dst, src_mac, dst_mac, 136, bytes([flags, 0, 0, 0]),
                    ipaddress.IPv6Address(target).packed + lla(2, tlla))


def ns(src, src_mac, target) -> bytes:
    return nd_frame(src, "ff02::1:ff00:1", src_mac, "33:33:ff:00:00:01", 135, b"\x00" * 4,
                    ipaddress.IPv6Address(target).packed + lla(1, src_mac))


def ra(src, src_mac, prefix: str, preference: int = 0) -> bytes:
    word = bytes([64, preference << 3]) + struct.pack("!H", 1800)
    net = ipaddress.IPv6Network(prefix)
    pio = bytes([3, 4, net.prefixlen, 0xC0]) + struct.pack("!II", 86400, 14400) + b"\x00" * 4 + net.network_address.packed
    return nd_frame(src, ALL_NODES, src_mac, "33:33:00:00:00:01", 134, word, struct.pack("!II", 0, 0) + lla(1, src_mac) + pio)


def dhcp_offer(server, server_mac, xid, client_mac, offered, router, dns_ip, message=2) -> bytes:
    body = struct.pack("!BBBBIHH", 2, 1, 6, 0, xid, 0, 0) + b"\x00" * 4 + ipaddress.IPv4Address(offered).packed
    body += ipaddress.IPv4Address(server).packed + b"\x00" * 4 + _mac(client_mac) + b"\x00" * 10 + b"\x00" * 192
    opts = bytes([53, 1, message, 54, 4]) + ipaddress.IPv4Address(server).packed
    opts += bytes([3, 4]) + ipaddress.IPv4Address(router).packed + bytes([6, 4]) + ipaddress.IPv4Address(dns_ip).packed
    opts += bytes([51, 4]) + struct.pack("!I", 600) + b"\xff"
    return udp_frame(server, "255.255.255.255", 67, 68, body + b"\x63\x82\x53\x63" + opts, server_mac, BROADCAST)


def dhcp_discover(client_mac, xid) -> bytes:
    body = struct.pack("!BBBBIHH", 1, 1, 6, 0, xid, 0, 0x8000) + b"\x00" * 16 + _mac(client_mac) + b"\x00" * 202
    return udp_frame("0.0.0.0", "255.255.255.255", 68, 67, body + b"\x63\x82\x53\x63" + bytes([53, 1, 1, 255]),
                     client_mac, BROADCAST)


def syn(sc, ts, src, smac, dst, dmac, sport):
    TcpConn(sc, src, smac, dst, dmac, sport, 443, ts)


# ---- ARP, learned from traffic ----------------------------------------------------------

def arp_gateway_silent() -> Scenario:
    """The gateway never ARPs in the capture (the caches were warm): the box learns its MAC from the routed
    traffic it carries, then the attacker's unasked replies claim its address and the victim's routed
    traffic switches to the attacker's MAC."""
    sc = Scenario("arp_gateway_silent", "arp_spoof", True, ATTACKER, ATTACKER_MAC)
    syn(sc, T0, VICTIM, VICTIM_MAC, "151.101.1.10", GW_MAC, 40001)
    syn(sc, T0 + 1, VICTIM, VICTIM_MAC, "208.80.154.224", GW_MAC, 40002)
    dns_exchange(sc, T0 + 2, "updates.example.net", 0x1002, [(["93.184.216.34"], None, None)],
                 client=ATTACKER, cmac=ATTACKER_MAC, sport=41000)
    for i in range(4):
        sc.add(T0 + 5 + 2 * i, arp_frame(2, ATTACKER_MAC, GW, VICTIM_MAC, VICTIM))
    syn(sc, T0 + 6, VICTIM, VICTIM_MAC, "151.101.1.10", ATTACKER_MAC, 40003)
    return sc


def arp_lease_moves() -> Scenario:
    """Twin: an address leased to one NIC is released and leased to another, which announces it."""
    sc = Scenario("arp_lease_moves", "arp_spoof", False)
    other = "3c:22:fb:77:77:77"
    sc.add(T0, arp_frame(1, VICTIM_MAC, VICTIM, "", GW))
    sc.add(T0 + 0.001, arp_frame(2, GW_MAC, GW, VICTIM_MAC, VICTIM))
    sc.add(T0 + 10, dhcp_offer(GW, GW_MAC, 0x77, other, VICTIM, GW, GW, message=5))
    sc.add(T0 + 10.1, arp_frame(1, other, VICTIM, "", VICTIM))
    sc.add(T0 + 11, arp_frame(1, other, VICTIM, "", GW))
    return sc


# ---- IPv6 neighbour discovery --------------------------------------------------------------

def ndp_router_spoofed() -> Scenario:
    """parasite6's way: the victim asks for its router, the router answers, and the attacker answers too with
    its own MAC and the Override flag (and again each time)."""
    sc = Scenario("ndp_router_spoofed", "ndp_spoof", True, ATTACKER6, ATTACKER_MAC)
    sc.add(T0, ra(GW6, GW_MAC, "2001:db8:1::/64"))
    sc.add(T0 + 1, ns(ATTACKER6, ATTACKER_MAC, GW6))
    sc.add(T0 + 1.001, na(GW6, ATTACKER6, GW_MAC, ATTACKER_MAC, GW6, GW_MAC))
    for i in range(3):
        t = T0 + 5 + 3 * i
        sc.add(t, ns(VICTIM6, VICTIM_MAC, GW6))
        sc.add(t + 0.001, na(GW6, VICTIM6, ATTACKER_MAC, VICTIM_MAC, GW6, ATTACKER_MAC))
        sc.add(t + 0.002, na(GW6, VICTIM6, GW_MAC, VICTIM_MAC, GW6, GW_MAC))
    return sc


def ndp_normal() -> Scenario:
    """Twin: hosts resolving each other and the router, the router advertising, a host's new address."""
    sc = Scenario("ndp_normal", "ndp_spoof", False)
    for i in range(3):
        t = T0 + 10 * i
        sc.add(t, ra(GW6, GW_MAC, "2001:db8:1::/64"))
        sc.add(t + 1, ns(VICTIM6, VICTIM_MAC, GW6))
        sc.add(t + 1.001, na(GW6, VICTIM6, GW_MAC, VICTIM_MAC, GW6, GW_MAC))
    sc.add(T0 + 5, na(ATTACKER6, ALL_NODES, ATTACKER_MAC, "33:33:00:00:00:01", "2001:db8:1::66", ATTACKER_MAC,
                      solicited=False))
    return sc


def rogue_router() -> Scenario:
    """fake_router6's way: a second router advertises another prefix with high preference."""
    sc = Scenario("rogue_router", "rogue_ra", True, ATTACKER6, ATTACKER_MAC)
    sc.add(T0, ra(GW6, GW_MAC, "2001:db8:1::/64"))
    sc.add(T0 + 4, ra(GW6, GW_MAC, "2001:db8:1::/64"))
    sc.add(T0 + 5, ra(ATTACKER6, ATTACKER_MAC, "2001:db8:dead::/64", preference=1))
    return sc


def router_steady() -> Scenario:
    """Twin: one router advertising the same prefix every few seconds."""
    sc = Scenario("router_steady", "rogue_ra", False)
    for i in range(6):
        sc.add(T0 + 4 * i, ra(GW6, GW_MAC, "2001:db8:1::/64"))
    return sc


# ---- DHCP -----------------------------------------------------------------------------------

def dhcp_rogue_server() -> Scenario:
    """A second server answers a DISCOVER, handing out itself as router and resolver."""
    sc = Scenario("dhcp_rogue_server", "rogue_dhcp", True, ATTACKER, ATTACKER_MAC)
    sc.add(T0, dhcp_discover(VICTIM_MAC, 0x11))
    sc.add(T0 + 0.01, dhcp_offer(GW, GW_MAC, 0x11, VICTIM_MAC, VICTIM, GW, GW))
    sc.add(T0 + 60, dhcp_discover(VICTIM_MAC, 0x12))
    sc.add(T0 + 60.004, dhcp_offer(ATTACKER, ATTACKER_MAC, 0x12, VICTIM_MAC, "192.168.1.201", ATTACKER, ATTACKER))
    sc.add(T0 + 60.01, dhcp_offer(GW, GW_MAC, 0x12, VICTIM_MAC, VICTIM, GW, GW))
    return sc


def dhcp_one_server() -> Scenario:
    """Twin: the network's server answering several clients."""
    sc = Scenario("dhcp_one_server", "rogue_dhcp", False)
    for i in range(4):
        mac = f"3c:22:fb:10:10:{i:02x}"
        sc.add(T0 + i, dhcp_discover(mac, 0x20 + i))
        sc.add(T0 + i + 0.01, dhcp_offer(GW, GW_MAC, 0x20 + i, mac, f"192.168.1.{100 + i}", GW, GW))
    return sc


# ---- NXDOMAIN rewriting -------------------------------------------------------------------

def dns_nxdomain_rewrite() -> Scenario:
    """The resolver answers names that cannot exist (a browser's random probes, typos) with its search page."""
    sc = Scenario("dns_nxdomain_rewrite", "dns_hijack", True, RESOLVER, GW_MAC)
    for i, name in enumerate(("qzkxjvbwpt", "wwww.exmaple-typo-shop.com", "xkcdqwvbzr", "mxzqpwlvkd.com")):
        dns_exchange(sc, T0 + 2 * i, name, 0x3000 + i, [(["92.242.132.24"], None, None)], ttl=60)
    return sc


def dns_nxdomain_honest() -> Scenario:
    """Twin: the same names answered NXDOMAIN, and CDN names with random-looking labels that resolve."""
    sc = Scenario("dns_nxdomain_honest", "dns_hijack", False)
    for i, name in enumerate(("qzkxjvbwpt", "wwww.exmaple-typo-shop.com")):
        q = dns_query(name, 0x3100 + i)
        r = dns.message.make_response(q)
        r.set_rcode(dns.rcode.NXDOMAIN)
        sc.add(T0 + 2 * i, udp_frame(VICTIM, RESOLVER, 53000, 53, q.to_wire(), VICTIM_MAC, GW_MAC))
        sc.add(T0 + 2 * i + 0.01, udp_frame(RESOLVER, VICTIM, 53, 53000, r.to_wire(), GW_MAC, VICTIM_MAC))
    for i, name in enumerate(("d1x2kq9vbz7w3.cloudfront.net", "a1b2c3d4e5f6.cdn.example.net")):
        dns_exchange(sc, T0 + 10 + i, name, 0x3200 + i, [([f"13.32.0.{i + 1}"], None, None)])
    return sc


# ---- SSL 2.0 ---------------------------------------------------------------------------------

def ssl2_session() -> Scenario:
    """An SSL 2.0 session: a v2-format ClientHello and the server's SSLv2 ServerHello."""
    sc = Scenario("ssl2_session", "tls_downgrade", True, "151.101.1.10", GW_MAC)
    specs = bytes.fromhex("0100800700c0030080")
    ch_body = bytes([1]) + struct.pack("!HHHH", 0x0002, len(specs), 0, 16) + specs + b"\x11" * 16
    client_hello = struct.pack("!H", 0x8000 | len(ch_body)) + ch_body
    cert = b"\x30\x82\x01\x00" + b"\x00" * 256
    sh_body = bytes([4, 0, 1]) + struct.pack("!HHHH", 0x0002, len(cert), 3, 16) + cert + bytes.fromhex("010080") + b"\x22" * 16
    server_hello = struct.pack("!H", 0x8000 | len(sh_body)) + sh_body
    c = TcpConn(sc, VICTIM, VICTIM_MAC, "151.101.1.10", GW_MAC, 50300, 443, T0 + 1)
    c.client(client_hello).server(server_hello)
    return sc


LAN_SCENARIOS = [arp_gateway_silent, arp_lease_moves, ndp_router_spoofed, ndp_normal, rogue_router, router_steady,
                 dhcp_rogue_server, dhcp_one_server, dns_nxdomain_rewrite, dns_nxdomain_honest, ssl2_session]
