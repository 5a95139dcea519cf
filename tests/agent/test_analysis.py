"""Traffic windows, baselines and anomalies on the real captures: window
figures against tshark's io,stat, the anomalies MANIFEST.md promises, and
none of high severity on clean traffic."""
import json
import re
import struct
import subprocess
import sys

import pytest

from agent.analysis import anomalies, baselines
from agent.analysis import windows as offline
from agent.config import AnalysisSection
from tests.conftest import ROOT, pcap

IO_LINE = re.compile(r"^\|\s*([\d.]+)\s*<>\s*([\d.]+|Dur)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|")


def io_stat(tshark: str, path: str, interval: int) -> list:
    """(frames, bytes) per interval, as tshark -z io,stat counts them."""
    out = subprocess.run([tshark, "-r", path, "-q", "-z", f"io,stat,{interval}"], capture_output=True,
                         text=True, check=True).stdout
    return [(int(m.group(3)), int(m.group(4))) for m in map(IO_LINE.match, out.splitlines()) if m]


@pytest.mark.parametrize("name,size", [
    ("ndpi__gnutella.pcap", 10), ("ndpi__gnutella.pcap", 60), ("zeek__wikipedia.pcap", 1),
    ("evilfingers__UDP_SCAN.pcap", 1), ("ndpi__FAX-Call-t38-CA-TDM-SIP-FB-1.pcap", 10),
    ("ndpi__sip.pcap", 30), ("chrissanders__tcp_retransmissions.pcapng", 2), ("ndpi__http_ipv6.pcap", 5),
])
def test_windows_match_tshark_io_stat(tshark, name, size):
    path = pcap(name)
    ws, error = offline.compute(path, size)
    assert error is None
    theirs = io_stat(tshark, path, size)
    ours = [(w["record_count"], w["bandwidth"]["bytes"]) for w in ws]
    assert ours[:len(theirs)] == theirs
    assert all(w == (0, 0) for w in ours[len(theirs):])  # tshark stops at the last packet's interval
    assert [w["window_id"] for w in ws] == list(range(len(ws)))
    assert all(b["window_start"] == pytest.approx(a["window_end"]) for a, b in zip(ws, ws[1:]))


def endpoints(tshark: str, path: str) -> dict:
    """{ipv4 address: (tx bytes, rx bytes)} from tshark -z endpoints,ip."""
    out = subprocess.run([tshark, "-r", path, "-q", "-z", "endpoints,ip"], capture_output=True, text=True,
                         check=True).stdout
    rows = [line.split() for line in out.splitlines() if re.match(r"^\d+\.\d+\.\d+\.\d+\s", line)]
    return {r[0]: (int(r[4]), int(r[6])) for r in rows}


def test_window_contents(tshark):
    path = pcap("zeek__wikipedia.pcap")
    ws, _ = offline.compute(path, 10)
    (w,) = ws
    assert w["record_count"] == 136 and w["bandwidth"]["bytes"] == 25260
    assert w["connections"]["total"] == 34 and w["connections"]["protocols"]["tcp"] == 10
    ends = endpoints(tshark, path)
    for key, i in (("top_src_bytes", 0), ("top_dst_bytes", 1)):
        talkers = [h for h in w["bandwidth"][key] if ":" not in h["host"]]
        assert talkers and all(h["bytes"] == ends[h["host"]][i] for h in talkers)
        ranked = sorted((b[i] for b in ends.values()), reverse=True)
        assert [h["bytes"] for h in talkers] == ranked[:len(talkers)]
    assert w["latency"]["handshakes"] == 8 and 55 < w["latency"]["mean_rtt"] < 65
    assert w["protocol"]["l4"]["tcp"] + w["protocol"]["l4"]["udp"] == pytest.approx(1.0, abs=0.02)
    assert w["bandwidth"]["avg_bps"] == pytest.approx(8 * 25260 / 10)


def test_a_time_jump_is_skipped_not_filled():
    ws, _ = offline.compute(pcap("ndpi__1kxun.pcap"), 10)  # two captures six years apart
    jump = [w for w in ws if w["skipped_before"]]
    assert len(jump) == 1 and jump[0]["skipped_before"] > 10_000_000
    assert sum(w["record_count"] for w in ws) == 1723


