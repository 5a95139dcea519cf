"""Capture control over REST against the real agent process."""
import json
import subprocess
import sys
import threading
import time

import pytest

from agent import report
from agent.client import ApiError
from tests.agent.conftest import wait_for
from tests.conftest import ROOT, pcap


def cli_flows(path: str, bpf: str = "") -> list:
    out = subprocess.run([sys.executable, "-m", "agent", "flows", "--json", "--bpf", bpf, path],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [json.loads(line) for line in out.splitlines()]


def flow_key(f: dict) -> tuple:
    return (f["src"], f["dst"], f["sport"], f["dport"], f["proto"], f["vlan"], f["packets"], f["bytes"])


def test_backends_report_capabilities_and_availability(agent):
    items = {b["name"]: b for b in agent.client.get("/v1/capture/backends")["backends"]}
    assert set(items) >= {"pcapfile", "pcap", "afpacket"}
    assert "file" in items["pcapfile"]["capabilities"] and items["pcapfile"]["available"]
    assert "fanout" in items["afpacket"]["capabilities"]


def test_idle_answers(agent):
    st = agent.client.capture_status()
    assert st["running"] is False and st["message"] == "no active capture"
    for path in ("/v1/capture/metrics", "/v1/capture/flows"):
        with pytest.raises(ApiError) as e:
            agent.client.get(path)
        assert (e.value.status, e.value.code) == (409, "NOT_CAPTURING")
    stop = agent.client.capture_stop()
    assert stop["stopped"] is False and stop["message"] == "no active capture"


def test_file_capture_flows_equal_capbox_flows(agent):
    """Every flow of the file reaches flows:expired, equal to `capbox flows` on it."""
    src = pcap("zeek__wikipedia.pcap")
    name = agent.pcap(src)
    seen, ready = [], threading.Event()

    def listen():
        for ev in agent.client.events(channels="flows:expired,capture:state", timeout=30):
            ready.set()
            if ev["event"] == "flow_expired":
                seen.append(ev["data"]["data"])
            if ev["event"] == "capture_stopped":
                return
    t = threading.Thread(target=listen, daemon=True)
    t.start()
    time.sleep(0.5)  # the stream subscribes as it opens
    st = agent.client.capture_start(file=name)
    assert st["running"] is True and st["backend"] == "pcapfile" and st["file"].endswith(name)
    t.join(30)
    assert not t.is_alive()
    last = agent.client.capture_status()["last_run"]
    assert last["reason"] == "eof" and last["stats"]["packets"] == 136
    assert sorted(map(flow_key, seen)) == sorted(map(flow_key, cli_flows(src)))


def test_paced_capture_status_metrics_flows_stop(agent):
    name = agent.pcap(pcap("ndpi__1kxun.pcap"))
    agent.client.capture_start(file=name, pace=1.0, bpf="tcp or udp")
    wait_for(lambda: agent.client.capture_status()["stats"]["packets"] > 20)
    st = agent.client.capture_status()
    assert st["running"] and st["bpf"] == "tcp or udp" and st["duration"] > 0
    m = agent.client.capture_metrics()
    assert m["packets"] > 0 and set(m["drops"]) >= {"kernel", "interface", "event_ring", "flow_ring"}
    assert m["rings"]["event_ring_capacity"] >= 1024
    flows = agent.client.capture_flows(limit=5, sort="packets")
    assert 0 < flows["count"] <= 5
    packets = [f["packets"] for f in flows["flows"]]
    assert packets == sorted(packets, reverse=True)
    tcp = agent.client.capture_flows(proto="tcp", min_packets=2)["flows"]
    assert all(f["proto"] == "tcp" and f["packets"] >= 2 for f in tcp)
    with pytest.raises(ApiError) as e:
        agent.client.capture_start(file=name)
    assert (e.value.status, e.value.code) == (409, "ALREADY_CAPTURING")
    stop = agent.client.capture_stop("test over")
    assert stop["stopped"] is True and stop["running"] is False
    assert agent.client.capture_status()["last_run"]["reason"] == "test over"


def test_duration_stops_by_itself(agent):
    name = agent.pcap(pcap("ndpi__gnutella.pcap"))
    agent.client.capture_start(file=name, pace=1.0, duration=1.0)
    wait_for(lambda: not agent.client.capture_status()["running"], timeout=10)
    assert agent.client.capture_status()["last_run"]["reason"] == "duration"


def test_demo_source_and_flow_meter(agent):
    meter = agent.client.post("/v1/capture/flow-meter", {"enable": True, "flow_timeout_sec": 60})
    assert meter["idle_timeout_s"] == 60 and meter["enabled"] is True
    st = agent.client.capture_start(file="demo", pace=1.0, loop=True)
    assert st["flow_meter"]["idle_timeout_s"] == 60
    wait_for(lambda: agent.client.capture_status()["stats"]["packets"] > 0)
    assert agent.client.get("/v1/status")["system"]["mode"] == "demo"
    agent.client.capture_stop()


@pytest.mark.parametrize("body,field", [
    ({"file": "../../etc/passwd"}, "file"),
    ({"file": "/etc/passwd"}, "file"),
    ({"file": "nothere.pcap"}, "file"),
    ({"interface": "nosuchif0"}, "interface"),
    ({"interface": "lo", "file": "x.pcap"}, "file"),
    ({"file": "demo", "backend": "afpacket"}, "backend"),
    ({"file": "demo", "bpf": "tcp port"}, "bpf"),
    ({"file": "demo", "snaplen": 10}, "snaplen"),
    ({"file": "demo", "buffer_size_mb": "big"}, "buffer_size_mb"),
    ({"file": "demo", "colour": "red"}, "colour"),
    ({}, "interface"),
])
def test_bad_start_requests(agent, body, field):
    with pytest.raises(ApiError) as e:
        agent.client.capture_start(**body)
    assert e.value.status in (400, 403)
    assert e.value.details.get("field") == field
    if body.get("file", "").startswith(("/", "..")):
        assert (e.value.status, e.value.code) == (403, "FORBIDDEN")
    assert agent.client.capture_status()["running"] is False


def test_a_damaged_file_ends_the_run_with_its_error(agent, tmp_path):
    data = open(pcap("zeek__wikipedia.pcap"), "rb").read()
    cut = agent.data_dir / "pcaps" / "cut.pcap"
    cut.write_bytes(data[: len(data) // 2])
    agent.client.capture_start(file="cut.pcap")
    wait_for(lambda: not agent.client.capture_status()["running"])
    last = agent.client.capture_status()["last_run"]
    assert last["reason"] == "error" and "middle of packet" in last["error"]
    assert 0 < last["stats"]["packets"] < 136
    assert agent.client.health()["status"] in ("healthy", "degraded")


@pytest.mark.root
@pytest.mark.parametrize("backend", ["afpacket", "pcap"])
def test_interface_capture_over_rest(make_agent, veth, backend):
    """The agent in a namespace with a veth pair: start on the interface over
    REST, replay a capture into the other end, read status, metrics and flows."""
    src = pcap("zeek__wikipedia.pcap")
    a = make_agent(veth=veth)
    c = a.client
    st = a.call(c.capture_start, interface=veth.rx, backend=backend, bpf="not ip6")
    assert st["running"] and st["interface"] == veth.rx and st["backend"] == backend
    time.sleep(0.3)
    sent = veth.replay(src)
    want = cli_flows(src, "not ip6")
    expect = report.analyze(src, report.Options(bpf="not ip6"))["packets"]
    assert sent["packets"] == 136 and expect == 131
    wait_for(lambda: a.call(c.capture_metrics)["packets"] >= expect)
    time.sleep(0.2)
    m = a.call(c.capture_metrics)
    assert m["packets"] == expect
    assert m["drops"]["kernel"] == 0 and m["received"] >= m["packets"]
    flows = a.call(c.capture_flows, limit=1000)["flows"]
    assert sorted(map(flow_key, flows)) == sorted(map(flow_key, want))
    stop = a.call(c.capture_stop)
    assert stop["stopped"] and stop["last_run"]["stats"]["packets"] == m["packets"]
