"""Certificate verification through real TLS servers on loopback: the real
server, an interceptor behind a lying resolver, an intercepting CONNECT
proxy with its own CA, an honest CONNECT proxy and a SOCKS5 proxy."""
import pytest

from agent.config import VerifySection
from agent.errors import AgentError
from agent.verify.verifier import Verifier
from tests.loopback import (Authority, DnsServer, InterceptingProxy, Socks5Proxy, TamperingProxy, TlsServer,
                            free_port)

BANK = "www.mybank.com"
REAL, EVIL = "127.0.3.80", "127.0.3.66"


@pytest.fixture(scope="module")
def net():
    port = free_port(REAL)
    real_ca, mitm_ca = Authority("Real Bank CA"), Authority("mitmproxy")
    real = TlsServer(REAL, *real_ca.issue(BANK), port=port)
    evil = TlsServer(EVIL, *mitm_ca.issue(BANK, age_s=60), port=port)
    honest = [DnsServer(f"127.0.3.{i}", {BANK: {"A": [REAL]}}) for i in (11, 12, 13, 14)]
    liar = DnsServer("127.0.3.15", {BANK: {"A": [EVIL]}})
    hosts = {BANK: REAL}
    relay, socks = TamperingProxy("127.0.3.30", hosts=hosts), Socks5Proxy("127.0.3.31", hosts=hosts)
    mitm = InterceptingProxy("127.0.3.32", *mitm_ca.issue(BANK, age_s=60))
    yield {"port": port, "real": real, "evil": evil, "mitm": mitm, "relay": relay, "socks": socks,
           "resolvers": tuple(f"udp:{d.address}" for d in honest), "liar": f"udp:{liar.address}"}
    for s in (real, evil, *honest, liar, relay, socks, mitm):
        s.stop()


def verifier(net, liar=True, mitm=True) -> Verifier:
    return Verifier(VerifySection(resolvers=net["resolvers"] + ((net["liar"],) if liar else ()),
                                  http_proxies=(net["relay"].url,) + ((net["mitm"].url,) if mitm else ()),
                                  socks_proxies=(net["socks"].url,)))


def test_the_local_certificate_agreeing_with_the_consensus_refutes_interception(net):
    v = verifier(net, liar=False, mitm=False)
    r = v.verify_tls(BANK, net["port"], num_paths=6, timeout=5, local_fingerprint=net["real"].fingerprint.upper())
    assert (r["paths_checked"], r["paths_succeeded"], r["paths_agreed"]) == (6, 6, 6)
    assert r["consensus"]["fingerprint"] == net["real"].fingerprint and r["consensus"]["issuer"] == "CN=Real Bank CA"
    assert r["consensus"]["subject"] == f"CN={BANK}" and r["consensus"]["not_after"] > r["consensus"]["not_before"]
    assert r["local_agrees"] is True and not r["attack_detected"] and r["confidence"] == "VERY_HIGH"
    assert r["outliers"] == [] and "no interception" in r["recommendations"][0]
    assert net["relay"].requests[-1] == ("CONNECT", f"{BANK}:{net['port']}")
    assert (BANK, net["port"]) in net["socks"].connects
    v.close()


def test_a_local_certificate_unlike_the_consensus_confirms_interception(net):
    v = verifier(net, liar=False, mitm=False)
    r = v.verify_tls(BANK, net["port"], num_paths=6, timeout=5, local_fingerprint=net["evil"].fingerprint)
    assert r["attack_detected"] and r["local_agrees"] is False and r["confidence"] == "VERY_HIGH"
    assert r["outliers"] == [{"path_id": "local", "fingerprint": net["evil"].fingerprint}]
    assert r["differences"][0]["consensus_value"] == net["real"].fingerprint
    assert r["recommendations"][0].startswith("TLS INTERCEPTION DETECTED")
    v.close()


def test_intercepting_paths_are_outliers(net):
    v = verifier(net)
    r = v.verify_tls(BANK, net["port"], num_paths=8, timeout=5)
    assert (r["paths_checked"], r["paths_succeeded"], r["paths_agreed"]) == (8, 8, 6)
    assert r["consensus_percentage"] == 75.0 and r["confidence"] == "HIGH"
    assert r["consensus"]["fingerprint"] == net["real"].fingerprint and r["local_agrees"] is None
    outliers = {o["path_id"]: o for o in r["outliers"]}
    liar = f"url-direct-via-udp-127.0.3.15-{net['liar'].rsplit(':', 1)[1]}"
    mitm = f"url-proxy-127.0.3.32-{net['mitm'].port}"
    assert set(outliers) == {liar, mitm}
    assert outliers[mitm]["issuer"] == "CN=mitmproxy" and outliers[mitm]["fingerprint"] == net["mitm"].fingerprint
    assert outliers[liar]["fingerprint"] == net["evil"].fingerprint
    assert {(d["path"], d["field"]) for d in r["differences"]} >= {(mitm, "issuer"), (mitm, "fingerprint")}
    assert any(mitm in line and "intercepting proxy" in line for line in r["recommendations"])
    assert net["mitm"].requests[-1] == f"CONNECT {BANK}:{net['port']} HTTP/1.1"
    v.close()


def test_bad_targets_and_too_few_paths(net):
    v = Verifier(VerifySection(resolvers=net["resolvers"][:2]))
    for kw, code in [({"host": "not a host"}, "INVALID_DOMAIN"), ({"host": BANK, "port": 0}, "VALIDATION_ERROR"),
                     ({"host": BANK, "local_fingerprint": "abc"}, "VALIDATION_ERROR"),
                     ({"host": BANK, "sni": "bad..sni"}, "VALIDATION_ERROR"),
                     ({"host": BANK, "num_paths": 2}, "INVALID_NUM_PATHS"),
                     ({"host": BANK}, "INSUFFICIENT_PATHS")]:
        with pytest.raises(AgentError) as e:
            v.verify_tls(**kw)
        assert e.value.code == code
    v.close()
