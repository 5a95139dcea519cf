"""Windows, anomalies and baselines over REST against the real agent, and
the live path against the pcap path on a veth pair."""
import csv
import io
import json
import subprocess
import threading
import time

import pytest

from agent.analysis import anomalies
from agent.analysis import windows as offline
from agent.client import ApiError
from tests.agent.conftest import wait_for
from tests.conftest import pcap


def compute(agent, name: str, **body):
    c = agent.client
    r = c.post("/v1/windows/compute", {"pcap_file": agent.pcap(pcap(name)), **body})
    assert r["status_url"] == f"/v1/windows/jobs/{r['job_id']}"
    job = wait_for(lambda: (lambda j: j if j["status"] in ("complete", "failed") else None)(c.get(r["status_url"])))
    assert job["status"] == "complete" and job["progress"] == 100
    return job


def test_nothing_computed_yet(agent):
    for path in ("/v1/windows", "/v1/windows/summary", "/v1/anomalies", "/v1/anomalies/by-type"):
        with pytest.raises(ApiError) as e:
            agent.client.get(path)
        assert (e.value.status, e.value.code) == (400, "METRICS_NOT_COMPUTED") and e.value.details["hint"]
    with pytest.raises(ApiError) as e:
        agent.client.post("/v1/anomalies/detect", {})
    assert e.value.code == "METRICS_NOT_COMPUTED"
    with pytest.raises(ApiError) as e:
        agent.client.get("/v1/baselines/bandwidth")
    assert (e.value.status, e.value.details["type"]) == (404, "bandwidth")


def test_compute_windows_anomalies_baselines(agent):
    c = agent.client
    r = c.raw("POST", "/v1/windows/compute", json.dumps({"pcap_file": agent.pcap(pcap("ndpi__gnutella.pcap"))}).encode(),
              {"Content-Type": "application/json"})
    assert r.status == 202
    job = c.get(json.loads(r.body)["status_url"])
    job = wait_for(lambda: (lambda j: j if j["status"] == "complete" else None)(c.get(f"/v1/windows/jobs/{job['id']}")))
    assert job["window_count"] == 61 and job["source"] == "ndpi__gnutella.pcap"
    again = c.post("/v1/windows/compute", {"pcap_file": "ndpi__gnutella.pcap"})
    assert again["set"]["id"] == job["id"] and "already computed" in again["message"]

    page = c.get("/v1/windows")
    assert (page["count"], page["total"], page["limit"], page["offset"]) == (50, 61, 50, 0)
    assert [w["window_id"] for w in page["windows"]] == list(range(50))
    w3 = c.get("/v1/windows/3")
    assert w3 == {**page["windows"][3], "set": job["id"]}
    assert set(w3) >= {"window_start", "window_end", "bandwidth", "latency", "connections", "protocol", "record_count"}
    assert set(w3["bandwidth"]) >= {"avg_bps", "avg_pps", "duration_s", "top_src_bytes", "top_dst_bytes"}
    with pytest.raises(ApiError) as e:
        c.get("/v1/windows/999")
    assert e.value.status == 404 and e.value.details["total_windows"] == 61
    s = c.get("/v1/windows/summary")
    assert s["total_windows"] == 61 and s["packets"] == 3905 and s["bandwidth"]["max_bps"] >= s["bandwidth"]["mean_bps"]

    rows = list(csv.DictReader(io.StringIO(c.raw("GET", "/v1/windows", query={"format": "csv", "limit": 100}).body.decode())))
    assert len(rows) == 61 and sum(int(r["packets"]) for r in rows) == 3905
    lines = c.raw("GET", "/v1/windows", query={"format": "jsonl", "limit": 5}).body.decode().splitlines()
    assert [json.loads(x)["window_id"] for x in lines] == [0, 1, 2, 3, 4]

    an = c.get("/v1/anomalies", type="high_latency", severity="high")
    assert an["filters"] == {"type": "high_latency", "severity": "high"} and an["limit"] == 100
    assert an["total"] > 0 and all(a["type"] == "high_latency" and a["severity"] == "high" for a in an["anomalies"])
    by = c.get("/v1/anomalies/by-type")
    assert by["total"] == sum(t["count"] for t in by["by_type"].values())
    top = c.get("/v1/anomalies/top", limit=3)["top"]
    assert 0 < len(top) <= 3 and all({"type", "severity", "message", "count", "first_seen", "last_seen"} <= set(t) for t in top)
    win = an["anomalies"][0]["window_id"]
    assert all(a["window_id"] == win for a in c.get(f"/v1/anomalies/window/{win}")["anomalies"])

    same = c.post("/v1/anomalies/detect", {})
    assert "already" in same["message"] and same["anomaly_count"] == by["total"]
    redo = c.post("/v1/anomalies/detect", {"force": True})
    assert redo["anomaly_count"] == by["total"] and set(redo["summary"]) == {"by_type", "by_severity"}

    gen = c.post("/v1/baselines/generate", {"types": ["bandwidth", "connection"]})
    assert gen["generated"] == {"bandwidth": True, "connection": True}
    assert c.post("/v1/baselines/generate", {"types": ["bandwidth"]})["generated"] == {"bandwidth": False}
    allb = c.get("/v1/baselines")
    assert allb["available"] == 2 and allb["baseline_complete"] is True
    bw = c.get("/v1/baselines/bandwidth")["baseline"]
    assert {"mean", "median", "min", "max", "p95", "p99"} <= set(bw)
    assert c.get("/v1/baselines/stats")["baseline_stats"]["bandwidth"]["max_bps"] == bw["max"]
    with pytest.raises(ApiError) as e:
        c.post("/v1/baselines/generate", {"types": ["weather"]})
    assert e.value.details["field"] == "types"
    st = c.get("/v1/status")
    assert st["data"]["metrics"] and st["data"]["anomalies"] and st["data"]["baselines"]


