"""The parser through Session.inject: encapsulations, IP options, fragments,
extension headers, and every malformed and truncated reason, by counters and
the flow each packet lands in."""
import pytest

from tests.hwdrivers.packets import (
    A4, A6, B4, B6, DEST_OPTS, EN10MB, ETH_ARP, ETH_IPV4, ETH_IPV6, ETH_MPLS,
    ETH_PPPOE_SESSION, ETH_QINQ, ETH_QINQ_OLD, ETH_VLAN, FRAGMENT, HOP_BY_HOP, ICMP, ICMP6, IPV4,
    IPV6, LINKTYPE_RAW, LOOP, MAC_A, MAC_B, NO_NEXT, NULL, RAW, ROUTING, SLL, SLL2, SYN, T0, TCP,
    UDP, arp, eth, ext6, flows, frag6, icmp, ipv4, ipv6, mpls, pppoe, session, sll, sll2, tag, tcp,
    udp,
)
from tests.hwdrivers.packets import null as null_header
from tests.hwdrivers.test_decap import MALFORMED as TUNNEL_MALFORMED

UDP4 = ipv4(A4, B4, UDP, udp(5000, 53, b"q" * 12))
TCP4 = ipv4(A4, B4, TCP, tcp(40000, 80, flags=SYN))
UDP6 = ipv6(A6, B6, UDP, udp(5000, 53, b"q" * 12))
TCP6 = ipv6(A6, B6, TCP, tcp(40000, 80, flags=SYN))

KEY_UDP4 = (A4, B4, 5000, 53, UDP, 4)
KEY_TCP4 = (A4, B4, 40000, 80, TCP, 4)
KEY_UDP6 = (A6, B6, 5000, 53, UDP, 6)
KEY_TCP6 = (A6, B6, 40000, 80, TCP, 6)


def nonzero(d: dict) -> dict:
    return {k: v for k, v in d.items() if v}


def inject_one(tmp_path, frame: bytes, linktype: int = EN10MB, wirelen: int = None):
    """The counters and flow records after one packet."""
    with session(tmp_path) as s:
        s.inject(frame, linktype, T0, wirelen)
        c = s.counters()
        assert c.packets == 1
        assert c.malformed + c.ip_packets + c.arp_packets + c.other_packets == 1
        return c, flows(s)


def key(r) -> tuple:
    return (r.src, r.dst, r.sport, r.dport, r.proto, r.family)


# ---- encapsulations ----------------------------------------------------------

