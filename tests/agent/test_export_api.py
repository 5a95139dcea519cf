"""Flow export over REST against the real agent process and the real nfcapd:
exporters set before a capture or during one, listed with their counters,
removed; bad requests get the error envelope."""
import collections

import pytest

from agent.client import ApiError, Client
from tests.agent.conftest import IDLE, wait_for
from tests.collector import TcpRelay, expected_uniflows, nf_key
from tests.conftest import pcap
from tests.hwdrivers.conftest import offline_flows


def nf_uniflows(records):
    return collections.Counter((nf_key(r), r["in_packets"], r["in_bytes"]) for r in records)


def run_file(agent, name: str) -> dict:
    agent.client.capture_start(file=name)
    return wait_for(lambda: agent.client.capture_status().get("last_run"), timeout=30)


def collector_host_port(c) -> dict:
    host, port = c.address.split(":")
    return {"collector_ip": host, "collector_port": int(port)}


def test_an_exporter_set_before_the_capture_gets_every_flow(agent, nfcapd):
    src = pcap("zeek__wikipedia.pcap")
    name = agent.pcap(src)
    c = nfcapd()
    e = agent.client.post("/v1/capture/export", {**collector_host_port(c), "version": "v9", "export_interval_sec": 1})
    assert e["state"] == "waiting for a capture" and e["transport"] == "udp" and e["id"] == 1
    run_file(agent, name)
    (x,) = agent.client.get("/v1/capture/export")["exporters"]
    rows = offline_flows(src)
    want = collections.Counter(expected_uniflows(rows))
    assert x["counters"]["flows"] == len(rows) and x["counters"]["records"] == sum(want.values())
    assert x["counters"]["records_dropped"] == 0 and x["state"] == "waiting for a capture"
    assert nf_uniflows(c.records()) == want


def test_defaults_are_the_seeds(agent):
    e = agent.client.post("/v1/capture/export", {"collector_ip": "127.0.0.1"})
    assert (e["collector_port"], e["export_interval_sec"], e["version"]) == (9995, 60, "ipfix")
    assert agent.client.get(f"/v1/capture/export/{e['id']}")["id"] == e["id"]


def test_an_exporter_added_to_a_running_capture_exports_at_once(agent, nfcapd):
    name = agent.pcap(pcap("ndpi__1kxun.pcap"))
    c = nfcapd()
    agent.client.post("/v1/capture/flow-meter", {"idle_timeout_s": 1})
    agent.client.capture_start(file=name, pace=20)
    e = agent.client.post("/v1/capture/export", {**collector_host_port(c), "export_interval_sec": 1})
    assert e["state"] == "exporting" and e["connected"] is True
    live = wait_for(lambda: (x := agent.client.get(f"/v1/capture/export/{e['id']}"))["counters"]["records"] and x)
    assert live["sequence"] > 0
    gone = agent.client.delete(f"/v1/capture/export/{e['id']}")
    assert gone["counters"]["records"] >= live["counters"]["records"]
    with pytest.raises(ApiError) as err:
        agent.client.get(f"/v1/capture/export/{e['id']}")
    assert err.value.code == "NOT_FOUND"
    agent.client.capture_stop()
    got = c.records()
    assert len(got) == gone["counters"]["records"] > 0


def test_ipfix_over_tcp_while_capturing(agent, nfcapd):
    src = pcap("zeek__wikipedia.pcap")
    name = agent.pcap(src)
    c = nfcapd()
    relay = TcpRelay(c.address)
    host, port = relay.address.split(":")
    agent.client.post("/v1/capture/export", {"collector_ip": host, "collector_port": int(port), "transport": "tcp",
                                             "export_interval_sec": 1})
    run_file(agent, name)
    agent.client.delete("/v1/capture/export/1")
    relay.join()
    assert relay.errors == []
    assert nf_uniflows(c.records()) == collections.Counter(expected_uniflows(offline_flows(src)))


