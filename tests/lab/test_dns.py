"""Forged DNS answers by real tools: dsniff's dnsspoof, ettercap's dns_spoof
plugin (behind its ARP man in the middle), bettercap's dns.spoof.  The
forged answers carry the resolver's address as their source: the threat
must name the attacker (its MAC and own address), never the resolver nor
the victim whose queries it forwards."""
import os
import subprocess

from tests.lab import lan as L
from tests.lab.conftest import Attack, assert_attributed, need, wait_threat_while, warm_up

NAME = f"bank.{L.DOMAIN}"
FORGED = "11.6.6.6"


def _run_attack(lab, box, start) -> dict:
    """start() the attack while the victim resolves the bank's name every half second, as a browser would
    (without EDNS, as glibc's stub resolver asks: dnsspoof answers no query with an additional record)."""
    warm_up(lab, box)
    attack = Attack(lab, lab.attacker, "udp src port 53")
    start()
    t = wait_threat_while(box, "dns_hijack", lab.attacker.mac, lambda: lab.victim.run(
        "dig", "+noedns", "+tries=1", "+time=1", f"@{L.GW4}", NAME, check=False))
    assert_attributed(t, lab.attacker, attack, lab.victim.ip4, L.GW4)
    return t


def test_dsniff_dnsspoof(lab, box):
    need("dnsspoof")
    hosts = os.path.join(lab.dir, "dnsspoof.hosts")
    with open(hosts, "w") as f:
        f.write(f"{FORGED}\t{NAME}\n")
    _run_attack(lab, box, lambda: lab.attacker.spawn("dnsspoof", "-i", "eth0", "-f", hosts, "udp dst port 53"))


def test_ettercap_dns_spoof(lab, box):
    need("ettercap", "unshare")
    etter = os.path.join(lab.dir, "etter.dns")
    with open(etter, "w") as f:
        f.write(f"{NAME} A {FORGED}\n")
    # the plugin reads /etc/ettercap/etter.dns only: a private mount namespace shows it ours
    script = (f"mount --bind {etter} /etc/ettercap/etter.dns && exec ip netns exec {lab.attacker.ns} "
              f"ettercap -T -q -i eth0 -P dns_spoof -M arp:remote /{lab.victim.ip4}// /{L.GW4}//")

    def start():
        p = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                             stdout=open(os.path.join(lab.dir, "ettercap-dns.log"), "ab"), stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        lab.procs.append(p)
    _run_attack(lab, box, start)


def test_bettercap_dns_spoof(lab, box):
    need("bettercap")
    lab.attacker.run("ping", "-c1", "-W2", lab.victim.ip4, check=False)   # bettercap's targets: its ARP cache
    lab.attacker.run("ping", "-c1", "-W2", L.GW4, check=False)
    _run_attack(lab, box, lambda: lab.attacker.spawn(
        "bettercap", "-no-colors", "-no-history", "-iface", "eth0", "-gateway-override", L.GW4, "-eval",
        f"set arp.spoof.targets {lab.victim.ip4}; arp.spoof on; set dns.spoof.domains {NAME}; "
        f"set dns.spoof.address {FORGED}; set dns.spoof.all true; dns.spoof on", name="bettercap-dns",
        env={"HOME": lab.dir, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}))
