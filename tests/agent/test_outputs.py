"""EVE JSON lines and syslog: the agent replays a capture with a real attack
in it, and a real rsyslogd receives the alert over UDP, TCP (octet
counting) and TLS; the EVE file holds the same records."""
import json
import os
import re
import shutil
import stat
import subprocess

import pytest

from agent.config import ConfigError, load
from agent.outputs import eve, syslog
from agent.outputs.evefile import EveFile
from tests.agent.conftest import wait_for
from tests.conftest import pcap
from tests.rsyslog import rsyslog  # noqa: F401 (fixture)

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
SURICATA_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+0000$")


def test_community_id_matches_the_reference_vectors():
    # the Community ID spec's baseline vectors (seed 0, base64)
    assert eve.community_id("128.232.110.120", "66.35.250.204", 6, 34855, 80) == "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
    assert eve.community_id("66.35.250.204", "128.232.110.120", 6, 80, 34855) == "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
    assert eve.community_id("not-an-ip", "10.0.0.1", 6, 1, 2) is None


def test_rfc5424_message_escapes_structured_data_and_drops_spaces_from_header_fields():
    msg = syslog.format_message("{}", facility=21, severity=3, timestamp="2026-01-01T00:00:00.000001Z",
                                hostname="my box", app="capbox", procid="7", msgid="alert",
                                params={"a": 'x"y]z\\', "empty": "", "none": None})
    assert msg == b'<171>1 2026-01-01T00:00:00.000001Z mybox capbox 7 alert [capbox@32473 a="x\\"y\\]z\\\\"] {}'
    assert syslog.format_message("{}", facility=1, severity=6, timestamp="t", hostname="", app="a", procid="1",
                                 msgid="m", params={}).startswith(b"<14>1 t - a 1 m - ")


@pytest.mark.parametrize("url,target", [
    ("udp://10.0.0.1", ("udp", "10.0.0.1", 514)), ("tcp://logs.example:1601", ("tcp", "logs.example", 1601)),
    ("tls://[2001:db8::1]:6514", ("tls", "2001:db8::1", 6514)), ("tls://h", ("tls", "h", 6514)),
    ("udp://2001:db8::1", ("udp", "2001:db8::1", 514))])
def test_syslog_targets_parse(url, target):
    t = syslog.parse_target(url)
    assert (t.scheme, t.host, t.port) == target
    assert syslog.parse_target(t.url) == t


@pytest.mark.parametrize("section", [{"syslog": ["http://x:1"]}, {"syslog": ["tcp://x:70000"]},
                                     {"file_types": ["alert", "bogus"]}, {"syslog_facility": "local9"}])
def test_bad_output_settings_stop_the_start_naming_the_key(section):
    with pytest.raises(ConfigError) as e:
        load(env={}, overrides={"eve": section})
    assert str(e.value).startswith("eve.")


def test_eve_http_without_its_protocol_log_stops_the_start():
    with pytest.raises(ConfigError) as e:
        load(env={}, overrides={"eve": {"file_types": ["http"]}, "logs": {"types": ["dns"]}})
    assert str(e.value).startswith("eve.file_types") and "[logs] types" in str(e.value)
    load(env={}, overrides={"eve": {"file_types": ["http", "tls"]}})


def test_eve_file_rotates_by_size_and_keeps_its_modes(tmp_path):
    f = EveFile(tmp_path / "out" / "eve.json", rotate_bytes=1000, keep=2)
    for i in range(100):
        f.write({"event_type": "alert", "n": i, "pad": "x" * 40})
    f.close()
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["eve.json", "eve.json.1", "eve.json.2"]
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in (tmp_path / "out").iterdir())
    last = [json.loads(line)["n"] for line in (tmp_path / "out" / "eve.json").read_text().splitlines()]
    assert last[-1] == 99 and f.rotations >= 2


def test_eve_file_rotates_at_its_size_counting_what_an_earlier_run_wrote(tmp_path):
    """Each rotated file holds rotate_bytes and at most one line more, multi-byte characters counted as bytes,
    and a file reopened after a restart goes on from the size it has."""
    path, line = tmp_path / "eve.json", {"name": "caf\u00e9 \u2603", "pad": "x" * 50}
    size = len(json.dumps(line, separators=(",", ":")).encode()) + 1
    f = EveFile(path, rotate_bytes=1000, keep=5)
    for _ in range(10):
        f.write(line)
    f.close()
    f = EveFile(path, rotate_bytes=1000, keep=5)       # a restart: 10 lines are there already
    for _ in range(40):
        f.write(line)
    f.close()
    rotated = list(tmp_path.glob("eve.json.*"))
    assert len(rotated) == 4 and all(1000 <= p.stat().st_size < 1000 + size for p in rotated)
    assert path.stat().st_size == 50 * size - sum(p.stat().st_size for p in rotated)


