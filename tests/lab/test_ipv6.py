"""IPv6 neighbour discovery attacks by thc-ipv6: parasite6 (NA spoofing, the
IPv6 ARP spoofer), fake_router6 (a rogue router), flood_router6 (an RA
flood).  The lab's router (dnsmasq on gw) advertises fd77:16::/64 every few
seconds, as a real one does."""
import subprocess
import time

from tests.lab import lan as L
from tests.lab.conftest import (DETECT_S, POLL_S, Attack, assert_attributed, need, threats, ts, wait_threat,
                                wait_threat_while, warm_up)


def link_local(host) -> str:
    return addresses(host, "link")[0]


def addresses(host, scope: str = "") -> tuple:
    """host's IPv6 addresses on eth0 (its static one, SLAAC's from the router's prefix, its link-local)."""
    out = host.run("ip", "-6", "-o", "addr", "show", "dev", "eth0", *(["scope", scope] if scope else [])).stdout
    return tuple(line.split("inet6 ")[1].split("/")[0] for line in out.splitlines() if "inet6 " in line)


def router_heard(lab, box, timeout: float = 20.0) -> None:
    """A box on a running network has heard its router before any attack: the first router heard is the known
    one.  The lab's router advertises every 4 s, but a fixed wait from the capture's start was not always
    enough (the attacker's RA then came first, and the real router was the "unknown" one): wait until the
    box's own recording of the wire holds one of the router's RAs."""
    ra = f"icmp6 and ip6[40] == 134 and ether src {lab.gw.mac}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["tcpdump", "-r", box.pcap_path, "-c", "1", ra], capture_output=True, text=True)
        if out.stdout.strip():
            time.sleep(0.5)             # the box read the same frame: its detectors are past it
            return
        time.sleep(0.2)
    raise AssertionError(f"the router's RA was not seen in {timeout:.0f} s")


def reach_router6(lab) -> None:
    """The victim reaches the router over IPv6, forgetting its neighbours first (as after a reboot or a cache
    expiry), so it asks who the router is."""
    lab.victim.run("ip", "-6", "neigh", "flush", "dev", "eth0", check=False)
    lab.victim.run("ping", "-6", "-c1", "-W1", L.GW6, check=False)


def test_parasite6(lab, box):
    need("atk6-parasite6")
    warm_up(lab, box)
    attack = Attack(lab, lab.attacker, "icmp6 and ip6[40] == 136")
    lab.attacker.spawn("atk6-parasite6", "eth0", name="parasite6")
    t = wait_threat_while(box, "ndp_spoof", lab.attacker.mac, lambda: reach_router6(lab))
    assert_attributed(t, lab.attacker, attack, lab.victim.ip6, L.GW6, link_local(lab.gw), link_local(lab.victim),
                      own=addresses(lab.attacker))


def test_fake_router6(lab, box):
    need("atk6-fake_router6")
    warm_up(lab, box)
    router_heard(lab, box)
    attack = Attack(lab, lab.attacker, "icmp6 and ip6[40] == 134")
    lab.attacker.spawn("atk6-fake_router6", "eth0", "2001:db8:dead::/64", name="fake_router6")
    t = wait_threat(box, "rogue_ra", lab.attacker.mac)
    assert_attributed(t, lab.attacker, attack, L.GW6, link_local(lab.gw), own=(link_local(lab.attacker),))


def test_flood_router6(lab, box):
    """flood_router6 forges a random Ethernet source (and link-local) for every RA, so no frame carries the
    attacker's MAC: a box on a mirror port cannot name it (the switch port could).  What it can do: raise one
    flood threat, not one per forged router, within 5 s, and never blame the real router."""
    need("atk6-flood_router6")
    warm_up(lab, box)
    router_heard(lab, box)
    attack = Attack(lab, lab.attacker, "icmp6 and ip6[40] == 134", own_mac=False)   # on the attacker's port
    lab.attacker.spawn("atk6-flood_router6", "eth0", name="flood_router6")
    deadline = time.monotonic() + POLL_S
    while not (floods := [t for t in threats(box) if t["attack_type"] == "rogue_ra" and "flood" in t["description"]]):
        assert time.monotonic() < deadline, threats(box)
        time.sleep(0.3)
    time.sleep(2)                                      # the flood goes on: still one threat (a few at most)
    rogue = [t for t in threats(box) if t["attack_type"] == "rogue_ra"]
    assert len(rogue) <= 3, [(t["attacker_mac"], t["description"]) for t in rogue]
    assert all(t["attacker_mac"] != lab.gw.mac for t in rogue), rogue
    assert floods[0]["severity"] in ("high", "critical")
    assert ts(floods[0]["first_seen"]) - attack.t0 <= DETECT_S