@pytest.mark.parametrize("body,status,code", [
    ({"pcap_file": "/etc/passwd"}, 403, "FORBIDDEN"),
    ({"pcap_file": "nothere.pcap"}, 400, "VALIDATION_ERROR"),
    ({"source": "pcap"}, 400, "VALIDATION_ERROR"),
    ({"pcap_file": "x.pcap", "window_size": -1}, 400, "VALIDATION_ERROR"),
])
def test_bad_compute_requests(agent, body, status, code):
    with pytest.raises(ApiError) as e:
        agent.client.post("/v1/windows/compute", body)
    assert (e.value.status, e.value.code) == (status, code)


def test_a_damaged_file_fails_its_job(agent):
    data = open(pcap("zeek__wikipedia.pcap"), "rb").read()
    (agent.data_dir / "pcaps" / "cut.pcap").write_bytes(data[:2000])
    r = agent.client.post("/v1/windows/compute", {"pcap_file": "cut.pcap"})
    job = wait_for(lambda: (lambda j: j if j["status"] != "queued" and j["status"] != "running" else None)(
        agent.client.get(r["status_url"])))
    assert job["status"] == "failed" and "middle of packet" in job["error"]


def test_live_windows_and_anomalies_on_the_bus(make_agent):
    a = make_agent('[capture]\nautostart = false\n[analysis]\nwindow_s = 2\n')
    c = a.client
    got = []

    def listen():
        for ev in c.events(channels="windows:closed,anomalies:detected", timeout=30):
            got.append(ev)
            if any(e["event"] == "anomaly_detected" for e in got):
                return
    t = threading.Thread(target=listen, daemon=True)
    t.start()
    time.sleep(0.5)
    c.capture_start(file=a.pcap(pcap("evilfingers__UDP_SCAN.pcap")))   # ends by itself: its windows are flushed
    t.join(30)
    kinds = [e["event"] for e in got]
    assert "window_closed" in kinds and "anomaly_detected" in kinds
    scan = next(e["data"]["data"] for e in got if e["event"] == "anomaly_detected")
    assert scan["type"] == "port_scan" and scan["flow_src"] == "192.168.1.10"
    wait_for(lambda: c.get("/v1/windows")["set"]["status"] == "complete")
    page = c.get("/v1/windows")
    assert page["set"]["kind"] == "live" and sum(w["record_count"] for w in page["windows"]) == 2028
    assert c.get("/v1/anomalies", type="port_scan")["total"] == 1


@pytest.mark.root
def test_live_path_and_pcap_path_give_the_same_windows(veth, tshark):
    """Replayed at its recorded pace onto a veth pair, a capture gives the windows and anomalies the file gives."""
    path = pcap("chrissanders__tcp_retransmissions.pcapng")   # six packets over 9.2 s
    size = 3
    # a packet near a window edge could land either side with replay jitter: this file has none
    times = [float(x) for x in subprocess.run([tshark, "-r", path, "-T", "fields", "-e", "frame.time_relative"],
                                             capture_output=True, text=True, check=True).stdout.split()]
    assert min(min(t % size, size - t % size) for t in times[1:]) > 0.2
    ws, _ = offline.compute(path, size)
    s = veth.session(backend="afpacket", window_s=size, idle_timeout_s=0, active_timeout_s=0)
    with s:
        done = threading.Event()

        def run():
            while not done.is_set():
                s.run(timeout_ms=100)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        time.sleep(0.3)
        assert veth.replay(path, pps=0)["packets"] == 6  # at the recorded pace
        wait_for(lambda: s.counters().packets == 6)
        done.set()
        t.join(5)
        s.flush()
        live = s.read_windows()

    def figures(windows):
        return [(w["record_count"], w["bandwidth"]["bytes"], w["tcp"]["retransmissions"]) for w in windows]
    assert figures(live) == figures(ws) and len(ws) == 4
    assert [(a["type"], a["flow_src"], a["current_value"]) for a in anomalies.detect_all(live)] == \
        [(a["type"], a["flow_src"], a["current_value"]) for a in anomalies.detect_all(ws)]
