"""A veth pair in a private network namespace, for live capture tests.

Each `veth` fixture gets its own namespace (unique name) holding one veth pair
with IPv6 disabled and no addresses, so the kernel itself sends nothing on it:
what a capture sees is exactly what tcpreplay put on the wire.  The namespace
(and the pair with it) is deleted in a finalizer, also when the test fails.
Work inside the namespace runs in a short-lived thread that setns()es into it;
sockets opened there stay there, so they can be used from any thread after.
"""
import ctypes
import functools
import itertools
import os
import re
import shutil
import socket
import subprocess
import time
import uuid

import pytest

from agent.verify.paths import in_namespace
from hwdrivers import CaptureConfig, Session

MTUS = (65535, 9000)   # 65535 lets ndpi__1kxun's 37 kB GRO frames through
REPLAY_PPS = 5000      # slow enough that each frame is through the veth before the next
_libc = ctypes.CDLL(None, use_errno=True)
_seq = itertools.count()


def _root_tools():
    if os.geteuid() != 0:
        pytest.skip("live capture tests need root (veth pairs, network namespaces, raw sockets)")
    for tool in ("ip", "tcpreplay"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (make test installs it)")
    if not os.path.isdir("/proc/self/ns") or not hasattr(_libc, "setns"):
        pytest.skip("no network namespaces here")


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=20)


def in_netns(ns: str, fn, *args, **kwargs):
    """fn(*args, **kwargs) in a thread that joined namespace ns (the verifier's own way in); its result or its
    exception.  Sockets made there stay there, so they can be used from any thread after."""
    return in_namespace(ns, functools.partial(fn, *args, **kwargs))


class Veth:
    """A veth pair tx <-> rx inside the network namespace ns."""

    def __init__(self, ns: str, tx: str, rx: str):
        self.ns, self.tx, self.rx = ns, tx, rx
        self.mtu = None

    # -- running things inside the namespace -------------------------------
    def call(self, fn, *args, **kwargs):
        """fn(*args) in a thread that joined the namespace; its result or its exception."""
        return in_netns(self.ns, fn, *args, **kwargs)

    def argv(self, *argv) -> list:
        return ["ip", "netns", "exec", self.ns, *argv]

    def session(self, **config) -> Session:
        """A Session capturing on rx (config: CaptureConfig fields)."""
        config.setdefault("source", self.rx)
        return self.call(Session, CaptureConfig(**config))

    def ifindex(self, name: str) -> int:
        return self.call(socket.if_nametoindex, name)

    # -- traffic -------------------------------------------------------------
    def replay(self, path: str, pps=REPLAY_PPS, iface=None) -> dict:
        """tcpreplay path into tx (or iface); what tcpreplay says it sent."""
        # pps: packets a second; None: as fast as it can; 0: at the capture's recorded pace
        rate = ["--topspeed"] if pps is None else [] if pps == 0 else [f"--pps={pps}"]
        p = subprocess.run(self.argv("tcpreplay", f"--intf1={iface or self.tx}", *rate, path),
                           capture_output=True, text=True, timeout=60)
        out = p.stdout + p.stderr
        assert p.returncode == 0, f"tcpreplay failed ({p.returncode}):\n{out}"
        sent = re.search(r"Successful packets:\s+(\d+)", out)
        failed = re.search(r"Failed packets:\s+(\d+)", out)
        actual = re.search(r"Actual:\s+(\d+) packets \((\d+) bytes\)", out)
        assert sent and failed and actual, f"cannot read tcpreplay's report:\n{out}"
        return {"packets": int(sent.group(1)), "failed": int(failed.group(1)),
                "bytes": int(actual.group(2)), "output": out}


def make_veth(request):
    """A fresh namespace with a veth pair (both ends up, IPv6 off, MTU 65535 or 9000)."""
    _root_tools()
    tag = f"{os.getpid() % 100000:05d}{next(_seq):02d}{uuid.uuid4().hex[:4]}"
    ns = f"capbox-test-{tag}"
    v = Veth(ns, f"cbx{tag}a"[:15], f"cbx{tag}b"[:15])
    r = _ip("netns", "add", ns, check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {r.stderr.strip()}")
    request.addfinalizer(lambda: _ip("netns", "del", ns, check=False))

    def disable_ipv6(*names):
        for name in names:
            path = f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6"
            if os.path.exists(path):
                with open(path, "w") as f:
                    f.write("1")

    # before the pair exists too, so no link-local address or router solicitation ever starts
    v.call(disable_ipv6, "default", "all")
    r = _ip("-n", ns, "link", "add", v.tx, "type", "veth", "peer", "name", v.rx, check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot create a veth pair: {r.stderr.strip()}")
    v.call(disable_ipv6, v.tx, v.rx)
    for mtu in MTUS:
        if all(_ip("-n", ns, "link", "set", dev, "mtu", str(mtu), check=False).returncode == 0
               for dev in (v.tx, v.rx)):
            v.mtu = mtu
            break
    for dev in (v.tx, v.rx, "lo"):  # lo: an agent in the namespace serves REST on 127.0.0.1
        _ip("-n", ns, "link", "set", dev, "up")
    # wait for carrier on both ends
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        shown = _ip("-n", ns, "-o", "link", "show").stdout
        if shown.count("LOWER_UP") >= 2:
            break
        time.sleep(0.02)
    return v
