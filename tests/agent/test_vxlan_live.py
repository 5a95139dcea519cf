"""Mirrored traffic in a real VXLAN tunnel: two namespaces joined by a veth
pair, a kernel VXLAN interface (`ip link add ... type vxlan`) in each, an
ARP poisoning and a TLS conversation sent into the tunnel on one side, the
agent capturing the veth on the other.  Its threats and windows must name
the hosts inside the tunnel, never the tunnel's endpoints."""
import json
import subprocess
import time
import uuid

import pytest

from tests.agent.conftest import wait_for
from tests.detectors import scenarios

VNI = 4242
VTEP_A, VTEP_B = "192.0.2.1", "192.0.2.2"   # the tunnel's endpoints (TEST-NET-1, on the veth only)


def ip(*args):
    p = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, f"ip {' '.join(args)}: {p.stderr}"


@pytest.fixture
def vxlan(veth, request):
    """veth.tx moved into a second namespace; a VXLAN interface over each end.
    Returns (the sending namespace, its VXLAN interface)."""
    ns_a = f"capbox-vx-{uuid.uuid4().hex[:8]}"
    ip("netns", "add", ns_a)
    request.addfinalizer(lambda: subprocess.run(["ip", "netns", "del", ns_a], capture_output=True, timeout=20))
    subprocess.run(["ip", "netns", "exec", ns_a, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1"], capture_output=True, timeout=20)
    ip("-n", veth.ns, "link", "set", veth.tx, "netns", ns_a)
    ip("-n", ns_a, "addr", "add", f"{VTEP_A}/24", "dev", veth.tx)
    ip("-n", ns_a, "link", "set", veth.tx, "up")
    ip("-n", veth.ns, "addr", "add", f"{VTEP_B}/24", "dev", veth.rx)
    vx_a, vx_b = f"vxa{uuid.uuid4().hex[:6]}", f"vxb{uuid.uuid4().hex[:6]}"
    for ns, dev, under, local, remote in ((ns_a, vx_a, veth.tx, VTEP_A, VTEP_B),
                                          (veth.ns, vx_b, veth.rx, VTEP_B, VTEP_A)):
        ip("-n", ns, "link", "add", dev, "type", "vxlan", "id", str(VNI), "local", local, "remote", remote,
           "dstport", "4789", "dev", under)
        ip("-n", ns, "link", "set", dev, "up")
    return ns_a, vx_a


def send_into(ns: str, dev: str, path) -> None:
    p = subprocess.run(["ip", "netns", "exec", ns, "tcpreplay", f"--intf1={dev}", "--pps=200", str(path)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.root
def test_threats_and_windows_name_the_hosts_inside_the_tunnel(make_agent, veth, vxlan, tmp_path):
    ns_a, vx_a = vxlan
    a = make_agent('[capture]\nautostart = false\n[analysis]\nwindow_s = 1\n', veth=veth)
    c = a.client
    st = a.call(c.capture_start, interface=veth.rx, backend="afpacket")
    assert st["running"]
    time.sleep(0.3)
    poison = scenarios.arp_poison_gateway().write(tmp_path)
    tls = scenarios.tls_forced_down().write(tmp_path)
    send_into(ns_a, vx_a, poison)
    send_into(ns_a, vx_a, tls)

    def threats():
        return a.call(c.get, "/v1/threats")["threats"]
    wait_for(lambda: any(t["attack_type"] == "arp_spoof" for t in threats()), timeout=30, interval=0.5)
    found = threats()
    text = json.dumps(found)
    assert scenarios.ATTACKER_MAC in text and scenarios.GW in text
    assert VTEP_A not in text and VTEP_B not in text

    flows = a.call(c.capture_flows, limit=1000)["flows"]
    inner = [f for f in flows if f.get("tunnel") == "vxlan"]
    assert inner and all(f["tunnel_id"] == VNI and {f["tunnel_src"], f["tunnel_dst"]} == {VTEP_A, VTEP_B}
                         for f in inner)
    assert {f["src"] for f in inner} >= {scenarios.VICTIM}
    assert not any(f["dport"] == 4789 for f in flows)   # the tunnel itself is not a flow
    a.call(c.capture_stop)
    wait_for(lambda: a.call(c.get, "/v1/windows")["set"]["status"] == "complete", timeout=30)
    windows = json.dumps(a.call(c.get, "/v1/windows", limit=1000)["windows"])
    assert scenarios.VICTIM in windows and VTEP_A not in windows and VTEP_B not in windows
