"""Verification through real servers on loopback: honest and lying resolvers,
an HTTP server, a tampering proxy, a SOCKS5 proxy."""
import socket

import pytest

from agent.config import VerifySection
from agent.errors import AgentError
from agent.verify.verifier import Verifier
from tests.loopback import DnsServer, HttpServer, Socks5Proxy, TamperingProxy, free_port

BANK = "www.mybank.com"
ZONE = {BANK: {"A": ["127.0.0.80"], "MX": ["10 mx.mybank.com."], "TXT": ["v=spf1 -all"]}}


@pytest.fixture(scope="module")
def net():
    port = free_port("127.0.0.80")
    honest = [DnsServer(f"127.0.0.{i}", ZONE) for i in (11, 12, 13, 14)]
    liar = DnsServer("127.0.0.15", {BANK: {"A": ["127.0.0.66"]}})
    bank = HttpServer("127.0.0.80", {"/": (200, {"Content-Type": "text/html", "Server": "bank"},
                                           b"<html>the real bank</html>")}, port)
    evil = HttpServer("127.0.0.66", {"/": (200, {"Content-Type": "text/html", "Server": "nginx"},
                                           b"<html>phish</html>")}, port)
    hosts = {BANK: "127.0.0.80"}
    proxy = TamperingProxy("127.0.0.30", lambda b: b.replace(b"real", b"evil"), hosts=hosts)
    socks = Socks5Proxy("127.0.0.31", hosts=hosts)
    yield {"honest": honest, "liar": liar, "port": port, "proxy": proxy, "socks": socks}
    for s in (*honest, liar, bank, evil, proxy, socks):
        s.stop()


def make(net, liar=True, **kw):
    res = [f"udp:{net['honest'][0].address}", f"udp:{net['honest'][1].address}", f"tcp:{net['honest'][2].address}",
           f"tcp:{net['honest'][3].address}"] + ([f"udp:{net['liar'].address}"] if liar else [])
    return Verifier(VerifySection(resolvers=tuple(res), **kw))


def test_dns_consensus_outvotes_a_lying_resolver_and_the_local_answer(net):
    v = make(net, local_resolver=f"udp:{net['liar'].address}")
    r = v.verify_dns(BANK, num_paths=5, timeout=3)
    assert (r["paths_checked"], r["paths_succeeded"], r["paths_agreed"]) == (5, 5, 4)
    assert r["consensus_ips"] == ["127.0.0.80"] and r["local_ips"] == ["127.0.0.66"]
    assert r["consensus_percentage"] == 80.0 and r["confidence"] == "HIGH" and r["attack_detected"]
    assert [o["path_id"] for o in r["outliers"]] == ["local", f"dns-udp-127.0.0.15-{net['liar'].port}"]
    assert r["recommendations"][0].startswith("DNS HIJACKING DETECTED")
    liar = [p for p in r["path_results"] if p["path_id"].startswith("dns-udp-127.0.0.15")][0]
    assert liar["agreed_with_consensus"] is False and liar["ips"] == ["127.0.0.66"]
    honest_only = make(net, liar=False).verify_dns(BANK, num_paths=4, timeout=3, local_ips=["127.0.0.80"])
    assert honest_only["confidence"] == "VERY_HIGH" and not honest_only["attack_detected"]
    assert make(net).verify_dns(BANK, "MX", num_paths=4, timeout=3)["consensus_ips"] == ["10 mx.mybank.com"]
    assert make(net).verify_dns(BANK, "TXT", num_paths=4, timeout=3)["consensus_ips"] == ["v=spf1 -all"]
    nx = make(net, liar=False).verify_dns("nothing.mybank.com", num_paths=4, timeout=3)
    assert nx["consensus_ips"] == [] and nx["confidence"] == "VERY_HIGH"
    for x in (v,):
        x.close()


