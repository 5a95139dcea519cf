"""Decapsulation on synthetic captures: each tunnel type and nestings of
them written to a pcap by a fixture, metered on the innermost headers and
checked against tshark; settings (ports, types off, depth, the outer flow)
and malformed tunnels counted by reason."""
import struct

import pytest

from agent import report
from hwdrivers import CaptureConfig, CaptureError, Session, Tunnels
from tests.hwdrivers import packets as P
from tests.hwdrivers.test_tunnels import agree, our_flows, tshark_flows

OUT4, IN4 = ("192.0.2.1", "192.0.2.2"), ("10.1.0.1", "10.1.0.2")
OUT6 = ("2001:db8:ffff::1", "2001:db8:ffff::2")
IN6 = ("2001:db8:1::1", "2001:db8:1::2")


def inner_tcp(sport=40000, flags=P.ACK, payload=b"hello"):
    return P.ipv4(IN4[0], IN4[1], P.TCP, P.tcp(sport, 80, flags=flags, payload=payload))


def inner_reply(sport=40000):
    return P.ipv4(IN4[1], IN4[0], P.TCP, P.tcp(80, sport, flags=P.SYN | P.ACK, ack=1001))


def inner_eth(ip: bytes, ethertype=P.ETH_IPV4) -> bytes:
    return P.eth(ip, ethertype, "02:00:00:00:01:01", "02:00:00:00:01:02")


def over4(proto: int, payload: bytes, src=OUT4[0], dst=OUT4[1]) -> bytes:
    return P.eth(P.ipv4(src, dst, proto, payload))


def over_udp(dport: int, payload: bytes, sport=50000) -> bytes:
    return over4(P.UDP, P.udp(sport, dport, payload))


# name: (frames of one tunnel carrying one TCP conversation, tunnel type, id)
CASES = {
    "gre_ipv4": (lambda ip: over4(P.GRE, P.gre(P.ETH_IPV4, ip)), "gre", 0),
    "gre_key_seq_csum": (lambda ip: over4(P.GRE, P.gre(P.ETH_IPV4, ip, key=77, seq=5, csum=True)), "gre", 77),
    "gre_teb": (lambda ip: over4(P.GRE, P.gre(P.ETH_TEB, inner_eth(ip), key=9)), "gre", 9),
    "gre_ipv6_outer": (lambda ip: P.eth(P.ipv6(*OUT6, P.GRE, P.gre(P.ETH_IPV4, ip)), P.ETH_IPV6), "gre", 0),
    "erspan1": (lambda ip: over4(P.GRE, P.gre(P.ETH_ERSPAN, inner_eth(ip))), "erspan", 0),
    "erspan2": (lambda ip: over4(P.GRE, P.gre(P.ETH_ERSPAN, P.erspan2(100, inner_eth(ip)), seq=1)), "erspan", 100),
    "erspan3": (lambda ip: over4(P.GRE, P.gre(P.ETH_ERSPAN3, P.erspan3(7, inner_eth(ip)), seq=1)), "erspan", 7),
    "erspan3_platform": (lambda ip: over4(P.GRE, P.gre(P.ETH_ERSPAN3, P.erspan3(8, inner_eth(ip), platform=True),
                                                        seq=1)), "erspan", 8),
    "vxlan": (lambda ip: over_udp(4789, P.vxlan(1111, inner_eth(ip))), "vxlan", 1111),
    "geneve_options": (lambda ip: over_udp(6081, P.geneve(4242, inner_eth(ip), options=bytes(8))), "geneve", 4242),
    "gtp": (lambda ip: over_udp(2152, P.gtp(0xABCDEF01, ip), sport=2152), "gtp", 0xABCDEF01),
    "gtp_extension": (lambda ip: over_udp(2152, P.gtp(0x1234, ip, ext=bytes((1, 0x10, 0, 0))), sport=2152),
                      "gtp", 0x1234),
    "ip4in4": (lambda ip: over4(P.IPIP, ip), "ipip", 0),
    "ip4in6": (lambda ip: P.eth(P.ipv6(*OUT6, P.IPIP, ip), P.ETH_IPV6), "ipip", 0),
    # nestings: VXLAN inside ERSPAN II, GTP inside GRE, IP in IP inside Geneve
    "vxlan_in_erspan": (lambda ip: over4(P.GRE, P.gre(P.ETH_ERSPAN, P.erspan2(3, inner_eth(
        P.ipv4("172.16.0.1", "172.16.0.2", P.UDP, P.udp(50000, 4789, P.vxlan(55, inner_eth(ip)))))), seq=1)),
        "vxlan", 55),
    "gtp_in_gre": (lambda ip: over4(P.GRE, P.gre(P.ETH_IPV4, P.ipv4("172.16.0.1", "172.16.0.2", P.UDP,
                                                                   P.udp(2152, 2152, P.gtp(66, ip))))), "gtp", 66),
    "ipip_in_geneve": (lambda ip: over_udp(6081, P.geneve(5, P.ipv4("172.16.0.1", "172.16.0.2", P.IPIP, ip),
                                                          proto=P.ETH_IPV4)), "ipip", 0),
}


