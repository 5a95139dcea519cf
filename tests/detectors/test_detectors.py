"""The detectors on real captures (../shared/pcaps) and on labelled attack
scenarios with their benign twins (tests/detectors/scenarios.py)."""
import dataclasses
import json

import pytest

from agent.config import DetectionSection
from agent.detectors import DETECTORS
from agent.detectors.offline import detect_file
from tests.conftest import ALL_PCAPS, pcap
from tests.detectors import dnsstream
from tests.detectors.lan_scenarios import LAN_SCENARIOS
from tests.detectors.scenarios import SCENARIOS

CFG = DetectionSection()


def detect(path, cfg=CFG):
    found, error, _ = detect_file(str(path), cfg)
    return found, error


def test_weak_tls_found_with_version_suite_and_server():
    found, _ = detect(pcap("zeek__tls_ssl.v3.pcap"))
    assert {(d.type, d.src, d.dst, d.evidence["version"], d.evidence["suite"]) for d in found} == {
        ("tls_downgrade", "194.127.84.106", "192.150.187.164", "TLS 1.0", "TLS_RSA_WITH_RC4_128_MD5")}
    d = found[0]
    assert d.severity == "high" and d.evidence["client_sslv2_hello"] is True
    assert "TLS_RSA_EXPORT_WITH_RC4_40_MD5" in d.evidence["client_weak_suites_offered"]
    [d] = detect(pcap("zeek__tls_tls1_1.pcap"))[0]
    assert (d.type, d.src, d.evidence["server_port"], d.evidence["version"], d.evidence["suite"], d.severity) == (
        "tls_downgrade", "216.58.192.14", 443, "TLS 1.1", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "medium")
    assert not d.evidence["downgrade_sentinel"] and "version_downgrade" not in str(d.evidence["indicators"])


CLEAN = ["chrissanders__arp_gratuitous.pcapng", "chrissanders__arp_resolution.pcapng", "zeek__dns-two-responses.pcap",
         "chrissanders__dns_query_nonexistent.pcapng", "zeek__http_http-11-request-then-cruft.pcap",
         "zeek__tls_ssl-to-http-server.pcap", "ndpi__1kxun.pcap", "zeek__wikipedia.pcap", "ndpi__badpackets.pcap",
         "chrissanders__http_ip4and6.pcapng", "ndpi__http_ipv6.pcap", "ndpi__gnutella.pcap", "zeek__dhcp.pcap",
         "zeek__icmp6-nd-options.pcap", "zeek__icmp6-neighbor-advert.pcap", "zeek__icmp6-router-advert.pcap"]


@pytest.mark.parametrize("name", CLEAN)
def test_clean_captures_raise_nothing_above_low(name):
    found, _ = detect(pcap(name))
    assert [d for d in found if d.severity != "low"] == []


def test_every_shared_capture_is_read_without_a_failure():
    for path in ALL_PCAPS:
        found, error = detect(path)
        assert error is None or "fuzz" in path.name, (path, error)


@pytest.mark.parametrize("make", SCENARIOS + LAN_SCENARIOS, ids=lambda m: m.__name__)
def test_labelled_scenarios(make, tmp_path):
    sc = make()
    found, error = detect(sc.write(tmp_path))
    assert error is None
    mine = [d for d in found if d.type == sc.detector]
    if not sc.attack:
        assert found == [], [d.description for d in found]
        return
    assert mine, f"{sc.name}: not found"
    assert all(d.attacker == sc.attacker for d in mine), [(d.attacker, d.description) for d in mine]
    assert all(d.attacker_mac == sc.attacker_mac for d in mine)
    assert [d for d in found if d.type != sc.detector] == []
    # the threat takes its worst finding's severity (one threat per type, attacker and target)
    assert max(d.score for d in mine) >= 70 and max(d.confidence for d in mine) >= 0.7


def test_findings_carry_their_evidence_and_what_to_verify(tmp_path):
    from tests.detectors.scenarios import dns_race, ssl_strip_redirect_and_post
    found = detect(dns_race().write(tmp_path))[0]
    assert {x.attacker for x in found} == {"192.168.1.66"}       # the forged answer alone, then the race
    [d] = [x for x in found if "race" in x.evidence]
    assert d.evidence["race"]["forged"] == "first" and d.evidence["race"]["first"]["ips"] == ["45.33.32.66"]
    assert d.verify == {"kind": "dns", "domain": "www.mybank.com", "record_type": "A", "local_ips": ["45.33.32.66"]}
    strip = detect(ssl_strip_redirect_and_post().write(tmp_path))[0]
    assert strip[0].evidence["location"] == "http://www.mybank.com/login"
    assert strip[0].verify["url"] == "http://www.mybank.com/" and strip[0].verify["local"]["status_code"] == 302
    assert {i["name"] for i in strip[0].evidence["indicators"]} >= {"redirect_to_http", "https_host", "other_server"}


def test_thresholds_come_from_the_config(tmp_path):
    from tests.detectors.scenarios import dns_bogon
    path = dns_bogon().write(tmp_path)
    assert detect(path)[0]
    assert detect(path, dataclasses.replace(CFG, dns_threshold=95))[0] == []


def test_garbage_payloads_are_counted_not_fatal():
    from hwdrivers.events import PacketEvent
    for cls in DETECTORS:
        d = cls(CFG)
        for kind in cls.kinds:
            for payload in (b"", b"\x16\x03\x01\x00\x05\x01\x00\x00\x01", b"\xff" * 40, b"HTTP/1.1 abc\r\n",
                            bytes(range(256)) * 4):
                ev = PacketEvent(kind, 1, 1, "10.0.0.1", "10.0.0.2", 1, 53, 6, 0, 0, 0, 0, True,
                                 "02:00:00:00:00:01", "02:00:00:00:00:02", 60, len(payload), payload)
                assert d.feed(ev) == []


