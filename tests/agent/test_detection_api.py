"""Detection, verification, threats and deception through the real agent
(a subprocess) and real servers on loopback: a replayed DNS hijack with a
lying local resolver becomes a verified threat; deception sends decoys with
honeytokens to a loopback target, and a replayed capture carrying a token
from another host triggers it."""
import threading
import time
import urllib.parse

import pytest

from tests.agent.conftest import ApiError, wait_for
from tests.detectors import scenarios as sc
from tests.loopback import DnsServer, HttpServer, free_port

BANK = sc.BANK


@pytest.fixture
def lan():
    """Three honest resolvers, a lying one (the LAN's), the real bank and the attacker's copy on one port."""
    port = free_port("127.0.0.80")
    honest = [DnsServer(f"127.0.1.{i}", {BANK: {"A": ["127.0.0.80"]}}) for i in (1, 2, 3)]
    liar = DnsServer("127.0.1.9", {BANK: {"A": ["127.0.0.66"]}})
    bank = HttpServer("127.0.0.80", {"/": (200, {}, b"bank")}, port)
    evil = HttpServer("127.0.0.66", {"/login": (200, {}, b"welcome")}, port)
    yield {"honest": honest, "liar": liar, "port": port, "bank": bank, "evil": evil}
    for s in (*honest, liar, bank, evil):
        s.stop()


def config(lan, auto=True) -> str:
    resolvers = ", ".join(f'"udp:{s.address}"' for s in lan["honest"])
    return (f'[capture]\nautostart = false\n[verify]\nresolvers = [{resolvers}]\n'
            f'local_resolver = "udp:{lan["liar"].address}"\n'
            f'[deception]\nauto_activate = {"true" if auto else "false"}\ninterval_s = 0.2\n'
            f'target_port = {lan["port"]}\n')


def hijack_capture(path):
    """The LAN resolver answering the bank's name with the attacker's address, as the tap saw it."""
    s = sc.Scenario("hijack", "dns_hijack", True)
    sc.lan_baseline(s, sc.T0)
    sc.dns_exchange(s, sc.T0 + 2, BANK, 0x5001, [(["127.0.0.66"], None, None)], server=sc.GW)
    return s.write(path)


def replay(agent, path):
    agent.client.post("/v1/capture/start", {"file": agent.pcap(str(path))})
    wait_for(lambda: not agent.client.get("/v1/capture/status")["running"], timeout=20)


def test_a_replayed_hijack_becomes_a_verified_threat_with_evidence_and_deception(make_agent, lan, tmp_path):
    agent = make_agent(config(lan))
    c = agent.client
    assert c.get("/v1/paths")["by_kind"] == {"dns": 3, "url": 3}
    events = []

    def listen():
        try:
            for e in c.events("attacks:detected,attacks:verified,deception:started", timeout=30):
                events.append(e)
                if len(events) >= 3:
                    return
        except OSError:
            pass
    t = threading.Thread(target=listen, daemon=True)
    t.start()
    time.sleep(0.3)
    replay(agent, hijack_capture(tmp_path))
    threat = wait_for(lambda: next((x for x in c.get("/v1/threats")["threats"] if x["verified"]), None), timeout=20)
    assert (threat["attack_type"], threat["source_ip"], threat["dest_ip"], threat["protocol"]) == (
        "dns_hijack", sc.GW, sc.VICTIM, "DNS")
    detail = c.get(f"/v1/threats/{threat['id']}")
    assert detail["evidence"]["domain"] == BANK and detail["evidence"]["answers"] == ["127.0.0.66"]
    v = detail["verification_result"]
    assert detail["confidence"] >= 0.9 and detail["severity"] in ("high", "critical")   # confirmed: raised
    assert v["consensus_ips"] == ["127.0.0.80"] and v["local_ips"] == ["127.0.0.66"] and v["confidence"] == "VERY_HIGH"
    # the verdict's event row is written just after the verdict (one store writer): wait for it under load
    wait_for(lambda: [e["event_type"] for e in c.get(f"/v1/threats/{threat['id']}")["related_events"]][:3] ==
             ["dns_packet", "attack_detected", "verification_complete"], timeout=10)
    # a verified threat starts deception by itself; decoys go to the bank's name as the LAN resolves it
    session = wait_for(lambda: c.get(f"/v1/threats/{threat['id']}")["deception_session"])
    assert session["target_domain"] == BANK and session["attacker_ip"] == sc.GW
    assert c.get(f"/v1/threats/{threat['id']}")["response_action"] == "deception_activated"
    wait_for(lambda: any(r[1] == "/login" for r in lan["evil"].requests), timeout=10)
    assert not lan["bank"].requests
    t.join(10)
    assert {e["event"] for e in events} >= {"attack_detected", "verification_complete"}
    assert len({e["data"]["correlation_id"] for e in events}) == 1
    listed = c.get("/v1/threats", verified="true", attack_type="dns_hijack", severity=threat["severity"])
    assert listed["total"] == 1
    assert c.get("/v1/threats", verified="false")["total"] == 0
    stats = c.get("/v1/stats", period="1h")
    assert stats["detection"]["threats_verified"] == 1 and stats["verification"]["attacks_confirmed"] == 1
    assert stats["deception"]["sessions_active"] == 1 and stats["top_attackers"][0]["ip"] == sc.GW
    marked = c.request("PATCH", f"/v1/threats/{threat['id']}", {"status": "false_positive", "note": "lab"})
    assert marked["status"] == "false_positive"
    assert c.get("/v1/stats")["detection"]["false_positives"] == 1


