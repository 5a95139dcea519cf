"""The benign twins of the attacks: what a healthy LAN does that looks like
them.  Each runs on the same lab, with real software, and must raise
nothing above low."""
import os
import signal
import sys
import time

from tests.conftest import ROOT
from tests.lab import lan as L
from tests.lab.conftest import above_low, dhcp, need, warm_up


def _keepalived(lab, host, priority: int):
    conf = os.path.join(lab.dir, f"keepalived-{host.name}.conf")
    with open(conf, "w") as f:
        f.write("global_defs {\n  enable_script_security\n}\n"
                "vrrp_instance lab {\n  state BACKUP\n  interface eth0\n  virtual_router_id 77\n"
                f"  priority {priority}\n  advert_int 1\n  virtual_ipaddress {{\n    {L.LAN4}.254/24\n  }}\n}}\n")
    return host.spawn("keepalived", "-n", "-l", "-G", "-f", conf, "-p", f"{lab.dir}/ka-{host.name}.pid",
                      "-r", f"{lab.dir}/ka-{host.name}-vrrp.pid", "-c", f"{lab.dir}/ka-{host.name}-chk.pid",
                      name="keepalived")


def _holds_vip(host) -> bool:
    return f"{L.LAN4}.254/" in host.run("ip", "-4", "addr", "show", "dev", "eth0").stdout


def _wait(cond, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def test_layer2_life(lab, box):
    """VRRP failover (keepalived) of the victim's gateway address, a fixed DHCP lease moving from one NIC to
    another after a release, a replaced NIC, and the router's own RAs: no threat above low."""
    need("keepalived", "dhclient")
    warm_up(lab, box)
    # VRRP: r1 is master of .254, r2 takes over when r1 goes away; the victim routes through .254
    r1 = lab.hosts.get("r1") or lab.add("r1", f"{L.LAN4}.2")
    r2 = lab.hosts.get("r2") or lab.add("r2", f"{L.LAN4}.3")
    k1 = _keepalived(lab, r1, 150)
    _keepalived(lab, r2, 100)
    _wait(lambda: _holds_vip(r1))
    lab.victim.run("ping", "-c2", "-i0.3", "-W1", f"{L.LAN4}.254", check=False)
    os.killpg(k1.pid, signal.SIGTERM)
    _wait(lambda: _holds_vip(r2))
    lab.victim.run("ping", "-c3", "-i0.5", "-W1", f"{L.LAN4}.254", check=False)
    # a lease moving to a new MAC after a release (the laptop's wired NIC, then its wireless one)
    for i, mac in enumerate(L.LAPTOP_MACS):
        h = lab.hosts.get(f"nic{i}") or lab.add(f"nic{i}", mac=mac, route=False)
        assert dhcp(h).returncode == 0
        h.run("ip", "addr", "add", f"{L.LAPTOP_IP}/24", "dev", "eth0", check=False)
        h.run("ping", "-c1", "-W1", L.GW4, check=False)
        dhcp(h, release=True)
        h.run("ip", "addr", "del", f"{L.LAPTOP_IP}/24", "dev", "eth0", check=False)
    # a replaced NIC: the same host, the same address, a new MAC
    pc = lab.hosts.get("pc") or lab.add("pc", f"{L.LAN4}.20")
    pc.run("ping", "-c1", "-W1", L.GW4, check=False)
    pc.run("ip", "link", "set", "eth0", "down")
    pc.run("ip", "link", "set", "eth0", "address", lab.next_mac())
    pc.run("ip", "link", "set", "eth0", "up")
    pc.run("ip", "route", "replace", "default", "via", L.GW4)
    pc.run("ping", "-c2", "-W1", L.GW4, check=False)
    lab.victim.run("ping", "-c1", "-W1", f"{L.LAN4}.20", check=False)
    time.sleep(5)                  # the router's RAs (every 4 s) go on meanwhile
    assert above_low(box) == []


def test_dns_life(lab, box):
    """Two resolvers answering one query differently (a stub with --all-servers), DNS round robin, and a CDN
    rotating its addresses with short TTLs: no threat above low."""
    warm_up(lab, box)
    dns2 = lab.hosts.get("dns2") or lab.add("dns2", f"{L.LAN4}.53")
    hosts = os.path.join(lab.dir, "cdn.hosts")
    with open(hosts, "w") as f:
        f.write(f"{L.SHOP} cdn.{L.DOMAIN}\n")
    p = dns2.spawn("dnsmasq", "-k", "--interface=eth0", "--bind-interfaces", "--no-resolv", "--no-hosts",
                   f"--addn-hosts={hosts}", "--local-ttl=20", f"--pid-file={lab.dir}/dns2.pid", "--log-facility=-",
                   name="dnsmasq")
    L.wait_port(lab.victim, f"{L.LAN4}.53", 53)
    lab.victim.spawn("dnsmasq", "-k", "--listen-address=127.0.0.53", "--bind-interfaces", "--no-resolv",
                            "--no-hosts", "--all-servers", f"--server={L.GW4}", f"--server={L.LAN4}.53",
                            f"--pid-file={lab.dir}/stub.pid", "--log-facility=-", "--cache-size=0", name="stub")
    time.sleep(1)
    for _ in range(3):
        lab.victim.run("dig", "+tries=1", "+time=2", "@127.0.0.53", f"cdn.{L.DOMAIN}", check=False)
        lab.victim.run("dig", "+tries=1", "+time=2", f"@{L.GW4}", f"rr.{L.DOMAIN}", check=False)
    for addr in (L.BANK, L.SHOP, L.BANK):     # the CDN rotates its answer
        with open(hosts, "w") as f:
            f.write(f"{addr} cdn.{L.DOMAIN}\n")
        os.killpg(p.pid, signal.SIGHUP)              # dnsmasq reads its hosts files again
        time.sleep(0.3)
        lab.victim.run("dig", "+tries=1", "+time=2", f"@{L.LAN4}.53", f"cdn.{L.DOMAIN}", check=False)
    time.sleep(1)
    assert above_low(box) == []


def test_https_upgrade_and_login(lab, box):
    """The victim opens http://bank, is redirected to https (an upgrade), and logs in over HTTPS."""
    warm_up(lab, box)
    lab.resolv(lab.victim, L.GW4)
    out = lab.victim.run(sys.executable, "-m", "tests.lab.browser", f"http://bank.{L.DOMAIN}/", lab.certs["ca"],
                         cwd=ROOT, check=False)
    assert "POST https://" in out.stdout, out.stdout + out.stderr
    time.sleep(1)
    assert above_low(box) == []
