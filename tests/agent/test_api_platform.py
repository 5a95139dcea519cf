"""Platform routes, events, keys, shutdown and systemd notification, against
the real agent process."""
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from openapi_spec_validator import validate as validate_openapi
from prometheus_client.parser import text_string_to_metric_families

from agent.client import ApiError, Client
from tests.agent.conftest import wait_for
from tests.conftest import ROOT


def test_health_needs_no_key_and_lists_components(agent):
    h = Client(agent.url).health()
    assert h["status"] == "healthy" and h["mode"] == "idle" and h["version"]
    assert {"store", "capture", "api", "stats"} <= set(h["components"])
    for c in h["components"].values():
        assert {"status", "last_heartbeat", "critical"} <= set(c)
        assert "detail_error" not in c          # every component's health hook answers (threats' used to raise)
    assert h["system"]["memory"]["total_bytes"] > 0 and "cpu_percent" in h["system"]
    assert any(i["name"] == "lo" for i in h["interfaces"])


def test_prometheus_metrics(agent):
    from tests.collector import UdpSink
    sink = UdpSink()
    agent.client.post("/v1/capture/export", {"collector_ip": "127.0.0.1", "collector_port": sink.port,
                                             "export_interval_sec": 1})
    agent.client.post("/v1/capture/recording", {"action": "start"})
    agent.client.capture_start(file="demo", pace=1.0, loop=True)
    wait_for(lambda: agent.client.capture_status()["stats"]["packets"] > 0)
    r = Client(agent.url).raw("GET", "/metrics")
    assert r.status == 200 and r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.body.decode())}
    assert families["capbox_capture_running"].samples[0].value == 1
    assert families["capbox_packets"].samples[0].value > 0  # the parser strips _total
    causes = {s.labels["cause"] for s in families["capbox_dropped"].samples}
    assert {"kernel", "interface", "event_ring"} <= causes
    assert families["capbox_recording"].samples[0].value == 1
    (exp,) = families["capbox_export_records"].samples
    assert exp.labels["collector"] == f"127.0.0.1:{sink.port}" and exp.labels["version"] == "ipfix"
    sink.stop()


