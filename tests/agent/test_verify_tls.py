"""Certificate verification as a user meets it: a replayed capture in which
the bank's certificate comes from a proxy's CA (confirmed by independent
paths: the threat is raised) and one in which the shop's certificate
legitimately changed CA (refuted: the threat is lowered); POST
/v1/verify-tls and `capbox verify-tls` against real TLS servers on loopback."""
import hashlib
import ssl
import struct
import subprocess
import sys

import pytest

from tests.agent.conftest import ApiError, wait_for
from tests.conftest import ROOT
from tests.detectors import scenarios as sc
from tests.loopback import Authority, DnsServer, TlsServer, free_port

BANK, SHOP = sc.BANK, "www.myshop.com"


@pytest.fixture(scope="module")
def net():
    port = free_port("127.0.4.80")
    real = Authority("Real Bank CA")
    bank_pem, shop_pem = real.issue(BANK), real.issue(SHOP)
    servers = [TlsServer("127.0.4.80", *bank_pem, port=port), TlsServer("127.0.4.81", *shop_pem, port=port)]
    zone = {BANK: {"A": ["127.0.4.80"]}, SHOP: {"A": ["127.0.4.81"]}}
    resolvers = [DnsServer(f"127.0.4.{i}", zone) for i in (1, 2, 3)]
    yield {"port": port, "bank": servers[0], "shop": servers[1], "shop_pem": shop_pem[0],
           "resolvers": [f"udp:{d.address}" for d in resolvers]}
    for s in (*servers, *resolvers):
        s.stop()


def certificate_message(der: bytes) -> bytes:
    certs = len(der).to_bytes(3, "big") + der
    body = len(certs).to_bytes(3, "big") + certs
    hs = b"\x0b" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x03" + struct.pack("!H", len(hs)) + hs


def handshake(s, ts, name, client, cmac, port, der, sport):
    conn = sc.TcpConn(s, client, cmac, sc.BANK_IP, sc.GW_MAC, sport, port, ts)
    conn.client(sc.tls_client_hello(name, versions=()))
    conn.server(sc.tls_server_hello(0x0303, 0xC02F) + certificate_message(der))


def capture(net, tmp_path, proxy_der, old_shop_der):
    """The bank and the shop seen with their usual CAs; then the bank through a proxy's CA (a corporate
    TLS-inspecting proxy: not fresh, no tool name) and the shop with its new CA."""
    s = sc.Scenario("tls_verify", "tls_intercept", True)
    sc.lan_baseline(s, sc.T0)
    bank_der = ssl.PEM_cert_to_DER_cert(net["bank"].pem.decode())
    handshake(s, sc.T0 + 2, BANK, sc.VICTIM, sc.VICTIM_MAC, net["port"], bank_der, 40001)
    handshake(s, sc.T0 + 3, SHOP, sc.OTHER, sc.OTHER_MAC, net["port"], old_shop_der, 40002)
    handshake(s, sc.T0 + 60, BANK, sc.VICTIM, sc.VICTIM_MAC, net["port"], proxy_der, 40003)
    handshake(s, sc.T0 + 61, SHOP, sc.OTHER, sc.OTHER_MAC, net["port"],
              ssl.PEM_cert_to_DER_cert(net["shop_pem"].decode()), 40004)
    return s.write(tmp_path)


def der_of(pem: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.decode())