def test_a_replayed_attack_reaches_rsyslog_over_udp_tcp_and_tls_as_eve_json(make_agent, rsyslog, tmp_path):
    data = tmp_path / "var"
    (data / "pcaps").mkdir(parents=True)
    capture = shutil.copy(pcap("zeek__tls_ssl.v3.pcap"), data / "pcaps")
    urls = json.dumps([rsyslog.url(k) for k in ("udp", "tcp", "tls")])
    a = make_agent(f'[capture]\nsource = "{capture}"\npace = 0\nloop = false\n'
                   f'[eve]\nfile = "eve.json"\nfile_types = ["alert", "flow"]\nsyslog = {urls}\n'
                   f'syslog_types = ["alert"]\nsyslog_ca = "{rsyslog.ca}"\nsyslog_facility = "local5"\n')
    for kind in ("udp", "tcp", "tls"):
        wait_for(lambda: rsyslog.lines(kind), timeout=30)
    threat = a.client.get("/v1/threats")["threats"][0]
    assert threat["attack_type"] == "tls_downgrade"
    for kind in ("udp", "tcp", "tls"):
        lines = rsyslog.lines(kind)
        assert len(lines) == 1, (kind, lines)
        line = lines[0]
        assert line["pri"] == str(21 * 8 + 3)                 # local5, err: a high threat
        assert RFC3339.match(line["timestamp"]) and line["timestamp"].startswith("2007-02-05T23:")
        assert (line["app"], line["procid"], line["msgid"]) == ("capbox", str(a.proc.pid), "alert")
        sd = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', line["sd"]))
        assert line["sd"].startswith("[capbox@32473 ")
        assert sd["category"] == "tls_downgrade" and sd["severity"] == threat["severity"] == "high"
        assert sd["threat_id"] == threat["id"] and sd["attacker"] == threat["attacker"]
        rec = json.loads(line["msg"])
        assert rec["event_type"] == "alert" and SURICATA_TS.match(rec["timestamp"])
        assert (rec["src_ip"], rec["dest_ip"]) == (threat["source_ip"], threat["dest_ip"])
        assert rec["alert"]["signature_id"] == eve.signature_id("tls_downgrade")
        assert rec["alert"]["severity"] == 1 and rec["alert"]["category"] == "tls_downgrade"
        assert rec["alert"]["metadata"]["threat_id"] == [threat["id"]]
    records = wait_for(lambda: _eve_lines(data / "eve.json", want_flows=True), timeout=30)
    alerts = [r for r in records if r["event_type"] == "alert"]
    assert alerts == [json.loads(rsyslog.lines("tls")[0]["msg"])]
    flows = [r for r in records if r["event_type"] == "flow"]
    assert {(f["src_ip"], f["dest_ip"], f["dest_port"], f["proto"]) for f in flows} >= {
        ("192.150.187.164", "194.127.84.106", 443, "TCP")}
    assert all(f["community_id"].startswith("1:") and f["flow"]["pkts_toserver"] >= 1 for f in flows)
    assert stat.S_IMODE(os.stat(data / "eve.json").st_mode) == 0o600
    health = a.client.get("/v1/health")["components"]["eve"]
    assert [s["sent"] for s in health["syslog"]] == [1, 1, 1] and health["syslog_dropped"] == 0


def _eve_lines(path, want_flows=False):
    if not path.exists():
        return None
    records = [json.loads(line) for line in path.read_text().splitlines() if line]
    if want_flows and not any(r["event_type"] == "flow" for r in records):
        return None
    return records


def test_a_collector_that_comes_back_late_gets_what_was_queued(tmp_path):
    """Nothing listening at first: the sender retries with backoff, counts its errors, and delivers once a
    collector appears on that port."""
    import socket
    import threading
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()                                   # nothing listens here now
    sender = syslog.Sender(syslog.parse_target(f"tcp://127.0.0.1:{port}"), queue_size=3, tls=None)
    sender.start()
    for i in range(5):
        sender.send(b"<14>1 - - capbox - test - m%d" % i)
    wait_for(lambda: sender.errors >= 1, timeout=10)
    received = []
    server = socket.create_server(("127.0.0.1", port))

    def serve():
        conn, _ = server.accept()
        buf = b""
        conn.settimeout(10)
        while buf.count(b"capbox") < 3:
            chunk = conn.recv(4096)
            if not chunk:
                break
            buf += chunk
        received.append(buf)
        conn.close()
    t = threading.Thread(target=serve)
    t.start()
    t.join(20)
    sender.stop()
    server.close()
    # the queue held 3: the two oldest were dropped and counted, the rest arrived octet-counted in order
    assert sender.dropped == 2
    frames = re.findall(rb"(\d+) (<14>1 - - capbox - test - m\d)", received[0])
    assert [f[1][-2:] for f in frames] == [b"m2", b"m3", b"m4"]
    assert all(int(n) == len(m) for n, m in frames)


