"""`[capture] interface_wait_s`: the agent started before its capture interface exists (the image
starts it while udev is still bringing the NIC up) waits for it, then captures on it; an interface
that never comes leaves the agent up, not capturing, and saying so.  In a namespace of its own."""
import subprocess

from tests.agent.conftest import wait_for


def config(name: str, wait_s: int) -> str:
    return f'[capture]\nsource = "{name}"\nbackend = "afpacket"\nautostart = true\ninterface_wait_s = {wait_s}\n'


def test_the_capture_starts_once_its_interface_appears(make_agent, veth):
    late = f"{veth.rx[:-1]}w"            # unique like the pair: the test's own tag
    a = make_agent(config(late, 120), veth=veth)
    # the API answers while the agent waits; it is not capturing yet
    assert not a.call(a.client.capture_status)["running"]
    subprocess.run(["ip", "-n", veth.ns, "link", "add", late, "type", "veth", "peer", "name", f"{late[:-1]}x"],
                   check=True, capture_output=True, timeout=20)
    subprocess.run(["ip", "-n", veth.ns, "link", "set", late, "up"], check=True, capture_output=True, timeout=20)
    st = wait_for(lambda: (s := a.call(a.client.capture_status))["running"] and s, timeout=60)
    assert st["interface"] == late and st["backend"] == "afpacket"
    assert "no interface" not in a.output()


def test_an_interface_that_never_comes_is_said(make_agent, veth):
    missing = f"{veth.rx[:-1]}n"
    a = make_agent(config(missing, 1), veth=veth)
    wait_for(lambda: "capture did not start" in a.output(), timeout=60)
    assert f"no interface {missing} after 1 s" in a.output()
    assert not a.call(a.client.capture_status)["running"]
    assert a.proc.poll() is None