def detect(name: str, **thresholds):
    ws, _ = offline.compute(pcap(name), 10, long_flow_s=thresholds.get("long_lived_s", 3600))
    return anomalies.detect_all(ws, AnalysisSection(**thresholds))


def test_udp_port_scan():
    found = [a for a in detect("evilfingers__UDP_SCAN.pcap") if a["type"] == "port_scan"]
    assert [(a["severity"], a["flow_src"]) for a in found] == [("high", "192.168.1.10")]
    assert found[0]["current_value"] > 500


def test_stealth_tcp_scan():
    found = [a for a in detect("ndpi__tcp_scan.pcapng") if a["type"] == "port_scan"]
    assert found and all(a["flow_src"] == "192.168.1.178" for a in found)
    assert "high" in {a["severity"] for a in found}


def test_packet_loss_names_the_flow():
    (a,) = detect("chrissanders__tcp_retransmissions.pcapng")
    assert (a["type"], a["severity"], a["flow_src"], a["flow_dst"]) == \
        ("packet_loss", "high", "10.3.30.1:1048", "10.3.71.7:1043")
    assert a["current_value"] == pytest.approx(83.33) and a["message"].endswith("(5 retrans / 6 sent)")


def test_slow_server_is_high_latency_and_the_fast_one_is_not():
    (a,) = detect("chrissanders__latency4.pcapng")
    assert a["type"] == "high_latency" and a["metric"] == "p95_response_time"
    assert a["current_value"] == pytest.approx(1031, abs=2)
    assert detect("chrissanders__latency1.pcapng") == []


def test_tls_on_the_http_port():
    (a,) = detect("zeek__tls_ssl-to-http-server.pcap")
    assert (a["type"], a["flow_src"], a["flow_dst"]) == ("protocol_anomaly", "192.168.1.108:62561",
                                                        "87.240.132.72:80")


def test_long_lived_connections():
    found = [a for a in detect("ndpi__gnutella.pcap", long_lived_s=300) if a["type"] == "long_lived_conn"]
    assert found and all(a["current_value"] >= 300 for a in found)
    assert any(a["flow_src"].startswith("10.0.2.15:") and "tcp" in a["message"] for a in found)


def test_peer_to_peer_fan_out_is_not_a_scan():
    assert not [a for a in detect("ndpi__gnutella.pcap") if a["type"] == "port_scan"]


@pytest.mark.parametrize("name", ["zeek__wikipedia.pcap", "chrissanders__http_ip4and6.pcapng",
                                  "chrissanders__latency1.pcapng", "zeek__dns-two-responses.pcap",
                                  "chrissanders__dns_query_nonexistent.pcapng", "chrissanders__arp_resolution.pcapng",
                                  "zeek__http_http-11-request-then-cruft.pcap", "ndpi__http_ipv6.pcap",
                                  "ndpi__1kxun.pcap", "ndpi__FAX-Call-t38-CA-TDM-SIP-FB-1.pcap"])
def test_clean_traffic_has_no_high_severity_anomaly(name):
    assert [a for a in detect(name) if a["severity"] == "high"] == []


def test_spike_against_a_baseline():
    calm, _ = offline.compute(pcap("zeek__wikipedia.pcap"), 1)
    base = baselines.learn(calm)
    assert base["bandwidth"]["count"] == 7 and base["bandwidth"]["max"] > 0
    busy, _ = offline.compute(pcap("ndpi__1kxun.pcap"), 1)
    found = anomalies.detect_all(busy, AnalysisSection(), base)
    spikes = [a for a in found if a["type"] == "traffic_spike"]
    assert spikes and all(a["current_value"] > a["threshold"] for a in spikes)
    assert not [a for a in anomalies.detect_all(calm, AnalysisSection(), base) if a["type"] == "traffic_spike"]