def _tshark_dns(path: str) -> list:
    """Each DNS message as tshark decodes it: (id, response, name, [(rrname, type, ttl) of the answer section],
    [the answer section's A addresses])."""
    out = subprocess.run(["tshark", "-r", path, "-T", "fields", "-e", "dns.id", "-e", "dns.flags.response",
                          "-e", "dns.qry.name", "-e", "dns.count.answers", "-e", "dns.resp.name", "-e", "dns.resp.type",
                          "-e", "dns.resp.ttl", "-e", "dns.a", "-E", "separator=|", "-Y", "dns"],
                         capture_output=True, text=True, check=True).stdout
    msgs = []
    for line in out.splitlines():
        ident, resp, name, count, rnames, rtypes, ttls, addrs = line.split("|")
        n = int(count or 0)
        answers = list(zip(rnames.split(",")[:n], (int(t) for t in rtypes.split(",")[:n]),
                           (int(t) for t in ttls.split(",")[:n])))
        a_count = sum(1 for _, t, _ in answers if t == 1)
        msgs.append((int(ident, 16), resp == "1", name, answers, addrs.split(",")[:a_count] if addrs else []))
    return msgs


def test_dns_messages_as_eve_records_equal_tsharks_decoding(make_agent, tshark, tmp_path):
    data = tmp_path / "var"
    (data / "pcaps").mkdir(parents=True)
    path = pcap("zeek__dns-two-responses.pcap")
    capture = shutil.copy(path, data / "pcaps")
    make_agent(f'[capture]\nsource = "{capture}"\npace = 0\nloop = false\n'
               f'[eve]\nfile = "eve.json"\nfile_types = ["dns"]\n')
    want = _tshark_dns(path)
    records = wait_for(lambda: (r := _eve_lines(data / "eve.json")) and len(r) >= len(want) and r, timeout=30)
    assert [r["event_type"] for r in records] == ["dns"] * len(want)
    types = {1: "A", 5: "CNAME", 28: "AAAA"}
    for rec, (ident, response, name, answers, a_addrs) in zip(records, want):
        d = rec["dns"]
        assert (d["id"], d["qr"], d["rrname"], d["type"]) == (ident, response, name, "answer" if response else "query")
        assert rec["community_id"].startswith("1:") and rec["proto"] == "UDP" and SURICATA_TS.match(rec["timestamp"])
        if not response:
            assert "answers" not in d and "rcode" not in d
            continue
        assert d["rcode"] == "NOERROR"
        mine = [(a["rrname"], a["rrtype"], a["ttl"]) for a in d["answers"] if a["rrtype"] in types.values()]
        theirs = [(n, types[t], ttl) for n, t, ttl in answers if t in types]
        assert mine == theirs and theirs
        assert d["grouped"]["A"] == a_addrs == ["128.2.10.163"]


def test_http_and_tls_as_eve_records_equal_the_protocol_logs_and_tshark(make_agent, tshark, tmp_path):
    """A replayed capture's HTTP transactions and TLS handshakes reach the EVE file as Suricata names them:
    one record per transaction or handshake of the http and tls logs (capbox logs -r of the same file), with
    tshark's SNI and JA3."""
    from agent.logs.offline import log_file
    name = "ndpi__1kxun.pcap"
    data = tmp_path / "var"
    (data / "pcaps").mkdir(parents=True)
    capture = shutil.copy(pcap(name), data / "pcaps")
    want: dict = {"http": [], "tls": []}
    log_file(pcap(name), ["http", "tls"], lambda kind, rec: want[kind].append(rec))
    assert want["http"] and want["tls"]
    make_agent(f'[capture]\nsource = "{capture}"\npace = 0\nloop = false\n'
               f'[eve]\nfile = "eve.json"\nfile_types = ["http", "tls"]\n')
    total = len(want["http"]) + len(want["tls"])
    records = wait_for(lambda: (r := _eve_lines(data / "eve.json")) and len(r) >= total and r, timeout=60)
    got = {k: [r for r in records if r["event_type"] == k] for k in want}
    assert {k: len(v) for k, v in got.items()} == {k: len(v) for k, v in want.items()}
    for r in records:
        assert SURICATA_TS.match(r["timestamp"]) and r["community_id"].startswith("1:") and r["proto"] == "TCP"
    assert sorted((r["src_ip"], r["src_port"], r["http"].get("hostname", ""), r["http"].get("url", ""),
                   r["http"].get("status", 0)) for r in got["http"]) == \
        sorted((w["id.orig_h"], w["id.orig_p"], w.get("host") or "", w.get("uri") or "", w.get("status_code") or 0)
               for w in want["http"])
    hellos = subprocess.run([tshark, "-n", "-r", pcap(name), "-Y", "tls.handshake.type == 1 && "
                             "!tcp.analysis.retransmission", "-T", "fields", "-e", "tls.handshake.extensions_server_name",
                             "-e", "tls.handshake.ja3"], capture_output=True, text=True, check=True).stdout.splitlines()
    theirs = sorted(tuple(line.split("\t")) for line in hellos if line.split("\t")[1])
    assert sorted((r["tls"].get("sni", ""), r["tls"]["ja3"]["hash"]) for r in got["tls"] if "ja3" in r["tls"]) == theirs
    assert any(r["tls"].get("version", "").startswith("TLS 1.") for r in got["tls"])