def write_pcap(path, frames) -> str:
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, P.EN10MB))
        for i, frame in enumerate(frames):
            f.write(struct.pack("<IIII", 1_700_000_000 + i, 0, len(frame), len(frame)) + frame)
    return str(path)


def conversation(wrap, inner6=False) -> list:
    if inner6:
        fwd = P.ipv6(IN6[0], IN6[1], P.UDP, P.udp(5000, 53, b"query"))
        rev = P.ipv6(IN6[1], IN6[0], P.UDP, P.udp(53, 5000, b"answer!"))
        return [wrap(fwd), wrap(rev)]
    return [wrap(inner_tcp(flags=P.SYN, payload=b"")), wrap(inner_reply()), wrap(inner_tcp(payload=b""))]


@pytest.fixture(scope="module")
def tunnel_pcaps(tmp_path_factory):
    """One capture per case, and one of every case together."""
    d = tmp_path_factory.mktemp("tunnels")
    out = {name: write_pcap(d / f"{name}.pcap", conversation(wrap)) for name, (wrap, _, _) in CASES.items()}
    out["ip6in4"] = write_pcap(d / "ip6in4.pcap", conversation(lambda ip: over4(P.IPV6_IN_IP, ip), inner6=True))
    out["ip6in6"] = write_pcap(d / "ip6in6.pcap", conversation(
        lambda ip: P.eth(P.ipv6(*OUT6, P.IPV6_IN_IP, ip), P.ETH_IPV6), inner6=True))
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_each_tunnel_meters_the_inner_conversation(name, tunnel_pcaps, tshark):
    _, kind, ident = CASES[name]
    (f,) = report.flows(tunnel_pcaps[name], report.Options(), errors=[])
    assert (f.src, f.dst, f.sport, f.dport, f.proto) == (IN4[0], IN4[1], 40000, 80, P.TCP)
    assert f.packets == (2, 1) and f.state == "established"
    assert f.tunnel == kind and f.tunnel_id == (ident, ident)
    assert agree(our_flows(tunnel_pcaps[name]), tshark_flows(tshark, tunnel_pcaps[name]))


@pytest.mark.parametrize("name", ["ip6in4", "ip6in6"])
def test_ipv6_inside(name, tunnel_pcaps, tshark):
    (f,) = report.flows(tunnel_pcaps[name], report.Options(), errors=[])
    assert (f.src, f.dst, f.sport, f.dport, f.family, f.tunnel) == (IN6[0], IN6[1], 5000, 53, 6, "ipip")
    assert f.tunnel_src in (OUT4[0], OUT6[0])
    assert agree(our_flows(tunnel_pcaps[name]), tshark_flows(tshark, tunnel_pcaps[name]))


def test_tunnel_addresses_are_the_carrier_of_the_flow(tunnel_pcaps):
    (f,) = report.flows(tunnel_pcaps["vxlan_in_erspan"], report.Options(), errors=[])
    assert (f.tunnel_src, f.tunnel_dst) == ("172.16.0.1", "172.16.0.2")  # the VXLAN's, not the ERSPAN's


def run(path: str, tunnels: Tunnels = Tunnels()) -> tuple:
    with Session(CaptureConfig(path, flow_ring=4096, tunnels=tunnels, idle_timeout_s=0)) as s:
        while s.run().name != "EOF":
            pass
        s.flush()
        return sorted(s.read_flows(), key=lambda r: r.id), s.counters()


def test_types_switched_off_are_metered_whole(tunnel_pcaps):
    flows, _ = run(tunnel_pcaps["vxlan"], Tunnels(off=("vxlan",)))
    assert [(f.src, f.dport, f.proto, f.tunnel) for f in flows] == [(OUT4[0], 4789, P.UDP, "")]
    flows, _ = run(tunnel_pcaps["erspan2"], Tunnels(off=("erspan",)))
    assert [(f.src, f.proto) for f in flows] == [(OUT4[0], P.GRE)]
    flows, _ = run(tunnel_pcaps["ip4in4"], Tunnels(depth=0))
    assert [(f.src, f.proto) for f in flows] == [(OUT4[0], P.IPIP)]