ENCAPSULATIONS = [
    # id, linktype, frame, expected layer counts, flow key, vlan
    ("ethernet-ipv4-udp", EN10MB, eth(UDP4), {"ipv4": 1, "udp": 1}, KEY_UDP4, 0),
    ("ethernet-ipv6-tcp", EN10MB, eth(TCP6, ETH_IPV6), {"ipv6": 1, "tcp": 1}, KEY_TCP6, 0),
    # priority bits in the TCI are not part of the id
    ("802.1q", EN10MB, eth(tag(5 << 13 | 100, ETH_IPV4) + UDP4, ETH_VLAN),
     {"vlan": 1, "ipv4": 1, "udp": 1}, KEY_UDP4, 100),
    ("qinq-88a8", EN10MB, eth(tag(200, ETH_VLAN) + tag(100, ETH_IPV4) + UDP4, ETH_QINQ),
     {"vlan": 1, "ipv4": 1, "udp": 1}, KEY_UDP4, 200),
    ("qinq-9100", EN10MB, eth(tag(300, ETH_VLAN) + tag(100, ETH_IPV6) + TCP6, ETH_QINQ_OLD),
     {"vlan": 1, "ipv6": 1, "tcp": 1}, KEY_TCP6, 300),
    ("four-tags", EN10MB, eth(tag(1, ETH_VLAN) + tag(2, ETH_VLAN) + tag(3, ETH_VLAN) + tag(4, ETH_IPV4) + UDP4,
                              ETH_QINQ),
     {"vlan": 1, "ipv4": 1, "udp": 1}, KEY_UDP4, 1),
    ("mpls-1-label", EN10MB, eth(mpls(16) + UDP4, ETH_MPLS), {"mpls": 1, "ipv4": 1, "udp": 1}, KEY_UDP4, 0),
    ("mpls-3-labels", EN10MB, eth(mpls(16, 17, 18) + TCP6, ETH_MPLS), {"mpls": 1, "ipv6": 1, "tcp": 1},
     KEY_TCP6, 0),
    ("mpls-multicast", EN10MB, eth(mpls(16) + UDP4, 0x8848), {"mpls": 1, "ipv4": 1, "udp": 1}, KEY_UDP4, 0),
    ("vlan-then-mpls", EN10MB, eth(tag(7, ETH_MPLS) + mpls(16, 17) + UDP4, ETH_VLAN),
     {"vlan": 1, "mpls": 1, "ipv4": 1, "udp": 1}, KEY_UDP4, 7),
    ("mpls-pseudowire", EN10MB, eth(mpls(16, 17) + bytes(4) + eth(TCP4, src="02:00:00:00:00:01"), ETH_MPLS),
     {"mpls": 1, "ipv4": 1, "tcp": 1}, KEY_TCP4, 0),
    ("mpls-pseudowire-vlan", EN10MB,
     eth(mpls(16) + bytes(4) + eth(tag(42, ETH_IPV4) + UDP4, ETH_VLAN), ETH_MPLS),
     {"mpls": 1, "vlan": 1, "ipv4": 1, "udp": 1}, KEY_UDP4, 42),
    ("pppoe-ipv4", EN10MB, eth(pppoe(0x0021, UDP4), ETH_PPPOE_SESSION), {"pppoe": 1, "ipv4": 1, "udp": 1},
     KEY_UDP4, 0),
    ("pppoe-ipv6", EN10MB, eth(pppoe(0x0057, TCP6), ETH_PPPOE_SESSION), {"pppoe": 1, "ipv6": 1, "tcp": 1},
     KEY_TCP6, 0),
    ("vlan-pppoe", EN10MB, eth(tag(10, ETH_PPPOE_SESSION) + pppoe(0x0021, UDP4), ETH_VLAN),
     {"vlan": 1, "pppoe": 1, "ipv4": 1, "udp": 1}, KEY_UDP4, 10),
    ("sll-ipv4", SLL, sll(UDP4), {"ipv4": 1, "udp": 1}, KEY_UDP4, 0),
    ("sll-ipv6", SLL, sll(TCP6, ETH_IPV6), {"ipv6": 1, "tcp": 1}, KEY_TCP6, 0),
    ("sll-vlan", SLL, sll(tag(9, ETH_IPV4) + UDP4, ETH_VLAN), {"vlan": 1, "ipv4": 1, "udp": 1}, KEY_UDP4, 9),
    ("sll2-ipv4", SLL2, sll2(UDP4), {"ipv4": 1, "udp": 1}, KEY_UDP4, 0),
    ("sll2-ipv6", SLL2, sll2(TCP6, ETH_IPV6), {"ipv6": 1, "tcp": 1}, KEY_TCP6, 0),
    ("null-le-inet", NULL, null_header(UDP4, 2, "little"), {"ipv4": 1, "udp": 1}, KEY_UDP4, 0),
    ("null-be-inet", NULL, null_header(UDP4, 2, "big"), {"ipv4": 1, "udp": 1}, KEY_UDP4, 0),
    *[(f"null-{order}-inet6-{af}", NULL, null_header(TCP6, af, order), {"ipv6": 1, "tcp": 1}, KEY_TCP6, 0)
      for af in (10, 24, 28, 30) for order in ("little", "big")],
    ("loop-inet", LOOP, null_header(UDP4, 2, "big"), {"ipv4": 1, "udp": 1}, KEY_UDP4, 0),
    ("loop-inet6", LOOP, null_header(TCP6, 24, "big"), {"ipv6": 1, "tcp": 1}, KEY_TCP6, 0),
    ("raw12-ipv4", RAW, UDP4, {"ipv4": 1, "udp": 1}, KEY_UDP4, 0),
    ("raw12-ipv6", RAW, TCP6, {"ipv6": 1, "tcp": 1}, KEY_TCP6, 0),
    ("raw101-ipv4", LINKTYPE_RAW, TCP4, {"ipv4": 1, "tcp": 1}, KEY_TCP4, 0),
    ("raw101-ipv6", LINKTYPE_RAW, UDP6, {"ipv6": 1, "udp": 1}, KEY_UDP6, 0),
    ("ipv4-228", IPV4, UDP4, {"ipv4": 1, "udp": 1}, KEY_UDP4, 0),
    ("ipv6-229", IPV6, UDP6, {"ipv6": 1, "udp": 1}, KEY_UDP6, 0),
]


