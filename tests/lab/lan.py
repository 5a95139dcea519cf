"""The attack lab's LAN: network namespaces on one Linux bridge.

  inet (11.1.1.10, 11.1.1.11: HTTP and HTTPS "public" servers)
    | 10.99.0.0/30
  gw (192.168.77.1, fd77:16::1: router, dnsmasq for DHCP, DNS and RAs)
    |
  [br0 in the switch namespace: the box captures here, as on a mirror port]
    |            |              |
  victim       attacker       (more hosts as a scenario needs)

Every namespace name carries this run's tag (pid and random hex), so labs of
parallel runs never meet; close() kills every process the lab started and
deletes every namespace, also when a test failed.  Traffic never leaves these
namespaces: the "public" addresses live in inet."""
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid

from tests.netns import in_netns

LAN4, LAN6 = "192.168.77", "fd77:16:"
GW4, GW6 = "192.168.77.1", "fd77:16::1"
BANK, SHOP = "11.1.1.10", "11.1.1.11"
DOMAIN = "capbox-lab.net"
NAMES = {f"bank.{DOMAIN}": BANK, f"shop.{DOMAIN}": SHOP, f"www.{DOMAIN}": BANK, f"cdn.{DOMAIN}": BANK}
LAPTOP_MACS = ("02:16:00:00:00:a1", "02:16:00:00:00:a2")   # one fixed lease for two NICs (wired, then wireless)
LAPTOP_IP = f"{LAN4}.120"
HERE = os.path.dirname(os.path.abspath(__file__))


