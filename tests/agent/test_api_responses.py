"""Real responses against the agent's own typed OpenAPI document.

A running agent is driven as an operator drives it (a capture with an ARP
spoof in it, windows, baselines and anomalies of a real capture, a SIP call,
an uploaded job, exporters, recording, keys, deception), and every answer is
validated against the response schema its operation declares in the
/v1/openapi.json it serves."""
import json
import shutil
import time

import jsonschema
import pytest

from tests.agent.conftest import AgentProcess, wait_for
from tests.conftest import pcap

CONFIG = "[capture]\nautostart = false\n[api]\nrate_get = 100000\nrate_write = 100000\n"
NOT_JSON = {"/metrics", "/v1/recordings/{name}", "/v1/events", "/v1/jobs/{job_id}/events"}


class Driver:
    """Requests that remember (method, path template, status, content type, body) for validation."""

    def __init__(self, agent: AgentProcess):
        self.client = agent.client
        self.seen: list = []

    def call(self, method: str, template: str, body=None, query: str = "", ok=(200, 201, 202), **params):
        path = template.format(**params) + (f"?{query}" if query else "")
        data = json.dumps(body).encode() if body is not None else None
        r = self.client.raw(method, path, data, {"Content-Type": "application/json"} if data else None)
        self.seen.append((method.lower(), template, r.status, r.headers.get("content-type", ""), r.body))
        assert r.status in ok, (method, path, r.status, r.body[:500])
        return r.json() if r.headers.get("content-type", "").startswith("application/json") else r.body

    def get(self, template, query="", **params):
        return self.call("GET", template, query=query, **params)

    def post(self, template, body=None, **params):
        return self.call("POST", template, body if body is not None else {}, **params)


def _drive(d: Driver, pcaps) -> None:
    """Every operation a capture box's operator uses, with real data behind it."""
    arp, wiki, sip = pcaps
    for p in ("/v1/health", "/v1/ping", "/v1/status", "/v1/config", "/v1/logs", "/v1/stats", "/v1/keys",
              "/v1/capture/backends", "/v1/capture/status", "/v1/capture/export",
              "/v1/firmware", "/v1/system", "/v1/paths", "/v1/capture/recording", "/v1/capture/encryption",
              "/v1/recordings", "/v1/honeytokens", "/v1/jobs", "/v1/calls", "/v1/windows/sets", "/v1/baselines",
              "/v1/openapi.json", "/metrics"):
        d.get(p)
    d.get("/v1/stats", "period=1h")
    d.post("/v1/capture/recording", {"action": "start", "rotate_mb": 1})
    d.post("/v1/capture/encryption", {"enable": False})
    d.post("/v1/capture/start", {"file": str(arp), "pace": 0})
    wait_for(lambda: not d.client.capture_status()["running"], 60)
    d.post("/v1/capture/recording", {"action": "stop"})
    threats = wait_for(lambda: d.get("/v1/threats")["threats"], 30)
    tid = threats[0]["id"]
    d.get("/v1/threats/{threat_id}", threat_id=tid)
    d.call("PATCH", "/v1/threats/{threat_id}", {"status": "acknowledged", "note": "seen"}, threat_id=tid)
    d.get("/v1/threats", "severity=high&limit=5")
    wait_for(lambda: d.get("/v1/logs/{kind}", kind="arp")["records"], 30)
    name = d.get("/v1/recordings")["recordings"][0]["name"]
    d.get("/v1/recordings/{name}", name=name)

    d.post("/v1/capture/start", {"file": str(sip), "pace": 10, "loop": True, "bpf": "udp"})
    d.post("/v1/capture/filter", {"bpf": "udp or tcp"})
    d.get("/v1/capture/metrics")
    wait_for(lambda: d.get("/v1/capture/flows", "limit=5")["flows"], 30)
    wait_for(lambda: d.get("/v1/calls")["calls"], 30)
    d.post("/v1/capture/stop")
    calls = d.get("/v1/calls")["calls"]
    if calls:
        d.get("/v1/sessions/{session_id}", session_id=calls[0]["session_id"])
        d.get("/v1/sessions/{session_id}/ladder", session_id=calls[0]["session_id"])
    d.post("/v1/capture/flow-meter", {"idle_timeout_s": 60})

    job = d.post("/v1/windows/compute", {"source": "pcap", "pcap_file": str(wiki), "window_size": 5})
    wait_for(lambda: d.get("/v1/windows/jobs/{job_id}", job_id=job["job_id"])["status"] == "complete", 60)
    d.get("/v1/windows")
    d.get("/v1/windows/summary")
    win = d.get("/v1/windows")["windows"][0]
    d.get("/v1/windows/{window_id}", window_id=win["window_id"])
    d.post("/v1/baselines/generate", {"force": True})
    d.get("/v1/baselines")
    d.get("/v1/baselines/stats")
    d.get("/v1/baselines/{type_}", type_="bandwidth")
    d.post("/v1/anomalies/detect", {"force": True})
    for p in ("/v1/anomalies", "/v1/anomalies/by-type", "/v1/anomalies/top"):
        d.get(p)
    d.get("/v1/anomalies/window/{window_id}", window_id=win["window_id"])

    exp = d.post("/v1/capture/export", {"collector_ip": "127.0.0.1", "collector_port": 9, "version": "v9"})
    d.get("/v1/capture/export/{exporter_id}", exporter_id=exp["id"])
    d.call("DELETE", "/v1/capture/export/{exporter_id}", exporter_id=exp["id"])
    key = d.post("/v1/keys", {"kind": "pk", "name": "monitor"})
    d.call("DELETE", "/v1/keys/{key_id}", key_id=key["id"])
    ses = d.post("/v1/deception/start", {"target_domain": "bank.example", "attacker_ip": "192.0.2.66"})
    d.get("/v1/deception/{session_id}", session_id=ses["session_id"])
    token = d.get("/v1/honeytokens")["tokens"][0]["token"]
    d.post("/v1/honeytokens/trigger", {"token": token, "source_ip": "192.0.2.66"})
    d.post("/v1/deception/stop", {"session_id": ses["session_id"]})

    up = d.client.upload_job(str(sip))
    jid = up["job_id"]
    wait_for(lambda: d.get("/v1/jobs/{job_id}", job_id=jid)["status"] == "completed", 60)
    d.get("/v1/jobs/{job_id}/sessions", job_id=jid)
    d.call("DELETE", "/v1/jobs/{job_id}", job_id=jid)
    d.call("DELETE", "/v1/recordings/{name}", name=name)