@pytest.mark.parametrize("linktype, frame, layers, flow_key, vlan",
                         [p[1:] for p in ENCAPSULATIONS], ids=[p[0] for p in ENCAPSULATIONS])
def test_encapsulation(tmp_path, linktype, frame, layers, flow_key, vlan):
    c, recs = inject_one(tmp_path, frame, linktype)
    assert (c.ip_packets, c.malformed, c.truncated) == (1, 0, 0)
    assert nonzero(c.layer_packets) == layers
    assert nonzero(c.layer_bytes) == {k: len(frame) for k in layers}
    assert [(key(r), r.vlan, r.packets, r.bytes) for r in recs] == [(flow_key, vlan, (1, 0), (len(frame), 0))]


def test_ethernet_macs_are_recorded(tmp_path):
    _, [r] = inject_one(tmp_path, eth(UDP4, src=MAC_A, dst=MAC_B))
    assert (r.src_mac, r.dst_mac) == (MAC_A, MAC_B)


@pytest.mark.parametrize("linktype, frame", [(SLL, sll(UDP4, src=MAC_A)), (SLL2, sll2(UDP4, src=MAC_A))],
                         ids=["sll", "sll2"])
def test_sll_source_address_is_the_source_mac(tmp_path, linktype, frame):
    _, [r] = inject_one(tmp_path, frame, linktype)
    assert (r.src_mac, r.dst_mac) == (MAC_A, "00:00:00:00:00:00")


def test_raw_ip_has_no_macs(tmp_path):
    _, [r] = inject_one(tmp_path, UDP4, RAW)
    assert (r.src_mac, r.dst_mac) == ("00:00:00:00:00:00",) * 2


@pytest.mark.parametrize("linktype, frame, layers", [
    (EN10MB, eth(bytes(46), 0x88CC), {"other_l3": 1}),                       # LLDP
    (EN10MB, eth(bytes(46), 0x8863), {"pppoe": 1, "other_l3": 1}),           # PPPoE discovery
    (EN10MB, eth(pppoe(0xC021, bytes(10)), ETH_PPPOE_SESSION), {"pppoe": 1, "other_l3": 1}),  # LCP
    (EN10MB, eth(mpls(16) + b"\x50" + bytes(20), ETH_MPLS), {"mpls": 1, "other_l3": 1}),
    (EN10MB, eth(tag(5, 0x88CC) + bytes(42), ETH_VLAN), {"vlan": 1, "other_l3": 1}),
    (SLL, sll(bytes(20), 0x0004), {"other_l3": 1}),
], ids=["lldp", "pppoe-discovery", "pppoe-lcp", "mpls-non-ip", "vlan-lldp", "sll-llc"])
def test_well_formed_non_ip_is_other(tmp_path, linktype, frame, layers):
    c, recs = inject_one(tmp_path, frame, linktype)
    assert (c.other_packets, c.ip_packets, c.malformed) == (1, 0, 0)
    assert nonzero(c.layer_packets) == layers
    assert recs == []