def _scrape(url: str) -> dict:
    r = Client(url).raw("GET", "/metrics")
    assert r.status == 200 and r.headers["content-type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(r.body.decode())}


def test_metrics_while_idle_keep_every_series_and_describe_the_process(agent):
    families = _scrape(agent.url)
    assert families["process_resident_memory_bytes"].samples[0].value > 1e6
    assert families["process_open_fds"].samples[0].value > 3
    (build,) = families["capbox_build_info"].samples
    assert build.name == "capbox_build_info" and build.labels["version"] and build.value == 1
    assert families["capbox_capture_running"].samples[0].value == 0
    assert families["capbox_packets"].samples[0].value == 0
    causes = {s.labels["cause"]: s.value for s in families["capbox_dropped"].samples}
    assert set(causes) >= {"kernel", "event_ring", "bus"} and not any(causes.values())
    assert {s.labels["reason"] for s in families["capbox_malformed"].samples} >= {"tcp", "udp", "arp"}
    for name in ("capbox_threats", "capbox_anomalies", "capbox_verifications", "capbox_jobs", "capbox_calls"):
        assert families[name].type == "counter"


def test_metrics_count_threats_by_type_and_severity(agent):
    from tests.conftest import pcap
    name = agent.pcap(pcap("zeek__tls_ssl.v3.pcap"))
    agent.client.post("/v1/capture/start", {"file": name, "pace": 0, "loop": False})
    wait_for(lambda: agent.client.get("/v1/threats")["total"] >= 1, timeout=30)

    def counted():
        samples = _scrape(agent.url)["capbox_threats"].samples
        return [(s.labels["type"], s.labels["severity"], s.value) for s in samples]
    assert wait_for(counted) == [("tls_downgrade", "high", 1.0)]


def test_openapi_document_is_valid_and_complete(agent):
    doc = agent.client.get("/v1/openapi.json")
    validate_openapi(doc)
    assert doc["openapi"].startswith("3.1")
    for path in ("/v1/capture/start", "/v1/capture/flows", "/v1/health", "/v1/events", "/v1/keys/{key_id}",
                 "/v1/capture/export", "/v1/capture/export/{exporter_id}", "/v1/capture/recording",
                 "/v1/capture/encryption", "/v1/recordings", "/v1/recordings/{name}"):
        assert path in doc["paths"]
    start = doc["paths"]["/v1/capture/start"]["post"]
    props = start["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert {"interface", "backend", "buffer_size_mb", "bpf", "duration"} <= set(props)
    assert doc["paths"]["/v1/health"]["get"]["security"] == []
    (param,) = doc["paths"]["/v1/capture/export/{exporter_id}"]["delete"]["parameters"]
    assert param["schema"] == {"type": "integer", "minimum": 0, "maximum": (1 << 63) - 1}
    assert props["bpf"]["maxLength"] == 1024


def test_ping_status_config_logs_stats(agent):
    c = agent.client
    assert c.get("/v1/ping")["pong"] is True
    st = c.get("/v1/status")
    assert st["api"]["status"] == "running" and st["system"]["mode"] == "idle" and "data" in st
    cfg = c.get("/v1/config")
    assert cfg["api"]["listen"] == f"127.0.0.1:{agent.port}" and cfg["capture"]["autostart"] is False
    logs = c.get("/v1/logs", limit=50)
    assert logs["count"] > 0 and any("REST API" in e["message"] for e in logs["logs"])
    errors_only = c.get("/v1/logs", level="error")
    assert all(e["level"] == "error" for e in errors_only["logs"])
    stats = c.get("/v1/stats", period="5m")
    assert stats["period"] == "5m" and "samples" in stats and "bus" in stats


def test_stats_of_a_period_add_up_every_capture_run_in_it(agent):
    from tests.conftest import pcap
    name = agent.pcap(pcap("zeek__wikipedia.pcap"))
    for _ in range(2):
        agent.client.capture_start(file=name, pace=0, loop=False)
        wait_for(lambda: not agent.client.capture_status()["running"], timeout=30)
    stats = wait_for(lambda: (s := agent.client.get("/v1/stats", period="1h"))["capture"]["packets_captured"] == 272
                     and s, timeout=10)
    assert stats["capture"]["packets_analyzed"] == 272 and not stats["capture"]["running"]
    assert [r["stats"]["packets"] for r in stats["capture_runs"]] == [136, 136]    # objects, not JSON strings


def test_trailing_slash_and_cors_off(agent):
    r = agent.client.raw("GET", "/v1/capture/status/", headers={"Origin": "https://evil.example"})
    assert r.status == 200 and "access-control-allow-origin" not in r.headers


def test_cors_when_configured(make_agent):
    a = make_agent('[capture]\nautostart = false\n[api]\ncors_origins = ["https://ops.example"]\n')
    r = a.client.raw("GET", "/v1/ping", headers={"Origin": "https://ops.example"})
    assert r.headers["access-control-allow-origin"] == "https://ops.example"


def test_keys_cli_shares_the_store_with_the_running_agent(agent):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "agent", "keys", "--data-dir", str(agent.data_dir), *args],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
    made = cli("create", "--kind", "pk", "--name", "ops", "--json")
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert key["key"].startswith("capbox_pk_") and key["kind"] == "pk"
    assert Client(agent.url, key["key"]).get("/v1/ping")["pong"]
    listed = cli("list")
    assert key["id"] in listed.stdout and key["key"] not in listed.stdout
    assert cli("revoke", key["id"]).returncode == 0
    with pytest.raises(ApiError) as e:
        Client(agent.url, key["key"]).get("/v1/ping")
    assert e.value.code == "INVALID_API_KEY"
    assert cli("revoke", key["id"]).returncode == 1
    # stored hashed: the secret is nowhere in the database
    db = sqlite3.connect(agent.data_dir / "capbox.db")
    assert key["key"][-32:].encode() not in b"".join(bytes(r[0]) for r in db.execute("SELECT hash FROM api_keys"))
    assert oct(os.stat(agent.data_dir / "admin.key").st_mode & 0o777) == "0o600"


def test_events_stream_keepalive_resume_and_limits(make_agent):
    a = make_agent('[capture]\nautostart = false\n[api]\nsse_keepalive_s = 1\nsse_max_streams_per_key = 2\n')
    got = []

    def listen():
        for ev in a.client.events(channels="capture:state", timeout=20):
            got.append(ev)
            if len(got) == 2:
                return
    t = threading.Thread(target=listen, daemon=True)
    t.start()
    time.sleep(0.5)
    a.client.capture_start(file="demo", pace=1.0)
    a.client.capture_stop()
    t.join(15)
    assert [e["event"] for e in got] == ["capture_started", "capture_stopped"]
    first = got[0]
    assert set(first["data"]) >= {"event_type", "timestamp", "source", "correlation_id", "data"}
    # resume: everything after the first event's id, from the backlog
    resumed = next(iter(a.client.events(channels="capture:state", last_event_id=int(first["id"]), timeout=10)))
    assert resumed["event"] == "capture_stopped" and resumed["id"] == got[1]["id"]

    # closed streams are noticed at the next keep-alive and give their slot back
    wait_for(lambda: Client(a.url).health()["components"]["api"]["event_streams"] == 0, timeout=5)
    # raw stream: retry hint, then a keep-alive comment within ~1 s
    with socket.create_connection(("127.0.0.1", a.port), timeout=5) as s:
        s.sendall(f"GET /v1/events?channels=jobs:progress&token={a.key} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        buf = b""
        deadline = time.monotonic() + 5
        while b": keepalive" not in buf and time.monotonic() < deadline:
            buf += s.recv(4096)
        assert b"text/event-stream" in buf and b"retry: 3000" in buf and b": keepalive" in buf
        # a third stream for this key is refused while two are open
        streams = [a.client.events(channels="jobs:progress", timeout=5)]
        threading.Thread(target=lambda: next(streams[0], None), daemon=True).start()
        time.sleep(0.5)
        with pytest.raises(ApiError) as e:
            next(a.client.events(timeout=5))
        assert e.value.status == 429
    with pytest.raises(ApiError) as e:
        next(a.client.events(channels="no:such"))
    assert e.value.code == "VALIDATION_ERROR"


def test_sigterm_flushes_and_records_the_run(make_agent):
    a = make_agent('[capture]\nsource = "demo"\npace = 1.0\n')
    wait_for(lambda: a.client.capture_status().get("stats", {}).get("packets", 0) > 0)
    assert a.stop(signal.SIGTERM) == 0
    db = sqlite3.connect(a.data_dir / "capbox.db")
    reason, stats = db.execute("SELECT reason, stats FROM capture_runs").fetchone()
    assert reason == "shutdown" and json.loads(stats)["packets"] > 0
    assert "stopped" in a.output()


def test_systemd_notify(make_agent, tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    make_agent(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"})
    seen = set()
    deadline = time.monotonic() + 10
    while not {"READY=1", "WATCHDOG=1"} <= seen and time.monotonic() < deadline:
        seen |= set(sock.recv(4096).decode().split("\n"))
    assert {"READY=1", "WATCHDOG=1"} <= seen
    assert any(s.startswith("STATUS=capbox") for s in seen)


def test_bad_config_names_the_key(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[capture]\nsnaplen = 5\n')
    p = subprocess.run([sys.executable, "-m", "agent", "run", "--config", str(cfg), "--data-dir", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "capture.snaplen" in p.stderr and "Traceback" not in p.stderr


def test_busy_port_is_a_clear_error(agent, tmp_path):
    p = subprocess.run([sys.executable, "-m", "agent", "run", "--data-dir", str(tmp_path / "other"),
                        "--listen", f"127.0.0.1:{agent.port}"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "Traceback" not in p.stderr and "address" in p.stderr.lower()
