"""A rogue DHCP server: a second dnsmasq on the attacker's machine hands out
itself as router and resolver, for IPv4 and IPv6.  The network's server
(dnsmasq on gw) has answered the victim before, as on any running LAN."""
from tests.lab import lan as L
from tests.lab.conftest import Attack, assert_attributed, dhcp, need, wait_threat_while, warm_up


def _rogue(lab, extra: list):
    a = lab.attacker
    return a.spawn("dnsmasq", "-k", "--port=0", "--interface=eth0", "--bind-interfaces", "--no-resolv",
                   "--no-hosts", f"--pid-file={lab.dir}/rogue.pid", f"--dhcp-leasefile={lab.dir}/rogue.leases",
                   "--log-facility=-", *extra, name="rogue-dnsmasq")


def lease_and_release(host, family: int) -> None:
    dhcp(host, family)
    dhcp(host, family, release=True)


def test_rogue_dhcpv4(lab, box):
    need("dnsmasq", "dhclient")
    warm_up(lab, box)
    assert dhcp(lab.victim).returncode == 0
    dhcp(lab.victim, release=True)
    attack = Attack(lab, lab.attacker, "udp src port 67")
    _rogue(lab, [f"--dhcp-range={L.LAN4}.200,{L.LAN4}.210,255.255.255.0,10m",
                 f"--dhcp-option=3,{lab.attacker.ip4}", f"--dhcp-option=6,{lab.attacker.ip4}"])
    t = wait_threat_while(box, "rogue_dhcp", lab.attacker.mac, lambda: lease_and_release(lab.victim, 4))
    assert_attributed(t, lab.attacker, attack, lab.victim.ip4, L.GW4)
    assert "router" in t["description"] or "itself" in t["description"]


def test_rogue_dhcpv6(lab, box):
    need("dnsmasq", "dhclient")
    warm_up(lab, box)
    assert dhcp(lab.victim, 6).returncode == 0
    dhcp(lab.victim, 6, release=True)
    attack = Attack(lab, lab.attacker, "udp src port 547")
    _rogue(lab, [f"--dhcp-range={L.LAN6}:e000,{L.LAN6}:efff,64,10m", f"--dhcp-option=option6:dns-server,[{lab.attacker.ip6}]"])
    t = wait_threat_while(box, "rogue_dhcp", lab.attacker.mac, lambda: lease_and_release(lab.victim, 6))
    from tests.lab.test_ipv6 import addresses
    assert_attributed(t, lab.attacker, attack, lab.victim.ip6, L.GW6, own=addresses(lab.attacker))