def test_arp_is_counted_and_not_metered(tmp_path):
    frame = eth(arp(1, MAC_A, A4, "00:00:00:00:00:00", B4), ETH_ARP, dst="ff:ff:ff:ff:ff:ff")
    c, recs = inject_one(tmp_path, frame)
    assert (c.arp_packets, c.ip_packets, c.malformed) == (1, 0, 0)
    assert nonzero(c.layer_packets) == {"arp": 1}
    assert recs == [] and c.flows_created == 0


@pytest.mark.parametrize("frame, layers, flow_key", [
    (eth(ipv4(A4, B4, 47, bytes(24))), {"ipv4": 1, "other_l4": 1}, (A4, B4, 0, 0, 47, 4)),
    (eth(ipv4(A4, B4, 132, bytes(12) + bytes(16))), {"ipv4": 1, "other_l4": 1}, (A4, B4, 0, 0, 132, 4)),
    (eth(ipv6(A6, B6, NO_NEXT, b""), ETH_IPV6), {"ipv6": 1, "other_l4": 1}, (A6, B6, 0, 0, NO_NEXT, 6)),
    (eth(ipv4(A4, B4, ICMP, icmp(8, 0, ident=0x1234, seq=1, payload=b"ping"))), {"ipv4": 1, "icmp": 1},
     (A4, B4, 0x1234, 0x1234, ICMP, 4)),
    (eth(ipv4(A4, B4, ICMP, icmp(3, 3, payload=bytes(28)))), {"ipv4": 1, "icmp": 1},
     (A4, B4, 0, 0x0303, ICMP, 4)),
    (eth(ipv6(A6, B6, ICMP6, icmp(128, 0, ident=7, seq=1)), ETH_IPV6), {"ipv6": 1, "icmpv6": 1},
     (A6, B6, 7, 7, ICMP6, 6)),
    (eth(ipv6(A6, B6, ICMP6, icmp(135, 0, payload=bytes(16))), ETH_IPV6), {"ipv6": 1, "icmpv6": 1},
     (A6, B6, 0, 135 << 8, ICMP6, 6)),
], ids=["gre", "sctp", "ipv6-no-next-header", "icmp-echo", "icmp-unreachable", "icmpv6-echo",
        "icmpv6-neighbour-solicitation"])
def test_other_transports(tmp_path, frame, layers, flow_key):
    c, recs = inject_one(tmp_path, frame)
    assert nonzero(c.layer_packets) == layers
    assert [key(r) for r in recs] == [flow_key]


def test_sctp_ports(tmp_path):
    _, [r] = inject_one(tmp_path, eth(ipv4(A4, B4, 132, bytes.fromhex("0b5a0b59") + bytes(24))))
    assert (r.sport, r.dport) == (2906, 2905)


# ---- IPv4 options and fragments ---------------------------------------------

@pytest.mark.parametrize("options", [b"\x94\x04\x00\x00", b"\x01" * 39 + b"\x00"], ids=["router-alert", "ihl-15"])
def test_ipv4_options_are_skipped(tmp_path, options):
    frame = eth(ipv4(A4, B4, TCP, tcp(40000, 443, flags=SYN), options=options))
    c, [r] = inject_one(tmp_path, frame)
    assert (c.malformed, c.truncated) == (0, 0)
    assert key(r) == (A4, B4, 40000, 443, TCP, 4)
    assert r.app == "tls"