def test_collectors_from_the_configuration(make_agent, nfcapd):
    src = pcap("zeek__wikipedia.pcap")
    c = nfcapd()
    a = make_agent(IDLE + f'[export]\ncollectors = ["v5://{c.address}"]\nexport_interval_s = 1\n')
    (e,) = a.client.get("/v1/capture/export")["exporters"]
    assert e["source"] == "config" and e["version"] == "v5"
    run_file(a, a.pcap(src))
    want = [((*k[:5], 0), p, b) for k, p, b in expected_uniflows(offline_flows(src), family=4)]
    assert nf_uniflows(c.records()) == collections.Counter(want)


def test_a_bad_collector_in_the_configuration_stops_the_start(tmp_path):
    import subprocess
    import sys
    from tests.conftest import ROOT
    cfg = tmp_path / "capbox.toml"
    cfg.write_text('[export]\ncollectors = ["netflow://1.2.3.4"]\n')
    p = subprocess.run([sys.executable, "-m", "agent", "run", "--config", str(cfg), "--data-dir", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "export.collectors" in p.stderr


def test_bad_export_requests(agent):
    post = lambda body: agent.client.post("/v1/capture/export", body)  # noqa: E731
    for body, field in [
        ({}, "collector_ip"),
        ({"collector_ip": "127.0.0.1", "collector_port": 0}, "collector_port"),
        ({"collector_ip": "127.0.0.1", "version": "v7"}, "version"),
        ({"collector_ip": "127.0.0.1", "version": "v9", "transport": "tcp"}, "transport"),
        ({"collector_ip": "127.0.0.1", "version": "v5", "biflow": True}, "biflow"),
        ({"collector_ip": "no-such-host.invalid"}, "collector_ip"),
        ({"collector_ip": "127.0.0.1", "export_interval_sec": 0}, "export_interval_sec"),
        ({"collector_ip": "127.0.0.1", "colector_port": 1}, "colector_port"),
    ]:
        with pytest.raises(ApiError) as e:
            post(body)
        assert (e.value.status, e.value.code, e.value.details.get("field")) == (400, "VALIDATION_ERROR", field), body
    post({"collector_ip": "127.0.0.1", "collector_port": 2055})
    with pytest.raises(ApiError) as e:
        post({"collector_ip": "127.0.0.1", "collector_port": 2055})
    assert e.value.code == "CONFLICT"
    with pytest.raises(ApiError) as e:
        agent.client.delete("/v1/capture/export/99")
    assert e.value.code == "NOT_FOUND"
    token = agent.client.post("/v1/keys", {"kind": "pk", "name": "reader"})["key"]
    reader = Client(agent.url, token)
    assert reader.get("/v1/capture/export")["count"] == 1
    with pytest.raises(ApiError) as e:
        reader.post("/v1/capture/export", {"collector_ip": "127.0.0.1"})
    assert e.value.code == "FORBIDDEN"


def test_tcp_to_a_closed_port_during_a_capture_is_refused(agent):
    agent.client.capture_start(file=agent.pcap(pcap("ndpi__1kxun.pcap")), pace=1)
    with pytest.raises(ApiError) as e:
        agent.client.post("/v1/capture/export", {"collector_ip": "127.0.0.1", "collector_port": 1, "transport": "tcp"})
    assert (e.value.status, e.value.details.get("field")) == (400, "collector_port")
    assert agent.client.get("/v1/capture/export")["count"] == 0


def test_exporters_added_over_rest_survive_a_restart(make_agent, nfcapd):
    """An exporter set over REST is still there, with its id, after the agent restarts, and exports."""
    c = nfcapd()
    a = make_agent(IDLE)
    kept = a.client.post("/v1/capture/export", {**collector_host_port(c), "version": "v9", "export_interval_sec": 1})
    gone = a.client.post("/v1/capture/export", {"collector_ip": "127.0.0.1", "collector_port": 9})
    a.client.delete(f"/v1/capture/export/{gone['id']}")
    a.stop()
    a = make_agent(IDLE)                       # the same data directory
    (x,) = a.client.get("/v1/capture/export")["exporters"]
    assert (x["id"], x["source"], x["version"], x["export_interval_sec"]) == (kept["id"], "api", "v9", 1)
    assert x["state"] == "waiting for a capture"
    src = pcap("zeek__wikipedia.pcap")
    run_file(a, a.pcap(src))
    assert nf_uniflows(c.records()) == collections.Counter(expected_uniflows(offline_flows(src)))