def test_a_replayed_interception_is_confirmed_and_a_new_ca_refuted(make_agent, net, tmp_path):
    resolvers = ", ".join(f'"{r}"' for r in net["resolvers"])
    agent = make_agent(f'[capture]\nautostart = false\n[verify]\nresolvers = [{resolvers}]\n'
                       '[deception]\nauto_activate = false\n')
    c = agent.client
    proxy_der = der_of(Authority("Corp Inspection CA").issue(BANK)[0])
    old_shop_der = der_of(Authority("Old Shop CA").issue(SHOP)[0])
    path = capture(net, tmp_path, proxy_der, old_shop_der)
    c.post("/v1/capture/start", {"file": agent.pcap(str(path))})
    done = lambda: [t for t in c.get("/v1/threats", attack_type="tls_intercept")["threats"]
                    if t["verification_status"] in ("confirmed", "refuted")]
    threats = {t["dest_ip"]: t for t in wait_for(lambda: len(done()) == 2 and done(), timeout=30)}
    bank, shop = threats[sc.VICTIM], threats[sc.OTHER]
    # the bank: the wire's certificate is not the one three independent paths are served
    assert bank["verification_status"] == "confirmed" and bank["severity"] == "high" and bank["confidence"] >= 0.9
    v = c.get(f"/v1/threats/{bank['id']}")["verification_result"]
    assert v["local"] == {"fingerprint": hashlib.sha256(proxy_der).hexdigest()} and v["host"] == BANK
    assert v["consensus"]["fingerprint"] == net["bank"].fingerprint and v["confidence"] == "VERY_HIGH"
    assert v["outliers"][0]["path_id"] == "local"
    # the shop: its new certificate is the one every path is served (a CA change, not an interception)
    assert shop["verification_status"] == "refuted" and shop["severity"] == "low" and shop["confidence"] <= 0.3
    assert c.get(f"/v1/threats/{shop['id']}")["verification_result"]["consensus"]["fingerprint"] == \
        net["shop"].fingerprint
    # the same question over REST, as an operator asks it
    r = c.post("/v1/verify-tls", {"host": BANK, "port": net["port"], "num_paths": 3, "timeout": 5,
                                  "local_fingerprint": hashlib.sha256(proxy_der).hexdigest()})
    assert r["attack_detected"] and r["paths_agreed"] == 3 and r["threat_id"]
    assert c.get(f"/v1/threats/{r['threat_id']}")["protocol"] == "TLS"
    ok = c.post("/v1/verify-tls", {"host": BANK, "port": net["port"], "num_paths": 3,
                                   "local_fingerprint": net["bank"].fingerprint})
    assert not ok["attack_detected"] and ok["local_agrees"] and ok["threat_id"] is None
    for body, code in [({"host": BANK, "port": 70000}, "VALIDATION_ERROR"), ({"host": "bad..name"}, "INVALID_DOMAIN"),
                       ({"host": BANK, "num_paths": 2}, "INVALID_NUM_PATHS"),
                       ({"host": BANK, "local_fingerprint": "xyz"}, "VALIDATION_ERROR")]:
        with pytest.raises(ApiError) as e:
            c.post("/v1/verify-tls", body)
        assert (e.value.status, e.value.code) == (400, code)
    spec = c.get("/v1/openapi.json")["paths"]["/v1/verify-tls"]["post"]
    port = spec["requestBody"]["content"]["application/json"]["schema"]["properties"]["port"]
    assert (port["minimum"], port["maximum"], port["default"]) == (1, 65535, 443)


def test_capbox_verify_tls(net):
    args = [a for r in net["resolvers"] for a in ("--resolver", r)]
    run = lambda *extra: subprocess.run([sys.executable, "-m", "agent", "verify-tls", f"{BANK}:{net['port']}", *args,
                                         "--timeout", "5", *extra], cwd=ROOT, capture_output=True, text=True,
                                        timeout=60)
    p = run()
    assert p.returncode == 0, p.stderr
    assert "confidence  VERY_HIGH (100% of 3 answering paths agree" in p.stdout
    assert f"consensus   sha256 {net['bank'].fingerprint}" in p.stdout and "issued by CN=Real Bank CA" in p.stdout
    p = run("--local", ":".join(net["shop"].fingerprint[i:i + 2] for i in range(0, 64, 2)))
    assert p.returncode == 2 and "ATTACK DETECTED" in p.stdout and "TLS INTERCEPTION DETECTED" in p.stdout
    p = run("--sni", SHOP, "--json")
    assert p.returncode == 0 and f'"sni": "{SHOP}"' in p.stdout
    p = subprocess.run([sys.executable, "-m", "agent", "verify-tls", BANK], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 1 and "INSUFFICIENT_PATHS" in p.stderr