def test_configured_vxlan_port(tmp_path):
    path = write_pcap(tmp_path / "8472.pcap", conversation(lambda ip: over_udp(8472, P.vxlan(9, inner_eth(ip)))))
    (f,), _ = run(path)
    assert f.proto == P.UDP and f.dport == 8472
    (f,), _ = run(path, Tunnels(vxlan_ports=("4789", "8472")))
    assert (f.src, f.dport, f.tunnel, f.tunnel_id) == (IN4[0], 80, "vxlan", (9, 9))


def test_outer_flow_metered_when_asked(tunnel_pcaps):
    flows, _ = run(tunnel_pcaps["gre_ipv4"], Tunnels(meter_outer=True))
    assert sorted((f.src, f.proto, f.total_packets) for f in flows) == [(IN4[0], P.TCP, 3), (OUT4[0], P.GRE, 3)]


def test_bad_settings_are_refused(tmp_path):
    path = write_pcap(tmp_path / "x.pcap", [])
    for bad in (Tunnels(off=("mpls",)), Tunnels(depth=9), Tunnels(gtp_ports=("0",)),
                Tunnels(vxlan_ports=("1", "2", "3", "4", "5"))):
        with pytest.raises(CaptureError):
            Session(CaptureConfig(path, tunnels=bad))


def nest(depth: int) -> bytes:
    ip = inner_tcp()
    for _ in range(depth):
        ip = P.ipv4("172.16.0.1", "172.16.0.2", P.IPIP, ip)
    return P.eth(ip)


MALFORMED = {
    "gre": over4(P.GRE, P.gre(P.ETH_IPV4, inner_tcp(), flags=0x4000)),       # routing present
    "erspan": over4(P.GRE, P.gre(P.ETH_ERSPAN, P.erspan2(1, b"", version=3), seq=1)),
    "vxlan": over_udp(4789, P.vxlan(1, b"")[:6]),                               # header cut short
    "geneve": over_udp(6081, P.geneve(1, b"", options=bytes(8))[:8]),          # options cut short
    "gtp": over_udp(2152, P.gtp(1, inner_tcp(), ext=bytes((0, 0, 0, 0)))),     # an extension of length 0
    "tunnel_depth": nest(5),
}


@pytest.mark.parametrize("reason", list(MALFORMED))
def test_malformed_tunnels_counted_by_reason(reason, tmp_path):
    frame = MALFORMED[reason]
    # and the same tunnel header cut short by the capture (past the outer headers)
    cut = frame[:14 + 20 + {"gre": 2, "gtp": 8 + 4}[reason]] if reason in ("gre", "gtp") else frame
    path = write_pcap(tmp_path / "bad.pcap", [frame, cut])
    flows, c = run(path)
    assert flows == [] and c.malformed == 2
    assert c.malformed_by[reason] == 2


def test_other_traffic_on_a_tunnel_port_is_metered_as_it_is(tmp_path):
    """A port is a hint: a payload without the tunnel header's fixed bits is some other UDP."""
    frames = [over_udp(4789, bytes(range(64))), over_udp(6081, b"\x80" + bytes(63)),
              over_udp(2152, P.gtp(1, inner_tcp(), version=2)), over_udp(4789, P.vxlan(1, inner_eth(inner_tcp()),
                                                                                      flags=0))]
    flows, c = run(write_pcap(tmp_path / "ports.pcap", frames))
    assert sorted(f.dport for f in flows) == [2152, 4789, 6081] and c.malformed == 0
    assert all(f.tunnel == "" and f.src == OUT4[0] for f in flows)


def test_depth_limit_is_a_setting(tmp_path):
    path = write_pcap(tmp_path / "deep.pcap", [nest(4), nest(5)])
    flows, c = run(path)
    assert [(f.src, f.total_packets) for f in flows] == [(IN4[0], 1)] and c.malformed_by["tunnel_depth"] == 1
    flows, c = run(path, Tunnels(depth=5))
    assert [(f.src, f.total_packets) for f in flows] == [(IN4[0], 2)] and c.malformed == 0


def test_qinq_inner_tag_is_in_the_key(tmp_path):
    def qinq(outer, inner):
        return P.eth(P.tag(outer, P.ETH_VLAN) + P.tag(inner, P.ETH_IPV4) + inner_tcp(), P.ETH_QINQ)
    path = write_pcap(tmp_path / "qinq.pcap", [qinq(10, 20), qinq(10, 21), qinq(10, 20)])
    flows, _ = run(path)
    assert [(f.vlan, f.vlan_inner, f.total_packets) for f in flows] == [(10, 20, 2), (10, 21, 1)]
    assert flows[0].as_dict()["vlan_inner"] == 20