def test_deception_sends_honeytokens_and_a_token_seen_from_another_host_triggers(make_agent, lan, tmp_path):
    agent = make_agent(config(lan, auto=False))
    c = agent.client
    target = "127.0.0.66"
    s = c.request("POST", "/v1/deception/start", {"target_domain": target, "attacker_ip": "192.168.1.66",
                                                   "behavior_profile": "banking_user", "duration_minutes": 5})
    assert s["status"] == "active" and s["behavior_profile"] == "banking_user" and s["estimated_end"]
    assert {t["type"] for t in s["honeytokens_deployed"]} == {"email", "password", "url", "dns"}
    with pytest.raises(ApiError) as e:
        c.post("/v1/deception/start", {"target_domain": target, "attacker_ip": "192.168.1.66"})
    assert (e.value.status, e.value.code) == (409, "SESSION_CONFLICT")
    wait_for(lambda: any(r[1] == "/login" for r in lan["evil"].requests), timeout=10)
    method, path, headers, body, client = next(r for r in lan["evil"].requests if r[1] == "/login")
    email = next(t["token"] for t in s["honeytokens_deployed"] if t["type"] == "email")
    assert urllib.parse.parse_qs(body.decode())["email"] == [email]
    assert any(q[0].endswith(target) for q in lan["liar"].queries)   # the DNS decoy went to the LAN's resolver only
    tokens = c.get("/v1/honeytokens")
    assert tokens["total"] == 4 and tokens["triggered_count"] == 0
    # the attacker uses the stolen address from its own host: the capture carries it from 10.9.9.9
    thief = sc.Scenario("thief", "deception", True)
    conn = sc.TcpConn(thief, "10.9.9.9", "02:00:0a:09:09:09", "203.0.113.5", sc.GW_MAC, 40000, 80, sc.T0)
    conn.client(sc.http_request("POST", "mail.example.net", "/login",
                                f"user={urllib.parse.quote(email)}&pass=x".encode()))
    replay(agent, thief.write(tmp_path))
    hit = wait_for(lambda: c.get("/v1/honeytokens", triggered="true")["tokens"], timeout=15)
    assert [(t["token"], t["trigger_sources"], t["trigger_count"]) for t in hit] == [(email, ["10.9.9.9"], 1)]
    report = c.post("/v1/honeytokens/trigger", {"token": email, "source_ip": "203.0.113.45",
                                                "context": {"service": "email_server"}})
    assert report["trigger_recorded"] and report["trigger_count"] == 2 and report["alert_sent"]
    with pytest.raises(ApiError) as e:
        c.post("/v1/honeytokens/trigger", {"token": "nope"})
    assert (e.value.status, e.value.code) == (404, "TOKEN_NOT_FOUND")
    stopped = c.post("/v1/deception/stop", {"session_id": s["session_id"]})
    assert stopped["status"] == "stopped" and stopped["statistics"]["packets_sent"] >= 2
    assert stopped["statistics"]["attacker_actions_logged"] == 2 and stopped["statistics"]["honeytokens_triggered"] == 1
    for sid, code, status in ((s["session_id"], "SESSION_CONFLICT", 409), ("dec_nope", "SESSION_NOT_FOUND", 404)):
        with pytest.raises(ApiError) as e:
            c.post("/v1/deception/stop", {"session_id": sid})
        assert (e.value.status, e.value.code) == (status, code)


def test_seed_error_codes_and_config(make_agent):
    c = make_agent().client
    cases = [("/v1/verify", {"url": "notaurl"}, 400, "INVALID_URL"),
             ("/v1/verify", {"url": "http://x.example/", "num_paths": 2}, 400, "INVALID_NUM_PATHS"),
             ("/v1/verify", {"url": "http://x.example/", "timeout": 0}, 400, "INVALID_TIMEOUT"),
             ("/v1/verify", {"url": "http://x.example/"}, 503, "INSUFFICIENT_PATHS"),
             ("/v1/verify-dns", {"domain": "bad..name"}, 400, "INVALID_DOMAIN"),
             ("/v1/verify-dns", {"domain": "example.com", "num_paths": 50}, 400, "INVALID_NUM_PATHS"),
             ("/v1/verify-dns", {"domain": "example.com"}, 503, "INSUFFICIENT_PATHS"),
             ("/v1/deception/start", {"target_domain": "example.com", "attacker_ip": "nope"}, 400, "VALIDATION_ERROR"),
             ("/v1/deception/start", {"target_domain": "example.com", "attacker_ip": "10.0.0.1",
                                      "duration_minutes": 1441}, 400, "VALIDATION_ERROR")]
    for path, body, status, code in cases:
        with pytest.raises(ApiError) as e:
            c.post(path, body)
        assert (e.value.status, e.value.code) == (status, code), (path, body)
    with pytest.raises(ApiError) as e:
        c.get("/v1/threats/thr_nope")
    assert (e.value.status, e.value.code) == (404, "THREAT_NOT_FOUND")
    with pytest.raises(ApiError) as e:
        c.get("/v1/threats", limit=1001)
    assert e.value.code == "VALIDATION_ERROR"
    assert c.get("/v1/paths") == {**c.get("/v1/paths"), "total": 0}
    cfg = c.get("/v1/config")
    assert (cfg["detection"]["dns_threshold"], cfg["detection"]["ssl_strip_threshold"],
            cfg["detection"]["arp_spoof_threshold"]) == (40, 70, 80)
    assert cfg["deception"]["default_behavior_profile"] == "average_user" and cfg["verify"]["resolvers"] == []
    r = c.raw("GET", "/v1/threats")
    assert r.status == 200 and r.headers["x-ratelimit-limit"] == "300"
