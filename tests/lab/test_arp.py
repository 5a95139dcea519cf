"""ARP poisoning by real tools on the lab LAN: dsniff's arpspoof, ettercap's
arp:remote, bettercap's arp.spoof.  Each must raise arp_spoof within 5 s
naming the attacker's MAC and own address, never the victim's or the
gateway's."""
from tests.lab import lan as L
from tests.lab.conftest import Attack, assert_attributed, need, wait_threat, warm_up


def test_dsniff_arpspoof(lab, box):
    need("arpspoof")
    warm_up(lab, box)
    attack = Attack(lab, lab.attacker, "arp")
    lab.attacker.spawn("arpspoof", "-i", "eth0", "-t", lab.victim.ip4, L.GW4)
    t = wait_threat(box, "arp_spoof", lab.attacker.mac)
    assert_attributed(t, lab.attacker, attack, lab.victim.ip4, L.GW4)


def test_ettercap_arp_remote(lab, box):
    need("ettercap")
    warm_up(lab, box)
    attack = Attack(lab, lab.attacker, "arp")
    lab.attacker.spawn("ettercap", "-T", "-q", "-i", "eth0", "-M", "arp:remote",
                       f"/{lab.victim.ip4}//", f"/{L.GW4}//", name="ettercap")
    t = wait_threat(box, "arp_spoof", lab.attacker.mac)
    assert_attributed(t, lab.attacker, attack, lab.victim.ip4, L.GW4)


def test_bettercap_arp_spoof(lab, box):
    need("bettercap")
    warm_up(lab, box)
    # bettercap picks targets from its host table (net.recon reads the kernel's ARP cache): the attacker's
    # machine has talked to the victim before, as on any LAN.  Its gateway discovery parses netstat's
    # routing table and finds nothing in a namespace, so the gateway is named (-gateway-override)
    lab.attacker.run("ping", "-c1", "-W2", lab.victim.ip4, check=False)
    lab.attacker.run("ping", "-c1", "-W2", L.GW4, check=False)
    attack = Attack(lab, lab.attacker, "arp")
    lab.attacker.spawn("bettercap", "-no-colors", "-no-history", "-iface", "eth0", "-gateway-override", L.GW4, "-eval",
                       f"net.recon on; set arp.spoof.targets {lab.victim.ip4}; arp.spoof on", name="bettercap",
                       env={"HOME": lab.dir, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    t = wait_threat(box, "arp_spoof", lab.attacker.mac)
    assert_attributed(t, lab.attacker, attack, lab.victim.ip4, L.GW4)