def test_ipv4_fragments_share_the_flow_of_the_first(tmp_path):
    datagram = udp(5000, 6000, bytes(64))             # 72 bytes, sent as 40 + 32
    first = eth(ipv4(A4, B4, UDP, datagram[:40], ident=77, frag=0x2000))
    later = eth(ipv4(A4, B4, UDP, datagram[40:], ident=77, frag=40 // 8))
    with session(tmp_path) as s:
        s.inject(first, ts_ns=T0)
        s.inject(later, ts_ns=T0 + 1000)
        c = s.counters()
        recs = flows(s)
    assert c.frag_orphans == 0
    assert (c.truncated, c.malformed, c.ip_packets) == (0, 0, 2)
    assert nonzero(c.layer_packets) == {"ipv4": 2, "fragment": 2, "udp": 1}
    assert [(key(r), r.packets, r.bytes) for r in recs] == [
        ((A4, B4, 5000, 6000, UDP, 4), (2, 0), (len(first) + len(later), 0))]


def test_ipv4_later_fragment_without_its_first_is_an_orphan(tmp_path):
    with session(tmp_path) as s:
        s.inject(eth(ipv4(A4, B4, UDP, udp(5000, 6000, bytes(32)), ident=77, frag=0x2000)), ts_ns=T0)
        s.inject(eth(ipv4(A4, B4, UDP, bytes(32), ident=78, frag=5)), ts_ns=T0 + 1000)
        c = s.counters()
        recs = flows(s)
    assert c.frag_orphans == 1
    assert sorted((r.sport, r.dport, r.packets) for r in recs) == [(0, 0, (1, 0)), (5000, 6000, (1, 0))]


def test_ipv6_fragments_share_the_flow_of_the_first(tmp_path):
    datagram = udp(5000, 6000, bytes(64))
    first = eth(ipv6(A6, B6, FRAGMENT, frag6(UDP, 0, more=True, ident=9) + datagram[:40]), ETH_IPV6)
    later = eth(ipv6(A6, B6, FRAGMENT, frag6(UDP, 5, ident=9) + datagram[40:]), ETH_IPV6)
    orphan = eth(ipv6(A6, B6, FRAGMENT, frag6(UDP, 5, ident=10) + datagram[40:]), ETH_IPV6)
    with session(tmp_path) as s:
        for i, frame in enumerate((first, later, orphan)):
            s.inject(frame, ts_ns=T0 + i * 1000)
        c = s.counters()
        recs = flows(s)
    assert (c.frag_orphans, c.malformed, c.truncated) == (1, 0, 0)
    assert nonzero(c.layer_packets) == {"ipv6": 3, "fragment": 3, "udp": 1}
    assert [(key(r), r.packets) for r in recs] == [
        ((A6, B6, 5000, 6000, UDP, 6), (2, 0)), ((A6, B6, 0, 0, UDP, 6), (1, 0))]


AH = bytes((TCP, 4)) + bytes(2) + bytes(4) + bytes(4) + bytes(12)  # (4 + 2) * 4 = 24 bytes


@pytest.mark.parametrize("chain, proto, l4, layers", [
    (ext6(TCP), TCP, tcp(40000, 80, flags=SYN), {"tcp": 1}),
    (ext6(ROUTING) + ext6(DEST_OPTS, units=2) + ext6(UDP, units=1), UDP, udp(40000, 80, b"x"), {"udp": 1}),
    (ext6(FRAGMENT) + frag6(DEST_OPTS) + ext6(TCP), TCP, tcp(40000, 80, flags=SYN), {"tcp": 1, "fragment": 1}),
    (ext6(51) + AH, TCP, tcp(40000, 80, flags=SYN), {"tcp": 1}),
], ids=["hop-by-hop", "hbh-routing-destopts", "hbh-atomic-fragment-destopts", "hbh-ah"])
def test_ipv6_extension_headers_are_skipped(tmp_path, chain, proto, l4, layers):
    c, recs = inject_one(tmp_path, eth(ipv6(A6, B6, HOP_BY_HOP, chain + l4), ETH_IPV6))
    assert (c.malformed, c.truncated) == (0, 0)
    assert nonzero(c.layer_packets) == {"ipv6": 1, **layers}
    assert [key(r) for r in recs] == [(A6, B6, 40000, 80, proto, 6)]


# ---- malformed ---------------------------------------------------------------

def _nine_ext():
    chain = b"".join(ext6(HOP_BY_HOP) for _ in range(8)) + ext6(UDP)
    return eth(ipv6(A6, B6, HOP_BY_HOP, chain + udp(1, 2)), ETH_IPV6)


MALFORMED = [
    # id, reason, linktype, frame
    ("ethernet-short", "link", EN10MB, bytes(13)),
    ("sll-short", "link", SLL, bytes(15)),
    ("sll2-short", "link", SLL2, bytes(19)),
    ("null-short", "link", NULL, b"\x02\x00\x00"),
    ("loop-short", "link", LOOP, b"\x00\x00"),
    ("vlan-tag-cut", "vlan", EN10MB, eth(b"\x00\x64\x08", ETH_VLAN)),
    ("five-tags", "vlan", EN10MB, eth(b"".join(tag(i, ETH_VLAN) for i in range(1, 5)) + tag(5, ETH_IPV4) + UDP4,
                                      ETH_VLAN)),
    ("mpls-label-cut", "mpls", EN10MB, eth(b"\x00\x01\x0f", ETH_MPLS)),
    ("mpls-no-bottom", "mpls", EN10MB, eth(mpls(16, 17)[:4] * 2, ETH_MPLS)),
    ("mpls-17-labels", "mpls", EN10MB, eth(mpls(*range(16, 33)) + UDP4, ETH_MPLS)),
    ("mpls-nothing-after-stack", "mpls", EN10MB, eth(mpls(16), ETH_MPLS)),
    ("mpls-pseudowire-cut", "mpls", EN10MB, eth(mpls(16) + bytes(4) + bytes(13), ETH_MPLS)),
    ("pppoe-cut", "pppoe", EN10MB, eth(b"\x11\x00\x00\x01\x00", ETH_PPPOE_SESSION)),
    ("pppoe-bad-version", "pppoe", EN10MB, eth(b"\x21" + pppoe(0x0021, UDP4)[1:], ETH_PPPOE_SESSION)),
    ("pppoe-bad-code", "pppoe", EN10MB, eth(b"\x11\x09" + pppoe(0x0021, UDP4)[2:], ETH_PPPOE_SESSION)),
    ("ipv4-cut", "ipv4_header", EN10MB, eth(UDP4[:19])),
    ("ipv4-version", "ipv4_header", EN10MB, eth(ipv4(A4, B4, UDP, udp(1, 2), version=5))),
    ("ipv4-ihl-4", "ipv4_header", EN10MB, eth(ipv4(A4, B4, UDP, udp(1, 2), ihl=4))),
    ("ipv4-ihl-past-capture", "ipv4_header", EN10MB, eth(ipv4(A4, B4, UDP, b"", ihl=15))),
    ("raw-ipv4-cut", "ipv4_header", RAW, UDP4[:10]),
    ("ipv6-on-228", "ipv4_header", IPV4, UDP6),
    ("ipv4-length", "ipv4_length", EN10MB, eth(ipv4(A4, B4, UDP, udp(1, 2), total_length=19))),
    ("ipv6-cut", "ipv6_header", EN10MB, eth(UDP6[:39], ETH_IPV6)),
    ("ipv6-version", "ipv6_header", EN10MB, eth(UDP6[:40].replace(b"\x60", b"\x40", 1) + UDP6[40:], ETH_IPV6)),
    ("ipv4-on-229", "ipv6_header", IPV6, UDP4 + bytes(20)),
    ("ipv6-ext-cut", "ipv6_extension", EN10MB, eth(ipv6(A6, B6, HOP_BY_HOP, ext6(UDP)[:6]), ETH_IPV6)),
    ("ipv6-ext-length-past-packet", "ipv6_extension", EN10MB,
     eth(ipv6(A6, B6, HOP_BY_HOP, ext6(UDP, units=4)[:16] + udp(1, 2)), ETH_IPV6)),
    ("ipv6-nine-ext", "ipv6_extension", EN10MB, _nine_ext()),
    ("tcp-cut", "tcp", EN10MB, eth(ipv4(A4, B4, TCP, tcp(1, 2)[:19]))),
    ("tcp-offset-4", "tcp", EN10MB, eth(ipv4(A4, B4, TCP, tcp(1, 2, data_offset=4)))),
    ("tcp-offset-past-ip", "tcp", EN10MB, eth(ipv4(A4, B4, TCP, tcp(1, 2, data_offset=6)))),
    ("tcp6-cut", "tcp", EN10MB, eth(ipv6(A6, B6, TCP, tcp(1, 2)[:12]), ETH_IPV6)),
    ("udp-cut", "udp", EN10MB, eth(ipv4(A4, B4, UDP, udp(1, 2)[:7]))),
    ("udp-length-7", "udp", EN10MB, eth(ipv4(A4, B4, UDP, udp(1, 2, b"abc", length=7)))),
    ("icmp-cut", "icmp", EN10MB, eth(ipv4(A4, B4, ICMP, icmp(3, 1)[:3]))),
    ("icmp-echo-cut", "icmp", EN10MB, eth(ipv4(A4, B4, ICMP, icmp(8, 0, 1, 1)[:7]))),
    ("icmpv6-echo-cut", "icmp", EN10MB, eth(ipv6(A6, B6, ICMP6, icmp(129, 0, 1, 1)[:6]), ETH_IPV6)),
    ("arp-cut", "arp", EN10MB, eth(arp(1, MAC_A, A4, MAC_B, B4)[:27], ETH_ARP)),
    ("arp-hardware-type", "arp", EN10MB, eth(b"\x00\x06" + arp(1, MAC_A, A4, MAC_B, B4)[2:], ETH_ARP)),
    ("arp-ipv6-protocol", "arp", EN10MB, eth(arp(1, MAC_A, A4, MAC_B, B4)[:2] + b"\x86\xdd"
                                            + arp(1, MAC_A, A4, MAC_B, B4)[4:], ETH_ARP)),
    ("arp-lengths", "arp", EN10MB, eth(arp(1, MAC_A, A4, MAC_B, B4)[:4] + b"\x08\x04"
                                      + arp(1, MAC_A, A4, MAC_B, B4)[6:], ETH_ARP)),
    ("unknown-linktype", "linktype", 147, eth(UDP4)),
    ("empty-record", "empty_record", EN10MB, b""),
] + [(f"tunnel-{reason}", reason, EN10MB, frame) for reason, frame in TUNNEL_MALFORMED.items()]


@pytest.mark.parametrize("reason, linktype, frame", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed(tmp_path, reason, linktype, frame):
    c, recs = inject_one(tmp_path, frame, linktype)
    assert c.malformed == 1
    assert nonzero(c.malformed_by) == {reason: 1}
    assert (c.ip_packets, c.arp_packets, c.other_packets, c.truncated) == (0, 0, 0, 0)
    assert c.bytes == len(frame)
    assert recs == [] and c.flows_created == 0


def test_every_malformed_reason_is_covered(tmp_path):
    with session(tmp_path) as s:
        assert {m[1] for m in MALFORMED} == set(s.counters().malformed_by)


@pytest.mark.parametrize("linktype, frame", [
    (NULL, null_header(UDP4, 99, "little")),
    (LOOP, null_header(UDP4, 7, "big")),
], ids=["null", "loop"])
def test_unknown_address_family_is_another_protocol(tmp_path, linktype, frame):
    """A loopback header naming a family we do not parse is a well-formed frame of another protocol."""
    c, _ = inject_one(tmp_path, frame, linktype)
    assert (c.other_packets, nonzero(c.malformed_by)) == (1, {})


@pytest.mark.parametrize("frame, reason", [
    (b"", "empty_record"),
    (eth(ipv4(A4, B4, TCP, tcp(40000, 80)))[:14 + 20 + 10], "tcp"),
], ids=["empty-record", "tcp-header-cut"])
def test_malformed_by_snaplen_is_not_truncated(tmp_path, frame, reason):
    c, _ = inject_one(tmp_path, frame, wirelen=74)
    assert nonzero(c.malformed_by) == {reason: 1}
    assert (c.truncated, nonzero(c.truncated_by)) == (0, {})


# ---- truncated ---------------------------------------------------------------

def test_truncated_by_snaplen_is_metered_at_wire_length(tmp_path):
    frame = eth(ipv4(A4, B4, TCP, tcp(40000, 80, payload=bytes(1000))))
    cut = frame[:14 + 20 + 20 + 10]
    c, [r] = inject_one(tmp_path, cut, wirelen=len(frame))
    assert (c.truncated, nonzero(c.truncated_by), c.malformed) == (1, {"snaplen": 1}, 0)
    assert (c.bytes, c.captured_bytes, c.ip_packets) == (len(frame), len(cut), 1)
    assert (key(r), r.bytes) == ((A4, B4, 40000, 80, TCP, 4), (len(frame), 0))
    assert nonzero(c.layer_bytes) == {"ipv4": len(frame), "tcp": len(frame)}


@pytest.mark.parametrize("frame", [
    eth(ipv4(A4, B4, UDP, udp(5000, 53, b"q" * 12), total_length=1500)),
    eth(ipv6(A6, B6, UDP, udp(5000, 53, b"q" * 12), payload_length=1460), ETH_IPV6),
], ids=["ipv4", "ipv6"])
def test_truncated_ip_length_is_metered(tmp_path, frame):
    c, [r] = inject_one(tmp_path, frame)
    assert (c.truncated, nonzero(c.truncated_by), c.malformed) == (1, {"ip_length": 1}, 0)
    assert (r.sport, r.dport, r.bytes) == (5000, 53, (len(frame), 0))


def test_truncated_l4_length_is_metered(tmp_path):
    frame = eth(ipv4(A4, B4, UDP, udp(5000, 53, b"q" * 12, length=600)))
    c, [r] = inject_one(tmp_path, frame)
    assert (c.truncated, nonzero(c.truncated_by), c.malformed) == (1, {"l4_length": 1}, 0)
    assert (r.sport, r.dport, r.packets) == (5000, 53, (1, 0))


def test_one_packet_truncated_for_several_reasons_counts_once(tmp_path):
    frame = eth(ipv4(A4, B4, UDP, udp(5000, 53, b"q" * 12, length=1400), total_length=1500))
    c, _ = inject_one(tmp_path, frame)
    assert (c.truncated, nonzero(c.truncated_by)) == (1, {"ip_length": 1, "l4_length": 1})


def test_wire_length_below_the_captured_length_is_raised_to_it(tmp_path):
    frame = eth(UDP4)
    c, [r] = inject_one(tmp_path, frame, wirelen=20)
    assert (c.bytes, c.captured_bytes, c.truncated, r.bytes) == (len(frame), len(frame), 0, (len(frame), 0))


def test_ethernet_padding_is_not_truncation_or_payload(tmp_path):
    frame = eth(ipv4(A4, B4, TCP, tcp(40000, 80, flags=SYN))) + bytes(6)   # padded to 60 bytes
    assert len(frame) == 60
    c, [r] = inject_one(tmp_path, frame)
    assert (c.truncated, c.malformed) == (0, 0)
    assert r.bytes == (60, 0)


def test_ipv4_zero_total_length_is_taken_from_the_frame(tmp_path):
    """TSO: the stack leaves the length for the NIC to fill."""
    frame = eth(ipv4(A4, B4, UDP, udp(5000, 53, b"q" * 12), total_length=0))
    c, [r] = inject_one(tmp_path, frame)
    assert (c.truncated, c.malformed, r.sport) == (0, 0, 5000)
