"""Tunnelled captures against tshark: the flows metered are tshark's
innermost headers (address pairs, ports, packets, bytes per flow) and carry
the tunnel ids tshark decodes (MANIFEST v26-v38)."""
import collections
import subprocess

import pytest

from agent import report
from tests.conftest import TUNNEL_PCAPS, pcap

FIELDS = ["frame.len", "frame.protocols", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "ip.id", "ip.frag_offset",
          "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport", "vlan.id"]
ID_FIELDS = {"erspan": "erspan.spanid", "vxlan": "vxlan.vni", "geneve": "geneve.vni", "gtp": "gtp.teid"}
L4 = ("tcp", "udp", "icmp", "icmpv6")


def tshark_frames(tshark: str, path: str) -> list:
    """One dict per frame: each field's every occurrence, outermost first.
    Defragmentation is off so each frame is decoded as it is."""
    fields = FIELDS + list(ID_FIELDS.values())
    cmd = [tshark, "-n", "-r", path, "-o", "ip.defragment:FALSE", "-T", "fields", "-E", "occurrence=a",
           "-E", "aggregator=;", "-E", "separator=\t"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [{f: [v for v in value.split(";") if v] for f, value in zip(fields, line.split("\t"))}
            for line in out.splitlines()]


def innermost(frame: dict):
    """(proto name, (addr, port) pair, outer fragment key or None) of the
    innermost IP header, or None for a frame without IP (ARP)."""
    layers = frame["frame.protocols"][0].split(":")
    for i, name in enumerate(layers):
        if name in ("icmp", "icmpv6"):  # ICMP quotes an IP packet: that one is not the flow
            layers = layers[:i + 1]
            break
    ips = [i for i, name in enumerate(layers) if name in ("ip", "ipv6")]
    if not ips or "eth" in layers[ips[-1]:]:  # the tunnel carries a frame that is not IP (ARP)
        return None
    at = ips[-1]
    fam = layers[at]
    nth = layers[:at + 1].count(fam) - 1
    src, dst = frame[f"{fam}.src"][nth], frame[f"{fam}.dst"][nth]
    proto = next((name for name in layers[at + 1:] if name in L4), "other")
    if proto in ("tcp", "udp"):
        k = layers.count(proto) - 1
        ends = ((src, int(frame[f"{proto}.srcport"][k])), (dst, int(frame[f"{proto}.dstport"][k])))
    else:
        ends = ((src, None), (dst, None))
    later = fam == "ip" and nth == 0 and frame["ip.frag_offset"] and int(frame["ip.frag_offset"][0]) > 0
    return proto, ends, (src, dst, frame["ip.id"][0]) if later else None, tunnel_id(frame, layers[:at + 1])


def tunnel_id(frame: dict, layers: list):
    """The id of the tunnel that carries the innermost IP header directly, if tshark names one."""
    tunnels = [i for i, name in enumerate(layers) if name in ID_FIELDS or name == "gre"]
    if not tunnels or layers[tunnels[-1]] == "gre":
        return None
    at = tunnels[-1]
    if sum(name in ("ip", "ipv6") for name in layers[at:]) != 1:  # an IP in IP inside it carries the flow
        return None
    values = frame[ID_FIELDS[layers[at]]]
    nth = layers[:at + 1].count(layers[at]) - 1
    return int(values[nth], 0) if nth < len(values) else None


def tshark_flows(tshark: str, path: str) -> dict:
    """{(proto, endpoints): [packets, bytes, tunnel ids, vlan ids]}; a later
    fragment counts in the flow its first fragment carried (and its tunnel
    id is not decoded)."""
    flows = collections.defaultdict(lambda: [0, 0, set(), set()])
    firsts = {}
    for frame in tshark_frames(tshark, path):
        inner = innermost(frame)
        if inner is None:
            continue
        proto, ends, later, ident = inner
        key = (proto, frozenset(ends))
        if later:
            key = firsts.get(later, key)
        elif frame["ip.id"] and frame["ip.frag_offset"]:
            firsts[(frame["ip.src"][0], frame["ip.dst"][0], frame["ip.id"][0])] = key
        row = flows[key]
        row[0] += 1
        row[1] += int(frame["frame.len"][0])
        if ident is not None:
            row[2].add(ident)
        row[3].update(int(v) for v in frame["vlan.id"])
    return dict(flows)


PROTOS = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6"}


def our_flows(path: str) -> dict:
    flows = collections.defaultdict(lambda: [0, 0, set(), set()])
    for f in report.flows(path, report.Options(), errors=[]):
        proto = PROTOS.get(f.proto, "other")
        ports = (f.sport, f.dport) if proto in ("tcp", "udp") else (None, None)
        row = flows[(proto, frozenset(((f.src, ports[0]), (f.dst, ports[1]))))]
        row[0] += f.total_packets
        row[1] += f.total_bytes
        if f.tunnel in ID_FIELDS:
            row[2].update(i for i, n in zip(f.tunnel_id, f.packets) if n)
        row[3].update(v for v in (f.vlan, f.vlan_inner) if v)
    return dict(flows)


@pytest.mark.parametrize("name", [p.name for p in TUNNEL_PCAPS] + ["zeek__http-qinq-0.pcap"])
def test_inner_flows_match_tshark(name, tshark):
    path = pcap(name)
    theirs, ours = tshark_flows(tshark, path), our_flows(path)
    assert agree(ours, theirs)


def agree(ours: dict, theirs: dict) -> bool:
    """The same flows with the same packets and bytes; the tunnel ids tshark
    decoded are ours, and the tags we key on are among those tshark decoded."""
    assert {k: v[:2] for k, v in ours.items()} == {k: v[:2] for k, v in theirs.items()}
    for key, row in ours.items():
        if theirs[key][2]:
            assert row[2] == theirs[key][2], key
        assert row[3] <= theirs[key][3], key
    return True


def test_every_tunnel_type_is_covered():
    seen = set()
    for p in TUNNEL_PCAPS:
        seen |= {f.tunnel for f in report.flows(str(p), report.Options(), errors=[])}
    assert seen >= {"gre", "erspan", "vxlan", "geneve", "gtp", "ipip"}


def test_no_tunnel_is_metered_by_default_and_nothing_is_malformed():
    for p in TUNNEL_PCAPS:
        r = report.analyze(str(p))
        assert r["malformed"]["total"] == 0, p.name
        assert all(f.tunnel for f in report.flows(str(p), report.Options(), errors=[])), p.name


def test_report_counts_the_packets_decapsulated():
    assert report.analyze(pcap("ndpi__vxlan.pcap"))["tunnels"] == {"vxlan": 127}
    # v32: the 40 first fragments are decapsulated; their later fragments join through the fragment cache
    assert report.analyze(pcap("zeek__gtp1_gn_normal_incl_fragmentation.pcap"))["tunnels"] == {"gtp": 72}
    assert report.analyze(pcap("zeek__http-qinq-0.pcap"))["tunnels"] == {}


def test_gtp_teid_per_direction():
    # MANIFEST v32: uplink and downlink TEIDs differ; the later fragments join the TCP flow
    (f,) = report.flows(pcap("zeek__gtp1_gn_normal_incl_fragmentation.pcap"), report.Options(), errors=[])
    assert f.tunnel == "gtp" and f.total_packets == 108
    assert f.tunnel_id == (0x8c61be36, 0x0000b2b7)
    assert (f.tunnel_src, f.tunnel_dst) == ("239.114.155.111", "63.94.149.181")
