"""capbox analyze / flows as a user runs them: a subprocess, its output, its exit status."""
import csv
import io
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, pcap


def capbox(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "agent", *args], cwd=ROOT, capture_output=True,
                          text=True, input=stdin, timeout=120)


def test_analyze_json_has_the_documented_keys():
    p = capbox("analyze", "--json", pcap("zeek__wikipedia.pcap"))
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    for key in ("packets", "bytes", "flows", "malformed", "duration_s", "protocols", "top_talkers"):
        assert key in r
    assert (r["packets"], r["bytes"], r["flows"]) == (136, 25260, 34)
    assert r["malformed"] == {"total": 0, "by_reason": {}}
    assert r["duration_s"] == pytest.approx(6.378866, abs=1e-6)   # MANIFEST v24
    assert r["protocols"]["applications"]["dns"]["packets"] > 0
    top = r["top_talkers"][0]
    assert top["addr"] == "141.142.220.118" and top["bytes"] == top["bytes_out"] + top["bytes_in"]
    assert len(r["top_talkers"]) == 10


def test_analyze_text_and_top():
    p = capbox("analyze", "--top", "3", pcap("ndpi__1kxun.pcap"))
    assert p.returncode == 0, p.stderr
    assert "packets     1,723" in p.stdout
    assert "flows       197" in p.stdout
    talkers = p.stdout.split("top talkers")[1].strip().splitlines()[1:]
    assert len(talkers) == 3 and talkers[0].split()[0] == "192.168.2.126"


def test_analyze_bpf():
    p = capbox("analyze", "--json", "--bpf", "tcp", pcap("ndpi__1kxun.pcap"))
    r = json.loads(p.stdout)
    assert r["flows_by_proto"] == {"tcp": 98, "udp": 0, "icmp": 0, "other": 0}
    assert r["packets"] + r["filtered_out"] == 1723
    bad = capbox("analyze", "--bpf", "tcp port", pcap("ndpi__1kxun.pcap"))
    assert bad.returncode == 1 and bad.stderr.startswith("capbox: error: bad filter")


def test_flows_csv_columns_and_values():
    p = capbox("flows", pcap("chrissanders__http_ip4and6.pcapng"))
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(io.StringIO(p.stdout)))
    assert list(rows[0])[:12] == ["src", "dst", "sport", "dport", "proto", "vlan", "packets", "bytes",
                                 "first", "last", "rtt_ms", "retransmissions"]
    v4, v6 = rows
    assert (v4["src"], v4["dst"], v4["sport"], v4["dport"], v4["proto"]) == \
        ("172.16.16.140", "172.16.16.139", "53350", "80", "tcp")
    assert v6["src"] == "2001:db8:1:2::1002" and v6["packets"] == "10"
    assert float(v4["rtt_ms"]) > 0 and v4["retransmissions"] == "0"


def test_flows_show_the_tunnel():
    # MANIFEST v37: VXLAN VNI 1111 between 192.168.22.4 and .5 carrying 10.10.20.4's traffic
    rows = [json.loads(line) for line in capbox("flows", "--json", pcap("ndpi__vxlan.pcap")).stdout.splitlines()]
    assert {r["src"] for r in rows} == {"10.10.20.4"}
    assert {(r["tunnel"], r["tunnel_src"], r["tunnel_dst"], r["tunnel_id"]) for r in rows} == \
        {("vxlan", "192.168.22.4", "192.168.22.5", 1111)}
    (row,) = csv.DictReader(io.StringIO(capbox("flows", pcap("zeek__6in4.pcap")).stdout))
    assert (row["src"], row["tunnel"], row["tunnel_src"], row["tunnel_id"]) == ("dead::beef", "ipip", "1.2.3.4", "0")


def test_flows_json_equals_csv():
    path = pcap("zeek__wikipedia.pcap")
    rows_json = [json.loads(line) for line in capbox("flows", "--json", path).stdout.splitlines()]
    rows_csv = list(csv.DictReader(io.StringIO(capbox("flows", path).stdout)))
    assert len(rows_json) == len(rows_csv) == 34
    assert [r["bytes"] for r in rows_json] == [int(r["bytes"]) for r in rows_csv]


