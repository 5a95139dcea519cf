"""Malformed requests get a 4xx with the error envelope, never a 500: the
fifteen the hostile-load probe found, and their neighbours."""
import json

import pytest

from tests.agent.conftest import IDLE, AgentProcess

BIG = str(1 << 63)
HUGE = "9" * 40
J = {"Content-Type": "application/json"}

CASES = [
    # (method, path, raw body or None)
    ("POST", "/v1/capture/start", b'{"bpf":' + b"[" * 1000 + b"]" * 1000 + b"}"),
    ("POST", "/v1/capture/start", b"[" * 100000 + b"]" * 100000),
    ("POST", "/v1/capture/start", b'{"file":"demo","pace":NaN}'),
    ("POST", "/v1/capture/start", b'{"file":"demo","pace":1e400}'),
    ("POST", "/v1/capture/start", b'{"file":"\\ud800"}'),
    ("POST", "/v1/capture/start", b'{"file":"demo","snaplen":' + HUGE.encode() + b"}"),
    ("GET", "/v1/threats?attack_type=%FF", None),
    ("GET", "/v1/threats?attack_type=%C3", None),
    ("GET", f"/v1/threats?offset={BIG}", None),
    ("GET", f"/v1/threats?offset={HUGE}", None),
    ("GET", f"/v1/threats?limit=10&offset=-1", None),
    ("GET", f"/v1/windows?set={BIG}", None),
    ("GET", f"/v1/windows/{BIG}", None),
    ("GET", f"/v1/windows/jobs/{HUGE}", None),
    ("GET", f"/v1/capture/export/{BIG}", None),
    ("DELETE", f"/v1/capture/export/{HUGE}", None),
    ("GET", f"/v1/anomalies/window/{BIG}", None),
    ("POST", "/v1/baselines/generate", b'{"types":[{}]}'),
    ("POST", "/v1/baselines/generate", b'{"types":[1, true, null]}'),
    ("POST", "/v1/verify", b'{"url":"http://example.invalid/","paths":[{}]}'),
    ("POST", "/v1/verify-dns", b'{"domain":"example.invalid","local_ips":[[]]}'),
    ("POST", "/v1/capture/export", json.dumps({"collector_ip": "a" * 300}).encode()),
    ("POST", "/v1/capture/export", json.dumps({"collector_ip": "a" * 64 + ".example"}).encode()),
    ("POST", "/v1/capture/export", json.dumps({"collector_ip": "x\u0000y"}).encode()),
    ("POST", "/v1/capture/filter", json.dumps({"bpf": "host 192.0.2.1\u0000 or not host 1"}).encode()),
    ("POST", "/v1/capture/start", json.dumps({"file": "demo", "bpf": "tcp\u0000 or udp"}).encode()),
    ("POST", "/v1/capture/start", json.dumps({"file": "demo", "bpf": " or ".join(["port 1"] * 200)}).encode()),
    ("POST", "/v1/capture/recording", json.dumps({"enable": True, "bpf": "x" * 1025}).encode()),
    ("POST", "/v1/firmware/verify", json.dumps({"firmware_path": "0" * 4096}).encode()),
    ("POST", "/v1/windows/compute", json.dumps({"pcap_file": "0" * 4096}).encode()),
    ("GET", "/v1/firmware/verify?firmware_path=" + "0" * 4096, None),
    ("POST", "/v1/honeytokens/trigger", b'{"token":"x","context":{"\\udc00":1}}'),
]


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    a = AgentProcess(tmp_path_factory.mktemp("malformed") / "var", IDLE)
    yield a
    a.stop()


@pytest.mark.parametrize("method,path,body", CASES, ids=[f"{m} {p[:40]} {(b or b'')[:24]!r}" for m, p, b in CASES])
def test_malformed_request_is_a_4xx_with_the_envelope(agent, method, path, body):
    r = agent.client.raw(method, path, body=body, headers=J if body is not None else None)
    assert r.status in (400, 404) and (r.status == 400 or "firmware" in path), (r.status, r.body[:300])
    err = r.json()["error"]
    assert err["code"] and err["message"] and r.json()["request_id"]
    assert "Traceback" not in agent.output()
