"""The sip and rtp logs of a real call: two user agents in two network
namespaces joined by a veth pair (tests/agent/ua.py: SIP over UDP, an RTP
stream each way), the agent capturing the veth live; when the call is over
its sip record and one rtp record per stream come back from GET
/v1/logs/sip and /rtp with what was sent."""
import subprocess
import sys
import uuid

import pytest

from tests.agent import ua
from tests.agent.conftest import wait_for
from tests.conftest import ROOT

CALLER, CALLEE = "192.0.2.1", "192.0.2.2"      # TEST-NET-1, on the veth pair only


def ip(*args):
    p = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, f"ip {' '.join(args)}: {p.stderr}"


@pytest.fixture
def two_hosts(veth, request):
    """veth.tx moved into a second namespace with the caller's address; veth.rx keeps the callee's."""
    ns = f"capbox-ua-{uuid.uuid4().hex[:8]}"
    ip("netns", "add", ns)
    request.addfinalizer(lambda: subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20))
    ip("-n", veth.ns, "link", "set", veth.tx, "netns", ns)
    ip("-n", ns, "addr", "add", f"{CALLER}/24", "dev", veth.tx)
    ip("-n", ns, "link", "set", veth.tx, "up")
    ip("-n", veth.ns, "addr", "add", f"{CALLEE}/24", "dev", veth.rx)
    return ns


def agent_side(ns: str, role: str, local: str, remote: str) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "tests.agent.ua", role, local, remote],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.root
def test_a_live_call_gives_its_sip_and_rtp_records(make_agent, veth, two_hosts):
    a = make_agent("[capture]\nautostart = false\n[calls]\nended_grace_s = 1\n", veth=veth)
    c = a.client
    assert a.call(c.capture_start, interface=veth.rx, backend="afpacket")["running"]
    callee = agent_side(veth.ns, "callee", CALLEE, CALLER)
    assert callee.stdout.readline().strip() == "ready"
    caller = agent_side(two_hosts, "caller", CALLER, CALLEE)
    for p in (caller, callee):
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 0, out

    def logs(kind: str) -> list:
        return a.call(lambda: list(c.logs(kind, q=ua.CALL_ID)))
    sip = wait_for(lambda: logs("sip"), timeout=60, interval=0.5)
    assert len(sip) == 1
    s = sip[0]
    assert (s["call_id"], s["method"], s["status_code"], s["state"]) == (ua.CALL_ID, "INVITE", 200, "completed"), s
    assert (s["id.orig_h"], s["id.orig_p"], s["id.resp_h"], s["id.resp_p"]) == (CALLER, ua.SIP, CALLEE, ua.SIP)
    assert s["messages"] == 5 and "alice" in s["request_from"] and "bob" in s["request_to"]
    assert s["community_id"].startswith("1:") and s["duration"] >= ua.PACKETS * ua.PTIME

    rtp = wait_for(lambda: logs("rtp"), timeout=30, interval=0.5)
    streams = {(r["id.orig_h"], r["id.orig_p"], r["id.resp_h"], r["id.resp_p"]): r for r in rtp
               if r.get("kind", "rtp") == "rtp"}
    want = {(CALLER, ua.RTP_CALLER, CALLEE, ua.RTP_CALLEE): ua.SSRC["caller"],
            (CALLEE, ua.RTP_CALLEE, CALLER, ua.RTP_CALLER): ua.SSRC["callee"]}
    assert set(streams) == set(want), rtp
    for key, ssrc in want.items():
        r = streams[key]
        assert (r["ssrc"], r["packets"], r["lost"], r["payload_types"], r["uid"]) == \
            (f"0x{ssrc:08x}", ua.PACKETS, 0, [0], s["uid"]), r
        assert r["bytes"] >= ua.PACKETS * 172 and r["community_id"].startswith("1:")
    a.call(c.capture_stop)