def test_flows_from_stdin():
    with open(pcap("zeek__q-in-q.pcap"), "rb") as f:
        p = subprocess.run([sys.executable, "-m", "agent", "flows", "-"], cwd=ROOT, stdin=f,
                           capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert len(p.stdout.strip().splitlines()) == 3  # header + 2 flows


@pytest.mark.parametrize("make", ["missing", "directory", "empty", "garbage", "text"])
def test_unreadable_input_is_one_line_and_exit_1(tmp_path, make):
    target = tmp_path / "input.pcap"
    if make == "directory":
        target.mkdir()
    elif make == "empty":
        target.write_bytes(b"")
    elif make == "garbage":
        target.write_bytes(os.urandom(4096))
    elif make == "text":
        target.write_text("this is not a capture file\n" * 10)
    for cmd in ("analyze", "flows"):
        p = capbox(cmd, str(target))
        assert p.returncode == 1
        assert p.stdout == "" or cmd == "flows"
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("capbox: error: "), p.stderr
        assert "Traceback" not in p.stderr


def test_truncated_file_reports_what_came_before(tmp_path):
    src = open(pcap("zeek__wikipedia.pcap"), "rb").read()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(src[: len(src) // 2])
    p = capbox("analyze", "--json", str(cut))
    assert p.returncode == 1
    r = json.loads(p.stdout)
    assert 0 < r["packets"] < 136
    assert r["error"]["code"] == "TRUNCATED"
    assert p.stderr.count("\n") == 1 and "ends in the middle of packet" in p.stderr
    flows = capbox("flows", str(cut))
    assert flows.returncode == 1 and len(flows.stdout.splitlines()) > 1


def test_corrupt_record_is_an_error():
    p = capbox("analyze", pcap("ndpi__fuzz-2021-10-13.pcap"))
    assert p.returncode == 1 and p.stdout == ""
    assert "captured length 524501" in p.stderr


def test_usage_errors_exit_2():
    assert capbox("analyze").returncode == 2
    assert capbox("flows", "--format", "xml", "x").returncode == 2
    assert capbox("analyze", "--idle-timeout", "-3", "x").returncode == 2


def test_detect_prints_threats_as_json_lines(tmp_path):
    import json
    import subprocess
    import sys
    from tests.conftest import ROOT
    from tests.detectors.scenarios import arp_poison_gateway, dns_local_names
    path = arp_poison_gateway().write(tmp_path)
    p = subprocess.run([sys.executable, "-m", "agent", "detect", str(path), "--json"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    assert rows and {r["type"] for r in rows} == {"arp_spoof"}
    assert set(rows[0]) >= {"type", "severity", "confidence", "src", "dst", "protocol", "description", "evidence",
                            "first_seen"}
    assert rows[0]["src"] == "192.168.1.66" and rows[0]["evidence"]["attacker_mac"] == "de:ad:be:ef:66:66"
    p = subprocess.run([sys.executable, "-m", "agent", "detect", str(dns_local_names().write(tmp_path))], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout == "" and "0 threats" in p.stderr
    p = subprocess.run([sys.executable, "-m", "agent", "detect", str(tmp_path / "missing.pcap")], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and p.stderr.startswith("capbox: error:")


def test_detect_gives_one_threat_per_attacker_and_target_and_a_severity_floor(tmp_path):
    import json
    import subprocess
    import sys
    from tests.conftest import ROOT
    from tests.detectors.lan_scenarios import arp_gateway_silent, dns_nxdomain_rewrite
    path = arp_gateway_silent().write(tmp_path)
    run = lambda *a: subprocess.run([sys.executable, "-m", "agent", "detect", *a], cwd=ROOT, capture_output=True,
                                    text=True, timeout=60)
    p = run(str(path), "--json")
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    keys = [(r["type"], r["attacker_mac"], r["dst"]) for r in rows]
    assert p.returncode == 0 and len(keys) == len(set(keys)) and rows
    assert all(r["count"] >= 1 and r["last_seen"] >= r["first_seen"] for r in rows)
    nx = dns_nxdomain_rewrite().write(tmp_path)
    every = [json.loads(line) for line in run(str(nx), "--json").stdout.splitlines()]
    assert [r["count"] for r in every] == [2] and every[0]["severity"] == "high"   # the worst of its findings
    assert run(str(nx), "--json", "--min-severity", "critical").stdout == ""
    p = run(str(nx), "--min-severity", "urgent")
    assert p.returncode == 2 and "--min-severity" in p.stderr


def test_verify_dns_with_named_resolvers():
    import subprocess
    import sys
    from tests.conftest import ROOT
    from tests.loopback import DnsServer
    servers = [DnsServer(f"127.0.2.{i}", {"www.mybank.com": {"A": ["127.0.0.80"]}}) for i in (1, 2, 3)]
    liar = DnsServer("127.0.2.9", {"www.mybank.com": {"A": ["127.0.0.66"]}})
    try:
        args = [a for s in (*servers, liar) for a in ("--resolver", f"udp:{s.address}")]
        p = subprocess.run([sys.executable, "-m", "agent", "verify-dns", "www.mybank.com", *args, "--timeout", "3"],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        assert "confidence  HIGH (75% of 4 answering paths agree" in p.stdout
        assert "consensus   127.0.0.80" in p.stdout and "!! dns-udp-127.0.2.9" in p.stdout
        p = subprocess.run([sys.executable, "-m", "agent", "verify-dns", "www.mybank.com", *args, "--local",
                            "127.0.0.66"], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert p.returncode == 2 and "ATTACK DETECTED" in p.stdout
        p = subprocess.run([sys.executable, "-m", "agent", "verify", "http://www.mybank.com/"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 1 and "INSUFFICIENT_PATHS" in p.stderr
    finally:
        for s in (*servers, liar):
            s.stop()


# ---- calls and call flows ----------------------------------------------------------

FAX = "ndpi__FAX-Call-t38-CA-TDM-SIP-FB-1.pcap"
FAX_CALL = "00e9d4a500e9d48-0015-0001-0000-0000@10.35.40.25"


def test_calls_lists_each_session_and_json_has_the_streams():
    p = capbox("calls", pcap("ndpi__sip.pcap"))
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("6 SIP sessions") and "11894297-4432a9f8@192.168.1.2" in p.stdout
    assert "cancelled" in p.stdout and "rejected" in p.stdout
    j = capbox("calls", "--json", pcap(FAX))
    sessions = [json.loads(line) for line in j.stdout.splitlines()]     # JSON lines: one session each
    assert len(sessions) == 2
    call = next(s for s in sessions if s["call_id"] == FAX_CALL)
    assert call["events_count"] == 69 and call["metrics"]["setup_time_ms"] == pytest.approx(6840.9, abs=0.1)
    assert sorted(s["packets"] for s in call["streams"]) == [159, 1171]
    assert {s["ssrc"] for s in call["streams"]} == {"0x17D90134", "0x0EAF0EAF"}


def test_callflow_draws_a_ladder_and_an_svg(tmp_path):
    p = capbox("callflow", pcap(FAX), FAX_CALL[:12])
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith(f"Call-ID {FAX_CALL}  INVITE completed")
    assert "10.35.60.72:5060" in lines[3] and "10.35.60.100:5060" in lines[3]
    arrows = [x for x in lines if "INVITE" in x and ("->" in x or ">|" in x)]
    assert arrows and "0.000" in arrows[0]
    assert sum(1 for x in lines[5:] if x.strip()) == 69 + 2  # every message, and the two RTP streams
    assert any("RTP 1171" in x for x in lines)
    out = tmp_path / "flow.svg"
    s = capbox("callflow", pcap(FAX), FAX_CALL, "--svg", str(out))
    assert s.returncode == 0 and str(out) in s.stdout
    import xml.dom.minidom
    doc = xml.dom.minidom.parse(str(out))
    texts = [t.firstChild.data for t in doc.getElementsByTagName("text") if t.firstChild]
    assert sum(1 for t in texts if t.startswith("INVITE")) == 12  # of the 16 INVITEs, 4 are the other Call-ID's
    assert len(doc.getElementsByTagName("line")) >= 69


def test_calls_and_callflow_errors():
    p = capbox("calls", "/etc/hostname")
    assert p.returncode == 1 and p.stderr.startswith("capbox: error:") and not p.stdout
    q = capbox("callflow", pcap(FAX), "no-such-call")
    assert q.returncode == 1 and "no call with Call-ID" in q.stderr
    r = capbox("callflow", pcap(FAX), FAX_CALL, "--svg", "/nonexistent/dir/x.svg")
    assert r.returncode == 1 and "cannot write" in r.stderr


def test_detect_names_a_syn_flood_from_the_per_source_summaries(tmp_path):
    """6,000 SYNs at 2,000/s to one web server: Python never sees a SYN, only the C core's per-source
    summaries, and `capbox detect` names the flooding host."""
    import json
    import subprocess
    import sys
    from tests.conftest import ROOT
    from tests.detectors.scenarios import ATTACKER, ATTACKER_MAC, WEB, syn_flood_one_service
    p = subprocess.run([sys.executable, "-m", "agent", "detect", str(syn_flood_one_service().write(tmp_path)),
                        "--json"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    [row] = [json.loads(line) for line in p.stdout.splitlines()]
    assert (row["type"], row["attacker"], row["attacker_mac"], row["dst"]) == ("syn_flood", ATTACKER, ATTACKER_MAC,
                                                                                WEB)
    assert row["evidence"]["syns"] >= 1000 and row["evidence"]["ports"] <= 2 and row["severity"] in ("high",
                                                                                                       "critical")