def test_protocol_mix_shift_against_a_baseline():
    web, _ = offline.compute(pcap("chrissanders__http_ip4and6.pcapng"), 1)   # all TCP
    base = baselines.learn(web)
    scan, _ = offline.compute(pcap("evilfingers__UDP_SCAN.pcap"), 10)         # all UDP and ICMP
    shifts = [a for a in anomalies.detect_all(scan, AnalysisSection(protocol_min_packets=50), base)
              if a["type"] == "protocol_anomaly" and a["metric"].startswith("l4_share")]
    assert {a["metric"] for a in shifts} == {"l4_share:tcp"} and shifts[0]["severity"] == "high"
    assert not [a for a in anomalies.detect_all(web, AnalysisSection(protocol_min_packets=1), base)
                if a["type"] == "protocol_anomaly"]


def test_baseline_figures():
    ws, _ = offline.compute(pcap("ndpi__gnutella.pcap"), 10)
    b = baselines.learn(ws)
    full = [w for w in ws if w["record_count"]]
    bps = sorted(w["bandwidth"]["avg_bps"] for w in full)
    assert b["bandwidth"]["count"] == len(full) and b["bandwidth"]["max"] == bps[-1] and b["bandwidth"]["min"] == bps[0]
    assert b["bandwidth"]["min"] <= b["bandwidth"]["median"] <= b["bandwidth"]["p95"] <= b["bandwidth"]["p99"] <= bps[-1]
    assert set(b["protocol"]["l4"]) >= {"tcp", "udp"}
    assert b["connection"]["mean"] == pytest.approx(sum(w["connections"]["total"] for w in full) / len(full))