@pytest.fixture
def driven(tmp_path):
    a = AgentProcess(tmp_path / "var", CONFIG)
    try:
        from tests.detectors.scenarios import arp_poison_gateway
        dirs = tmp_path / "var" / "pcaps"
        arp = arp_poison_gateway().write(dirs)
        wiki, sip = (shutil.copy(pcap(n), dirs) for n in ("zeek__wikipedia.pcap", "ndpi__sip.pcap"))
        d = Driver(a)
        _drive(d, (arp, wiki, sip))
        yield d, a.client.get("/v1/openapi.json")
    finally:
        a.stop()


def _schema(doc: dict, method: str, template: str, status: int, ctype: str) -> dict:
    op = doc["paths"][template][method]
    resp = op["responses"].get(str(status)) or op["responses"]["default"]
    media = resp["content"]
    return next(v["schema"] for k, v in media.items() if ctype.startswith(k))


def test_every_answer_matches_its_declared_schema(driven):
    d, doc = driven
    checked = set()
    for method, template, status, ctype, body in d.seen:
        schema = _schema(doc, method, template, status, ctype)
        if template in NOT_JSON and not ctype.startswith("application/json"):
            assert schema.get("type") == "string", (template, schema)
            continue
        validator = jsonschema.Draft202012Validator({**schema, "components": doc["components"]},
                                                    format_checker=jsonschema.FormatChecker())
        errors = sorted(validator.iter_errors(json.loads(body)), key=lambda e: e.path)
        assert not errors, (method, template, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]])
        checked.add((method, template))
    assert len(checked) >= 50, len(checked)


def test_every_operation_declares_a_typed_response(agent):
    """No bare {"type": "object"}: each success names its fields, and every JSON field is typed."""
    doc = agent.client.get("/v1/openapi.json")
    bare = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            ok = [v for k, v in op["responses"].items() if k.startswith("2")]
            assert ok, (method, path)
            for media in ok[0]["content"].values():
                s = media["schema"]
                if s.get("type") == "object" and not s.get("properties") and "$ref" not in s:
                    bare.append(f"{method} {path}")
    assert not bare, bare
