"""The protocol logs of the shared captures (`capbox logs -r`, the code the
agent runs) against tshark's decoding of the same packets, field for field:
DNS query, rcode, answers, TTLs and round trip; HTTP method, host, URI, user
agent and status; TLS SNI, JA3, JA3S and certificate fingerprints; and the
community ID of every record against tshark's communityid dissector."""
import collections
import hashlib
import ipaddress
import random
import subprocess

import pytest

from agent.logs import records
from agent.logs.offline import log_file
from agent.outputs import eve
from tests.conftest import pcap
from tests.hwdrivers.test_records import nodes, tshark_packets, tshark_rr

DNS_FILES = ["zeek__wikipedia.pcap", "ndpi__1kxun.pcap", "zeek__dns-two-responses.pcap",
             "chrissanders__dns_query_nonexistent.pcapng", "ndpi__badpackets.pcap"]
HTTP_FILES = ["zeek__wikipedia.pcap", "ndpi__1kxun.pcap", "chrissanders__http_ip4and6.pcapng",
              "zeek__http_http-11-request-then-cruft.pcap"]
URI_MAX = 1023                    # the C record keeps this much of a URI
TLS_FILES = ["ndpi__1kxun.pcap", "ndpi__http_ipv6.pcap", "zeek__tls_ssl.v3.pcap", "zeek__tls_tls1_1.pcap"]


def logs(name: str, kinds) -> dict:
    out = collections.defaultdict(list)
    log_file(pcap(name), kinds, lambda kind, rec: out[kind].append(rec))
    return out


def fields(tshark: str, name: str, display: str, *names, extra=()) -> list:
    p = subprocess.run([tshark, "-n", "-r", pcap(name), *extra, "-Y", display, "-T", "fields", "-E", "separator=\t",
                        "-E", "occurrence=a", "-E", "aggregator=,", *[a for f in names for a in ("-e", f)]],
                       capture_output=True, text=True, check=True)
    return [line.split("\t") for line in p.stdout.splitlines()]


@pytest.mark.parametrize("name", DNS_FILES)
def test_dns_log_equals_tshark(name, tshark):
    ours = [r for r in logs(name, ["dns"])["dns"] if "rcode" in r]
    want = []
    for layers in tshark_packets(tshark, pcap(name), "dns.flags.response == 1 && (udp.port == 53 || tcp.port == 53)"
                                 " && !tcp.segments", "frame udp tcp dns"):
        d = layers["dns"]
        q = nodes(d.get("Queries", {}))
        answers = [tshark_rr(n, "answer") for n in nodes(d.get("Answers", {}))]
        want.append((int(d["dns.id"], 16), q[0]["dns.qry.name"] if q else "",
                     int(d["dns.flags_tree"].get("dns.flags.rcode", "0")), tuple(a[3] for a in answers),
                     tuple(float(a[2]) for a in answers), round(float(d["dns.time"]), 6) if "dns.time" in d else None))
    known = {w[:3]: w[3] for w in want}      # tshark names the rdata of some types only (None: not named)
    got = []
    for r in ours:
        k = (r["trans_id"], r["query"], r["rcode"])
        answers = tuple(None if t is None else a for a, t in zip(r["answers"], known.get(k, r["answers"])))
        got.append((*k, answers, tuple(r["TTLs"]), r.get("rtt")))
        if r.get("answers_skipped"):     # the C record keeps the first 16 records: compare those
            want = [w[:3] + (w[3][:len(answers)], w[4][:len(answers)], w[5]) if w[:3] == k else w for w in want]
    assert want and sorted(got, key=str) == sorted(want, key=str)
    for r in ours:   # the resolver is the responder: orientation follows the query
        assert r["id.resp_p"] == 53 and r["qtype_name"] == records.dns_type(r["qtype"])