def _run(argv, timeout=30, check=True, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({p.returncode}): {p.stdout}{p.stderr}")
    return p


class Host:
    """One machine of the lab: a namespace with eth0 on the bridge."""

    def __init__(self, lab, name: str, mac: str, ip4: str = "", ip6: str = ""):
        self.lab, self.name, self.mac, self.ip4, self.ip6 = lab, name, mac, ip4, ip6
        self.ns = f"{lab.prefix}-{name}"

    def argv(self, *argv) -> list:
        return ["ip", "netns", "exec", self.ns, *argv]

    def run(self, *argv, timeout: float = 30, check: bool = True, **kw):
        return _run(self.argv(*argv), timeout=timeout, check=check, **kw)

    def spawn(self, *argv, name: str = "", **kw) -> subprocess.Popen:
        """A process in this namespace, stopped by stop() or lab.close()."""
        log = open(os.path.join(self.lab.dir, f"{self.name}-{name or os.path.basename(argv[0])}.log"), "ab")
        p = subprocess.Popen(self.argv(*argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, **kw)
        p.log_path = log.name
        log.close()
        self.lab.procs.append(p)
        return p

    def call(self, fn, *args, **kwargs):
        return in_netns(self.ns, fn, *args, **kwargs)

    def sysctl(self, key: str, value) -> None:
        self.run("sysctl", "-qw", f"{key}={value}")


def stop(p: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 5) -> None:
    """Stop one process the lab started, by its own process group (its session)."""
    if p.poll() is not None:
        return
    try:
        os.killpg(p.pid, sig)
        p.wait(timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(5)


class Lab:
    def __init__(self, workdir: str):
        self.tag = f"{os.getpid() % 100000:05d}{uuid.uuid4().hex[:4]}"
        self.prefix = f"cbl{self.tag}"
        self.dir = workdir
        self.procs: list = []
        self.hosts: dict = {}
        self.namespaces: list = []
        self.sw = None
        self.attacks: list = []      # the running test's attacks (conftest.Attack)
        self._mac = 0x10

    # ---- building -----------------------------------------------------------------------

    def _netns(self, name: str) -> str:
        ns = f"{self.prefix}-{name}"
        _run(["ip", "netns", "add", ns])
        self.namespaces.append(ns)
        # no duplicate address detection: addresses are usable at once, and the kernel sends less
        for key in ("net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"):
            _run(["ip", "netns", "exec", ns, "sysctl", "-qw", key])
        _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        return ns

    def next_mac(self) -> str:
        self._mac += 1
        return f"02:16:00:00:00:{self._mac:02x}"

    def build(self) -> "Lab":
        sw = self._netns("sw")
        self.sw = Host(self, "sw", "")
        self.sw.ns = sw
        _run(["ip", "-n", sw, "link", "add", "br0", "type", "bridge", "ageing_time", "0", "mcast_snooping", "0",
              "stp_state", "0"])
        _run(["ip", "netns", "exec", sw, "sysctl", "-qw", "net.ipv6.conf.br0.disable_ipv6=1"])
        _run(["ip", "-n", sw, "link", "set", "br0", "promisc", "on", "up"])
        gw = self.add("gw", GW4, GW6)
        inet = Host(self, "inet", "")
        self._netns("inet")
        self.hosts["inet"] = inet
        _run(["ip", "-n", gw.ns, "link", "add", "eth1", "type", "veth", "peer", "name", "eth0", "netns", inet.ns])
        gw.run("ip", "addr", "add", "10.99.0.1/30", "dev", "eth1")
        gw.run("ip", "link", "set", "eth1", "up")
        inet.run("ip", "addr", "add", "10.99.0.2/30", "dev", "eth0")
        inet.run("ip", "link", "set", "eth0", "up")
        for addr in (BANK, SHOP):
            inet.run("ip", "addr", "add", f"{addr}/32", "dev", "lo")
        inet.run("ip", "route", "add", "default", "via", "10.99.0.1")
        gw.run("ip", "route", "add", "11.1.1.0/24", "via", "10.99.0.2")
        gw.sysctl("net.ipv4.ip_forward", 1)
        gw.sysctl("net.ipv6.conf.all.forwarding", 1)
        self.victim = self.add("victim", f"{LAN4}.10", f"{LAN6}:10")
        self.attacker = self.add("attacker", f"{LAN4}.66", f"{LAN6}:66")
        self.gw, self.inet = gw, inet
        return self

    def add(self, name: str, ip4: str = "", ip6: str = "", mac: str = "", route: bool = True) -> Host:
        """A host on the bridge: eth0 with these addresses, its default route through gw."""
        h = Host(self, name, mac or self.next_mac(), ip4, ip6)
        self._netns(name)
        port = f"p{len(self.hosts)}{name}"[:15]
        _run(["ip", "-n", self.sw.ns, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", h.ns])
        h.run("ip", "link", "set", "eth0", "address", h.mac)
        _run(["ip", "-n", self.sw.ns, "link", "set", port, "master", "br0", "up"])
        h.run("ip", "link", "set", "eth0", "up")
        if ip4:
            h.run("ip", "addr", "add", f"{ip4}/24", "dev", "eth0")
        if ip6:
            h.run("ip", "-6", "addr", "add", f"{ip6}/64", "dev", "eth0", "nodad")
        if route and name != "gw" and ip4:
            h.run("ip", "route", "add", "default", "via", GW4)
        self.hosts[name] = h
        h.port = port
        return h

    def resolv(self, host: Host, *servers: str) -> None:
        """host's /etc/resolv.conf (ip netns exec binds /etc/netns/NS/resolv.conf over it)."""
        d = f"/etc/netns/{host.ns}"
        os.makedirs(d, exist_ok=True)
        with open(f"{d}/resolv.conf", "w") as f:
            f.write("".join(f"nameserver {s}\n" for s in servers) + "options timeout:2 attempts:1\n")

    def close(self) -> None:
        for p in reversed(self.procs):
            stop(p)
        for ns in reversed(self.namespaces):
            _run(["ip", "netns", "del", ns], check=False)
            shutil.rmtree(f"/etc/netns/{ns}", ignore_errors=True)


def wait_port(host: Host, addr: str, port: int, timeout: float = 15) -> None:
    def probe():
        with socket.create_connection((addr, port), timeout=1):
            return True
    deadline = time.monotonic() + timeout
    while True:
        try:
            host.call(probe)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