def test_urls_urlsplit_refuses_do_not_stop_capbox_detect(tmp_path):
    """A request target and a Location that urllib refuses (an unclosed IPv6 bracket) raised ValueError out of
    ssl_strip, and `capbox detect` stopped with a traceback; now they are read as well as they can be (the password
    in the refused target's query still counts) and the attack after them is found."""
    import subprocess
    import sys
    from tests.conftest import ROOT
    from tests.detectors import scenarios as s
    sc = s.ssl_strip_redirect_and_post()
    c = s.TcpConn(sc, s.VICTIM, s.VICTIM_MAC, s.ATTACKER, s.ATTACKER_MAC, 50100, 80, s.T0 + 100)
    c.client(s.http_request("GET", s.BANK, "//[x?password=hunter2"))
    c.server(s.http_response(302, "Found", "Location: http://[::1/login\r\n"))
    path = sc.write(tmp_path)
    p = subprocess.run([sys.executable, "-m", "agent", "detect", "--json", str(path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    assert [(r["type"], r["src"], r["dst"]) for r in rows] == [("ssl_strip", s.ATTACKER, s.VICTIM)], rows
    found, error = detect(path)
    assert error is None
    assert [d for d in found if "//[x" in d.description and "a password field" in d.description], \
        [d.description for d in found]


def test_ssl_strip_splits_a_target_as_urlsplit_does():
    """ssl_strip splits plain paths itself (the usual request target): 100,000 random targets, half of them
    starting with "/", built of the characters urlsplit treats apart, split as urlsplit splits them (or refused)."""
    import random
    import urllib.parse
    from agent.detectors.ssl_strip import _split
    rnd = random.Random(17)
    for _ in range(100000):
        url = "".join(rnd.choice("/?#:@[]\t\r\n \x00\x1fab%.;=&") for _ in range(rnd.randint(0, 12)))
        url = "/" + url if rnd.random() < 0.5 else url
        try:
            want = urllib.parse.urlsplit(url)
        except ValueError:
            want = None
        got = _split(url)
        assert got == want and type(got) is type(want), (url, got, want)


def test_ssl_strip_forgets_a_connections_oldest_request_past_its_pipelined_limit(tmp_path):
    """A connection's requests wait for their responses in order, PIPELINED of them at most: past it the oldest is
    forgotten, and the next response answers the one after it (a page of the bank, asked for HTTPS before, served
    in clear)."""
    from agent.detectors.ssl_strip import PIPELINED
    from tests.detectors import scenarios as s
    sc = s.Scenario("ssl_strip_pipelined", "ssl_strip", True, s.ATTACKER, s.ATTACKER_MAC)
    s.lan_baseline(sc, s.T0)
    c = s.TcpConn(sc, s.VICTIM, s.VICTIM_MAC, s.BANK_IP, s.GW_MAC, 50000, 80, s.T0 + 2)
    c.client(s.http_request("GET", s.BANK, "/")).server(s.http_response(301, "Moved", f"Location: https://{s.BANK}/\r\n"))
    c = s.TcpConn(sc, s.VICTIM, s.VICTIM_MAC, s.ATTACKER, s.ATTACKER_MAC, 50001, 80, s.T0 + 300)
    for i in range(PIPELINED + 1):
        c.client(s.http_request("GET", s.BANK, f"/p{i}"))
    c.server(s.http_response(200, "OK", "Content-Type: text/html\r\n"))
    found, error = detect(sc.write(tmp_path))
    assert error is None
    assert [(d.type, d.evidence["path"], d.attacker) for d in found] == [("ssl_strip", "/p1", s.ATTACKER)]


def stream_0():
    return dnsstream.stream(0, 1500)


def test_the_randomized_dns_stream_carries_every_indicator_it_injects(tmp_path):
    """The differential guard of the DNS path (bench/detectdiff.py) is only as good as this stream: it must
    raise the races, wrong MACs and servers, rewrites, bogons and TTL jumps it mixes in."""
    found, error = detect(dnsstream.stream(1).write(tmp_path))
    assert error is None
    raised = {i["name"] for d in found if d.type == "dns_hijack" for i in d.evidence["indicators"]}
    assert {"race", "wrong_mac", "wrong_server", "unsolicited", "nxdomain_elsewhere", "bogon_after_public",
            "ttl_jump", "answer_changed", "rewrite_target", "single_label_answered", "unsolicited_flood"} <= raised


@pytest.mark.parametrize("make", SCENARIOS + LAN_SCENARIOS + [stream_0], ids=lambda m: m.__name__)
def test_the_pipeline_finds_what_each_detector_alone_finds(make, tmp_path):
    """One shared LAN, learning each event once after every detector judged it, finds exactly what the
    detectors found each learning its own (the pipeline changes the cost, not the findings)."""
    from agent.detectors.pipeline import Pipeline
    from hwdrivers import CaptureConfig, Session
    path = str(make().write(tmp_path))
    found, _, pipeline = detect_file(path, CFG)
    assert all(d.lan is pipeline.lan for d in pipeline.detectors)
    alone = [cls(CFG) for cls in DETECTORS]
    events = []
    with Session(CaptureConfig(source=path, events=Pipeline(CFG).kinds(), lossless=True)) as s:
        s.run_to_eof(lambda: events.extend(s.read_events()))
        while s.flush():
            events.extend(s.read_events())
        events.extend(s.read_events())
    each = [d for ev in events for det in alone if ev.kind in det.all_kinds() for d in det.feed(ev)]
    assert sorted((d.type, d.key, d.score, d.first_seen) for d in found) == \
        sorted((d.type, d.key, d.score, d.first_seen) for d in each)
