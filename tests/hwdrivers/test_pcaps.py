"""Every real capture in ../shared/pcaps against tshark on the same file:
packet and byte totals, TCP and UDP conversation counts, and the frames of
each conversation."""
import collections
import re
import subprocess

import pytest

from agent import report
from hwdrivers import ErrorCode
from tests.conftest import ALL_PCAPS, TUNNEL_PCAPS, pcap

CORRUPT = {"ndpi__fuzz-2021-10-13.pcap"}  # MANIFEST v22: a record longer than any snaplen
# tshark opens a new UDP conversation on a 5-tuple when SDP or MEGACO signalling
# sets up media on it; the 5-tuples themselves are what a flow meter counts.
TSHARK_SPLITS_UDP = {"ndpi__FAX-Call-t38-CA-TDM-SIP-FB-1.pcap"}

CONV_LINE = re.compile(
    r"^(\S+)\s+<->\s+(\S+)\s+(\d+)\s+\d+\s+\S+\s+(\d+)\s+\d+\s+\S+\s+(\d+)\s+\d+\s+\S+\s+\S+\s+\S+\s*$")


def conversations(tshark: str, path: str, proto: str) -> list:
    """[(endpoint, endpoint), total frames] per row of `tshark -q -z conv,PROTO`."""
    out = subprocess.run([tshark, "-n", "-r", path, "-q", "-z", f"conv,{proto}"],
                         capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        m = CONV_LINE.match(line)
        if m:
            rows.append((tuple(sorted((m.group(1), m.group(2)))), int(m.group(5))))
    assert out.count("<->") == len(rows), f"unparsed tshark lines in:\n{out}"
    return rows


def endpoint(addr: str, port: int) -> str:
    return f"{addr}:{port}"  # as tshark prints them, IPv6 without brackets


def our_flows(path: str) -> list:
    return list(report.flows(path, report.Options(), errors=[]))


def capinfos(path: str) -> tuple:
    """(packets, bytes) as Wireshark's capinfos counts them (bytes: wire lengths)."""
    out = subprocess.run(["capinfos", "-M", "-T", "-r", "-c", "-d", path],
                         capture_output=True, text=True, check=True).stdout.strip().split("\t")
    return int(out[1]), int(out[2])


def names():
    return [p.name for p in ALL_PCAPS if p.name not in CORRUPT]


@pytest.mark.parametrize("name", names() + [p.name for p in TUNNEL_PCAPS])
def test_totals_match_capinfos(name, tshark):
    path = pcap(name)
    r = report.analyze(path)
    assert r["error"] is None
    assert (r["packets"], r["bytes"]) == capinfos(path)


@pytest.mark.parametrize("proto,number", [("tcp", 6), ("udp", 17)])
@pytest.mark.parametrize("name", names())
def test_conversations_match_tshark(name, proto, number, tshark):
    path = pcap(name)
    ours = [f for f in our_flows(path) if f.proto == number]
    theirs = conversations(tshark, path, proto)
    if proto == "udp" and name in TSHARK_SPLITS_UDP:
        merged = collections.Counter()
        for key, frames in theirs:
            merged[key] += frames
        theirs = list(merged.items())
        assert len(theirs) < len(conversations(tshark, path, proto))
    assert len(ours) == len(theirs)
    # the same conversations, each with the same number of frames
    mine = sorted((tuple(sorted((endpoint(f.src, f.sport), endpoint(f.dst, f.dport)))), f.total_packets)
                  for f in ours)
    assert mine == sorted(theirs)


def test_flow_counts_in_report_match_flow_rows():
    path = pcap("ndpi__1kxun.pcap")
    r = report.analyze(path)
    rows = our_flows(path)
    assert r["flows"] == len(rows) == 197
    assert r["flows_by_proto"]["tcp"] == sum(1 for f in rows if f.proto == 6) == 98
    assert sum(f.total_packets for f in rows) == r["packets"]
    assert sum(f.total_bytes for f in rows) == r["bytes"]


def test_vlan_and_mpls_keys():
    rows = our_flows(pcap("zeek__mixed-vlan-mpls.pcap"))
    assert sorted(f.vlan for f in rows) == [0, 0, 4093]
    r = report.analyze(pcap("zeek__mixed-vlan-mpls.pcap"))
    assert r["protocols"]["layers"]["mpls"]["packets"] == 11
    assert r["protocols"]["layers"]["vlan"]["packets"] == 14
    qinq = our_flows(pcap("zeek__q-in-q.pcap"))
    assert {f.vlan for f in qinq} == {13}


def test_handshake_rtt_from_latency_captures():
    # MANIFEST v14/v15: SYN -> SYN/ACK 30.1 ms and 18.6 ms; ours is SYN -> ACK of the handshake
    (fast,) = our_flows(pcap("chrissanders__latency1.pcapng"))
    (slow,) = our_flows(pcap("chrissanders__latency4.pcapng"))
    assert fast.syn_synack_ns == pytest.approx(30.1e6, rel=0.01)
    assert slow.syn_synack_ns == pytest.approx(18.6e6, rel=0.01)
    assert fast.rtt_ns >= fast.syn_synack_ns and slow.rtt_ns >= slow.syn_synack_ns
    assert fast.state == slow.state == "established"  # six packets, no FIN


def test_retransmissions_from_real_captures():
    (rto,) = our_flows(pcap("chrissanders__tcp_retransmissions.pcapng"))
    assert rto.total_packets == 6 and sum(rto.retransmissions) == 5   # MANIFEST v12
    (dup,) = our_flows(pcap("chrissanders__tcp_dupack.pcapng"))
    assert sum(dup.retransmissions) == 1                               # MANIFEST v13


def test_truncated_packets_are_metered_and_counted():
    # MANIFEST v23: first fragments whose IP length runs past the frame; 7 cut by snaplen
    r = report.analyze(pcap("ndpi__badpackets.pcap"))
    assert r["packets"] == 93 and r["flows_by_proto"]["udp"] == 93
    assert r["truncated"]["by_reason"]["ip_length"] == 93
    assert r["truncated"]["by_reason"]["snaplen"] == 7
    assert r["malformed"]["total"] == 0


def test_corrupt_file_is_an_error():
    r = report.analyze(pcap("ndpi__fuzz-2021-10-13.pcap"))
    assert r["packets"] == 0
    assert r["error"]["code"] == ErrorCode.FORMAT.name
    assert "524501" in r["error"]["message"]


def test_bpf_filter_matches_tshark(tshark):
    path = pcap("zeek__wikipedia.pcap")
    r = report.analyze(path, report.Options(bpf="udp"))
    n = subprocess.run([tshark, "-r", path, "-Y", "udp and not icmp", "-T", "fields", "-e", "frame.number"],
                       capture_output=True, text=True, check=True)
    assert r["packets"] == len(n.stdout.split())
    assert r["filtered_out"] == 136 - r["packets"]


def test_pcapng_read_through_libpcap_equals_pcap(tmp_path):
    src = pcap("zeek__wikipedia.pcap")
    ng = tmp_path / "w.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", src, str(ng)], check=True)
    a, b = report.analyze(src), report.analyze(str(ng))
    for key in ("packets", "bytes", "flows", "protocols", "top_talkers"):
        assert a[key] == b[key]