@pytest.mark.parametrize("name", HTTP_FILES)
def test_http_log_equals_tshark(name, tshark):
    ours = logs(name, ["http"])["http"]
    requests = {int(f[0]): f[1:] for f in fields(tshark, name, "http.request && tcp", "frame.number",
                                                 "http.request.method", "http.host", "http.request.uri",
                                                 "http.user_agent")}
    status = {int(f[1]): int(f[0]) for f in fields(tshark, name, "http.response && tcp", "http.response.code",
                                                   "http.request_in") if f[1]}
    # a head cut by its segment's end (head_cut: the core does not reassemble TCP) has its start line only
    cut = {(r["method"], r["uri"]) for r in ours if r.get("head_cut")}
    want = [((m, None, u[:URI_MAX], None) if (m, u[:URI_MAX]) in cut else (m, h or None, u[:URI_MAX], a or None))
            + (status.get(n),) for n, (m, h, u, a) in requests.items()]
    # where tshark paired no response (its reassembly gave up on a long body), ours may have one
    theirs = {w[:4] for w in want if w[4] is None}
    got = []
    for r in ours:
        if not r.get("method"):
            continue
        head = (r["method"], r.get("host"), r["uri"], r.get("user_agent"))
        if r.get("head_cut"):      # the headers past the segment's end are missing: compare the start line
            head = (r["method"], None, r["uri"], None)
        got.append(head + (None if head in theirs else r.get("status_code"),))
    assert want and sorted(got, key=str) == sorted(want, key=str)
    assert len(cut) <= max(1, len(want) // 4)
    # responses tshark paired with no request it saw are logged too (status only)
    assert sum(1 for r in ours if "status_code" in r) >= len(status)


@pytest.mark.parametrize("name", TLS_FILES)
def test_tls_log_equals_tshark(name, tshark):
    ours = logs(name, ["tls"])["tls"]
    hellos = fields(tshark, name, "tls.handshake.type == 1 && !tcp.analysis.retransmission",
                    "tls.handshake.extensions_server_name", "tls.handshake.ja3")
    assert sorted((r.get("server_name") or "", r["ja3"]) for r in ours if "ja3" in r) == \
        sorted((sni, ja3) for sni, ja3 in hellos if ja3)       # tshark has no JA3 for an SSLv2-format hello
    assert len([r for r in ours if "client_version" in r]) == len(hellos)
    servers = fields(tshark, name, "tls.handshake.type == 2 && !tcp.analysis.retransmission", "tls.handshake.ja3s")
    assert sorted(r["ja3s"] for r in ours if "ja3s" in r) == sorted(f[0] for f in servers)
    certs = fields(tshark, name, "tls.handshake.type == 11 && !tcp.analysis.retransmission",
                   "tls.handshake.certificate")
    want = sorted([hashlib.sha256(bytes.fromhex(c.replace(":", ""))).hexdigest() for c in f[0].split(",")]
                  for f in certs)
    got = sorted(r["cert_chain_fps"] for r in ours if "cert_chain_fps" in r)
    # a chain the core saw (in the segment of the ServerHello) equals tshark's; tshark also reassembles
    # the ones that span segments or come in a later one, which the core does not
    assert all(chain in want for chain in got)
    if name == "ndpi__http_ipv6.pcap":
        assert got


@pytest.mark.parametrize("name", sorted(set(DNS_FILES + HTTP_FILES + TLS_FILES)))
def test_community_ids_equal_tshark(name, tshark):
    out = logs(name, records.TYPES)
    theirs = {}
    for src, dst, sp, dp, usp, udp, proto, cid in fields(
            tshark, name, "communityid && !icmp && !icmpv6", "ip.src", "ipv6.src", "tcp.srcport", "tcp.dstport",
            "udp.srcport", "udp.dstport", "ip.proto", "communityid", extra=("--enable-protocol", "communityid")):
        theirs[(src or dst, sp or usp)] = theirs.get((src or dst, sp or usp), set()) | {cid}
    checked = 0
    for kind, recs in out.items():
        for r in recs:
            if "community_id" not in r or "id.orig_p" not in r:
                continue
            found = theirs.get((r["id.orig_h"], str(r["id.orig_p"]))) or theirs.get((r["id.resp_h"],
                                                                                     str(r["id.resp_p"])))
            if found:
                assert r["community_id"] in found, (kind, r)
                checked += 1
    assert checked > 0


# the community-id-spec's baseline (seed 0): the same ids Zeek and Suricata write
VECTORS = [("128.232.110.120", "66.35.250.204", 6, 34855, 80, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
           ("8.8.8.8", "192.168.1.52", 17, 53, 54585, "1:d/FP5EW3wiY1vCndhwleRRKHowQ="),
           ("2001:470:e5bf:dead:4957:2174:e82c:4887", "2607:f8b0:400c:c03::1a", 6, 63943, 25,
            "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=")]


@pytest.mark.parametrize("src,dst,proto,sport,dport,cid", VECTORS)
def test_community_id_vectors(src, dst, proto, sport, dport, cid):
    from hwdrivers.flows import community_id
    assert community_id(src, dst, proto, sport, dport) == cid == community_id(dst, src, proto, dport, sport)
    assert eve.community_id(src, dst, proto, sport, dport) == cid


def test_community_id_in_c_equals_the_reference_library():
    """The C one (every log record has one) against Corelight's communityid package, over random flows."""
    import communityid
    from hwdrivers.flows import community_id
    ref = communityid.CommunityID()
    rng = random.Random(22)
    for _ in range(3000):
        v6 = rng.random() < 0.3
        addr = (lambda: str(ipaddress.IPv6Address(rng.getrandbits(128)))) if v6 else \
            (lambda: str(ipaddress.IPv4Address(rng.getrandbits(32))))
        src = addr()
        dst = addr() if rng.random() < 0.9 else src
        proto = rng.choice([6, 17, 132, 47, 50])
        sport, dport = rng.randrange(65536), rng.randrange(65536)
        if proto in communityid.PORT_PROTOS:
            want = ref.calc(communityid.FlowTuple(proto, src, dst, sport, dport))
            assert community_id(src, dst, proto, sport, dport) == want
        else:
            assert community_id(src, dst, proto) == ref.calc(communityid.FlowTuple(proto, src, dst))
    # ICMP's type/code mapping is the library's (through eve.community_id)
    assert eve.community_id("192.168.0.89", "192.168.0.1", 1, 8, 0) == "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="