def capbox(*args):
    return subprocess.run([sys.executable, "-m", "agent", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_cli_windows_baseline_anomalies(tmp_path):
    p = capbox("analyze", "--json", "--windows", "--window", "60", pcap("ndpi__gnutella.pcap"))
    r = json.loads(p.stdout)
    assert len(r["windows"]) == 11 and sum(w["record_count"] for w in r["windows"]) == r["packets"] == 3905
    text = capbox("analyze", "--windows", pcap("zeek__wikipedia.pcap")).stdout
    assert "p95 rtt ms" in text and "208.80.152.2" in text
    p = capbox("baseline", pcap("zeek__wikipedia.pcap"), "--window", "1", "--name", "calm", "--data-dir",
               str(tmp_path), "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["baselines"]["bandwidth"]["count"] == 7
    p = capbox("anomalies", pcap("ndpi__1kxun.pcap"), "--window", "1", "--baseline", "calm", "--data-dir",
               str(tmp_path), "--format", "json")
    r = json.loads(p.stdout)
    assert r["summary"]["by_type"].get("traffic_spike", 0) > 0 and r["baseline"] == "calm"
    csv_out = capbox("anomalies", pcap("evilfingers__UDP_SCAN.pcap"), "--format", "csv").stdout.splitlines()
    assert csv_out[0].startswith("window_id,") and ",port_scan,high," in csv_out[1]
    jl = capbox("anomalies", pcap("evilfingers__UDP_SCAN.pcap"), "--format", "jsonl").stdout.splitlines()
    assert json.loads(jl[0])["flow_src"] == "192.168.1.10"
    missing = capbox("anomalies", pcap("zeek__wikipedia.pcap"), "--baseline", "nope", "--data-dir", str(tmp_path))
    assert missing.returncode == 1 and "no baseline 'nope'" in missing.stderr


def _loss_window(segments: int, retransmissions: int) -> dict:
    return {"window_id": 1, "window_start": 0.0, "window_end": 10.0, "notable_flows": [
                {"kind": "loss", "src": "10.0.0.1", "sport": 40000, "dst": "10.0.0.2", "dport": 443,
                 "segments": segments, "retransmissions": retransmissions}]}


@pytest.mark.parametrize("segments,retransmissions,expected", [
    (1000, 50, "medium"),      # 5 %: throughput already collapses (Mathis): flagged
    (1000, 40, None),          # 4 %: not yet
    (1000, 250, "medium"),     # 25 %
    (1000, 600, "high"),       # 60 %
    (20, 2, None),             # 10 % of a tiny flow: too small a sample to flap on
    (6, 5, "high"),            # a stalled connection: most of what it sends again
    (3, 3, None),              # three tries of a tiny flow: a host away, not a lossy path
])
def test_packet_loss_flags_a_few_percent_once_the_sample_means_it(segments, retransmissions, expected):
    from agent.analysis.anomalies import Detector
    from agent.config import AnalysisSection
    found = Detector(AnalysisSection())._loss(_loss_window(segments, retransmissions))
    assert [a["severity"] for a in found] == ([expected] if expected else [])


def test_anomalies_long_lived_flag_sets_the_anomaly_threshold_too():
    """--long-lived below an hour raises long_lived_conn (it used to feed only the windows)."""
    def kinds(*extra):
        out = capbox("anomalies", pcap("ndpi__gnutella.pcap"), "--json", *extra).stdout.splitlines()
        return {json.loads(line)["type"] for line in out}
    assert "long_lived_conn" not in kinds()
    assert "long_lived_conn" in kinds("--long-lived", "300")


def _scan_window(i: int, host: str) -> dict:
    src = {"host": host, "new_flows": 3, "odd_flag_flows": 2, "rst_received": 0, "unreachable_received": 0,
           "tcp_syn_flows": 0, "ports": 3, "hosts": 1}
    return {"window_id": i, "window_start": float(i), "window_end": i + 1.0, "sources": [src]}


def test_port_scan_reports_are_forgotten_after_scan_memory():
    """A new scanning source every window (spoofed ones): each is reported, and the
    memory of past reports stays within scan_memory windows instead of growing."""
    d = anomalies.Detector(AnalysisSection())
    found = [a for i in range(2000) for a in d._scan(_scan_window(i, f"198.18.{i // 256}.{i % 256}"))]
    assert len(found) == 2000
    assert len(d.reported_scans) <= AnalysisSection().scan_memory
    # one source probing on: reported once while its report is remembered, again after
    again = [a for i in range(2000, 2000 + 3 * AnalysisSection().scan_memory)
             for a in d._scan(_scan_window(i, "198.18.200.1"))]
    assert len(again) == 3


def _lossy_pcap(path, originals: int, retransmissions: int) -> str:
    """One TCP connection sending `originals` data segments, `retransmissions` of them sent twice, each acked."""
    from tests.hwdrivers import packets as P
    a, b = "10.0.0.1", "10.0.0.2"
    frames = [P.tcp4(a, b, 40000, 443, flags=P.SYN, seq=999),
              P.tcp4(b, a, 443, 40000, flags=P.SYN | P.ACK, seq=4999, ack=1000),
              P.tcp4(a, b, 40000, 443, flags=P.ACK, seq=1000, ack=5000)]
    every = originals // retransmissions if retransmissions else 0
    for i in range(originals):
        data = P.tcp4(a, b, 40000, 443, flags=P.ACK | P.PSH, seq=1000 + 100 * i, ack=5000, payload=b"x" * 100)
        frames += [data, data] if every and i % every == every - 1 else [data]
        frames.append(P.tcp4(b, a, 443, 40000, flags=P.ACK, seq=5000, ack=1100 + 100 * i))
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, P.EN10MB))
        for i, frame in enumerate(frames):
            f.write(struct.pack("<IIII", 1_700_000_000, i * 1000, len(frame), len(frame)) + frame)
    return str(path)


@pytest.mark.parametrize("originals,retransmissions,expected", [
    (190, 10, ["medium"]),     # 5 % of 200 segments: flagged
    (192, 8, []),              # 4 %: not yet
    (18, 2, []),               # 10 % of a tiny flow: too small a sample to flap on
])
def test_capbox_anomalies_flags_a_connection_losing_five_percent(tmp_path, originals, retransmissions, expected):
    """The packet-loss defect as a user meets it: `capbox anomalies` on a capture of one connection."""
    out = capbox("anomalies", _lossy_pcap(tmp_path / "lossy.pcap", originals, retransmissions), "--json")
    assert out.returncode == 0, out.stderr
    found = [json.loads(line) for line in out.stdout.splitlines()]
    assert [a["severity"] for a in found if a["type"] == "packet_loss"] == expected
    if expected:
        assert found[0]["flow_src"] == "10.0.0.1:40000" and found[0]["message"].endswith("(10 retrans / 200 sent)")