def test_url_through_resolvers_a_tampering_proxy_and_socks(net):
    v = make(net, http_proxies=(net["proxy"].url,), socks_proxies=(net["socks"].url,))
    url = f"http://{BANK}:{net['port']}/"
    r = v.verify_url(url, num_paths=7, timeout=3)
    by_path = {p["path_id"]: p for p in r["path_results"]}
    assert r["paths_checked"] == 7 and r["paths_succeeded"] == 7
    # four honest resolvers, SOCKS: the real page; the lying resolver's server and the proxy: something else
    assert r["paths_agreed"] == 5 and r["consensus_percentage"] == 71.4 and r["confidence"] == "HIGH"
    assert by_path[f"url-socks-127.0.0.31-{net['socks'].port}"]["agreed_with_consensus"]
    outliers = {o["path_id"] for o in r["outliers"]}
    assert outliers == {f"url-proxy-127.0.0.30-{net['proxy'].port}", f"url-direct-via-udp-127.0.0.15-{net['liar'].port}"}
    fields = {(d["path"].split("-")[1], d["field"]) for d in r["differences"]}
    assert ("proxy", "content_hash") in fields and ("direct", "header.server") in fields
    assert any("Content has been modified" in x for x in r["recommendations"])
    local = make(net, local_proxy=net["proxy"].url).verify_url(url, num_paths=4, timeout=3)
    assert local["attack_detected"] and local["confidence"] == "VERY_HIGH"
    assert local["outliers"][0]["path_id"] == "local"
    # the proxy swaps "real" for "evil": a page of the same length, so only its hash is said to differ
    assert "Content has been modified (different hash)." in local["recommendations"]
    v.close()


def test_strategies_health_and_path_errors(net):
    v = make(net)
    for strategy in ("diverse", "fastest", "reliable", "balanced"):
        assert v.verify_dns(BANK, num_paths=3, timeout=3, strategy=strategy)["paths_checked"] == 3
    views = {p["id"]: p for p in v.path_views()["paths"]}
    assert all(p["status"] == "healthy" for p in views.values() if p["kind"] == "dns")
    assert any(p["checks"] and p["avg_latency_ms"] is not None for p in views.values())
    with pytest.raises(AgentError) as e:
        v.verify_dns(BANK, num_paths=3, timeout=3, paths=["no-such-path"])
    assert (e.value.code, e.value.status) == ("PATH_UNAVAILABLE", 503)
    stats = v.stats(0)
    assert stats["total_verifications"] == 4 and stats["path_statistics"]["fastest_path"]
    v.close()


def test_bad_requests_and_too_few_paths():
    v = Verifier(VerifySection())
    for call, code in [(lambda: v.verify_dns("not a domain"), "INVALID_DOMAIN"),
                       (lambda: v.verify_url("ftp://x.example/"), "INVALID_URL"),
                       (lambda: v.verify_url("http://"), "INVALID_URL"),
                       (lambda: v.verify_dns("example.com", num_paths=2), "INVALID_NUM_PATHS"),
                       (lambda: v.verify_dns("example.com", num_paths=41), "INVALID_NUM_PATHS"),
                       (lambda: v.verify_dns("example.com", timeout=31), "INVALID_TIMEOUT"),
                       (lambda: v.verify_dns("example.com"), "INSUFFICIENT_PATHS")]:
        with pytest.raises(AgentError) as e:
            call()
        assert e.value.code == code
    assert v.path_views()["total"] == 0   # nothing is configured: nothing leaves the box
    v.close()


def test_silent_resolvers_are_a_verification_timeout():
    silent = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    for i, s in enumerate(silent):
        s.bind((f"127.0.0.{41 + i}", 0))
    v = Verifier(VerifySection(resolvers=tuple(f"udp:127.0.0.{41 + i}:{s.getsockname()[1]}"
                                               for i, s in enumerate(silent))))
    with pytest.raises(AgentError) as e:
        v.verify_dns(BANK, num_paths=3, timeout=1)
    assert (e.value.code, e.value.status) == ("VERIFICATION_TIMEOUT", 504)
    assert all(p["status"] == "degraded" for p in v.path_views()["paths"] if p["kind"] == "dns")
    v.close()
    for s in silent:
        s.close()


@pytest.mark.parametrize("fields,said", [(["content_hash"], "different hash)."),
                                         (["content_hash", "content_length"], "different hash and length)."),
                                         (["content_length"], "different length).")])
def test_the_recommendation_names_only_what_differs(fields, said):
    from agent.verify.consensus import url_recommendations
    c = {"differences": [{"path": "p", "field": f} for f in fields], "attack_detected": False,
         "outliers": [{"path_id": "p"}], "consensus_percentage": 80.0, "confidence": "HIGH"}
    (line,) = [r for r in url_recommendations(c, 5) if r.startswith("Content has been modified")]
    assert line.endswith(said)
