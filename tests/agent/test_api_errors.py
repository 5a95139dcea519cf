"""Hostile and wrong requests: each gets its status and the error envelope,
never HTML or a traceback, and the agent keeps serving."""
import json
import socket
import time

import pytest

from agent.client import ApiError, Client


def envelope(r, status: int, code: str) -> dict:
    assert r.status == status, r.body[:300]
    assert r.headers["content-type"].startswith("application/json")
    body = json.loads(r.body)
    assert body["error"]["code"] == code
    assert set(body) >= {"error", "timestamp", "request_id"} and body["request_id"].startswith("req_")
    assert set(body["error"]) == {"code", "message", "details"}
    assert b"Traceback" not in r.body and b"<html" not in r.body.lower()
    return body


def test_unknown_route_and_method(agent):
    c = agent.client
    envelope(c.raw("GET", "/v1/nothing/here"), 404, "NOT_FOUND")
    envelope(c.raw("GET", "/"), 404, "NOT_FOUND")
    body = envelope(c.raw("PUT", "/v1/capture/start"), 405, "METHOD_NOT_ALLOWED")
    assert "POST" in body["error"]["details"]["allowed"]


def test_malformed_json_wrong_types_and_media_type(agent):
    c = agent.client
    h = {"Content-Type": "application/json"}
    envelope(c.raw("POST", "/v1/capture/start", b'{"file": "demo",', h), 400, "VALIDATION_ERROR")
    envelope(c.raw("POST", "/v1/capture/start", b"[1, 2]", h), 400, "VALIDATION_ERROR")
    envelope(c.raw("POST", "/v1/capture/start", b"\xff\xfe\x00", h), 400, "VALIDATION_ERROR")
    body = envelope(c.raw("POST", "/v1/capture/start", b'{"file": "demo", "snaplen": "x"}', h), 400,
                    "VALIDATION_ERROR")
    assert body["error"]["details"]["field"] == "snaplen"
    envelope(c.raw("POST", "/v1/capture/start", b"file=demo", {"Content-Type": "application/x-www-form-urlencoded"}),
             415, "UNSUPPORTED_MEDIA_TYPE")
    envelope(c.raw("GET", "/v1/logs", query={"limit": "many"}), 400, "VALIDATION_ERROR")


def test_huge_body_is_413(agent):
    big = b'{"file": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    body = envelope(agent.client.raw("POST", "/v1/capture/start", big, {"Content-Type": "application/json"}),
                    413, "PAYLOAD_TOO_LARGE")
    assert body["error"]["details"]["max_bytes"] == 1024 * 1024
    assert agent.client.get("/v1/ping")["pong"] is True


def test_garbage_on_the_socket_does_not_hurt(agent):
    for junk in (b"\x00\xff" * 5000, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n" + b"X: " + b"y" * 100000 + b"\r\n\r\n",
                 b"POST /v1/capture/start HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n{"):
        with socket.create_connection(("127.0.0.1", agent.port), timeout=5) as s:
            try:
                s.sendall(junk)
                s.shutdown(socket.SHUT_WR)
                s.recv(4096)
            except OSError:
                pass
    assert agent.client.get("/v1/ping")["pong"] is True


def test_keys_missing_wrong_revoked_expired_read_only(agent):
    url = agent.url
    envelope(Client(url).raw("GET", "/v1/capture/status"), 401, "INVALID_API_KEY")
    envelope(Client(url, "capbox_sk_nope").raw("GET", "/v1/capture/status"), 401, "INVALID_API_KEY")
    forged = agent.key[:-4] + ("AAAA" if not agent.key.endswith("AAAA") else "BBBB")
    envelope(Client(url, forged).raw("GET", "/v1/capture/status"), 401, "INVALID_API_KEY")

    pk = agent.client.post("/v1/keys", {"kind": "pk", "name": "reader"})
    reader = Client(url, pk["key"])
    assert reader.capture_status()["running"] is False
    body = envelope(reader.raw("POST", "/v1/capture/stop", b"{}", {"Content-Type": "application/json"}),
                    403, "FORBIDDEN")
    assert body["error"]["details"]["key_kind"] == "pk"
    envelope(reader.raw("GET", "/v1/keys"), 403, "FORBIDDEN")

    tk = agent.client.post("/v1/keys", {"kind": "tk", "name": "short", "ttl_s": 1, "scopes": "capture"})
    scoped = Client(url, tk["key"])
    assert scoped.capture_stop()["stopped"] is False        # capture scope: may write
    envelope(scoped.raw("POST", "/v1/keys", b"{}", {"Content-Type": "application/json"}), 403, "FORBIDDEN")
    time.sleep(1.2)
    envelope(scoped.raw("GET", "/v1/capture/status"), 401, "INVALID_API_KEY")  # expired

    agent.client.delete(f"/v1/keys/{pk['id']}")
    envelope(reader.raw("GET", "/v1/capture/status"), 401, "INVALID_API_KEY")  # revoked, at once
    with pytest.raises(ApiError) as e:
        agent.client.delete(f"/v1/keys/{pk['id']}")
    assert e.value.code == "NOT_FOUND"


def test_token_in_query_for_event_streams(agent):
    r = Client(agent.url).raw("GET", "/v1/ping", query={"token": agent.key})
    assert r.status == 200


def test_rate_limit(make_agent):
    a = make_agent(env={"CAPBOX_API_RATE_GET": "5"})
    seen = []
    for _ in range(5):
        r = a.client.raw("GET", "/v1/ping")
        assert r.status == 200
        seen.append(int(r.headers["x-ratelimit-remaining"]))
        assert r.headers["x-ratelimit-limit"] == "5"
        assert int(r.headers["x-ratelimit-reset"]) > time.time()
    assert seen == [4, 3, 2, 1, 0]
    r = a.client.raw("GET", "/v1/ping")
    body = envelope(r, 429, "RATE_LIMIT_EXCEEDED")
    d = body["error"]["details"]
    assert d["limit"] == 5 and d["window_seconds"] == 60 and 1 <= d["retry_after_seconds"] <= 60
    assert r.headers["retry-after"] == str(d["retry_after_seconds"])
    # the limit is per key and per route class: writes and other keys still pass
    assert a.client.capture_stop()["stopped"] is False
    other = a.client.post("/v1/keys", {"kind": "sk", "name": "other"})
    assert Client(a.url, other["key"]).raw("GET", "/v1/ping").status == 200
    assert Client(a.url).raw("GET", "/v1/health").status == 200  # no key, no limit


def test_internal_errors_hide_the_exception():
    """An exception inside a route is a 500 envelope without its text."""
    import io
    import types
    from wsgiref.util import setup_testing_defaults

    from agent.api.app import PUBLIC, Api
    from agent.config import Config

    api = Api(types.SimpleNamespace(cfg=Config()))

    @api.route("GET", "/v1/boom", "fails", access=PUBLIC)
    def boom():
        raise RuntimeError("secret internals")

    env = {"PATH_INFO": "/v1/boom", "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO()}
    setup_testing_defaults(env)
    status = []
    body = b"".join(api.app(env, lambda s, h, exc=None: status.append(s)))
    assert status[0].startswith("500")
    doc = json.loads(body)
    assert doc["error"]["code"] == "INTERNAL_ERROR" and b"secret" not in body


def test_documentation_url_leads_to_the_code_on_the_agents_own_page(agent, tmp_path):
    """curl follows an error's documentation_url to a page with the code's row; every code the agent
    can raise (read from its source) is on that page."""
    import ast
    import pathlib
    import subprocess
    from html.parser import HTMLParser

    from agent.errors import CATALOGUE
    body = envelope(agent.client.raw("GET", "/v1/threats/thr_0000"), 404, "THREAT_NOT_FOUND")
    url, code = body["documentation_url"].split("#")
    assert url == f"{agent.url}/docs/errors" and code == "THREAT_NOT_FOUND"
    page = tmp_path / "errors.html"
    r = subprocess.run(["curl", "-sS", "-o", str(page), "-w", "%{http_code} %{content_type}", url],
                       capture_output=True, text=True, timeout=30)
    assert r.stdout.startswith("200 text/html"), r.stdout + r.stderr

    class Ids(HTMLParser):
        ids: set = set()

        def handle_starttag(self, tag, attrs):
            if dict(attrs).get("id"):
                self.ids.add(dict(attrs)["id"])
    parser = Ids()
    parser.feed(page.read_text())
    assert set(parser.ids) == set(CATALOGUE) and "THREAT_NOT_FOUND" in parser.ids
    raised = set()
    for path in pathlib.Path(__file__).parents[2].joinpath("agent").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "AgentError" and node.args
                    and isinstance(node.args[0], ast.Constant)):
                raised.add(node.args[0].value)
    assert raised and raised <= set(CATALOGUE), raised - set(CATALOGUE)


def test_documentation_url_can_point_at_the_operators_docs(make_agent):
    a = make_agent("[capture]\nautostart = false\n[api]\ndocumentation_url = \"https://wiki.example/capbox/errors\"\n")
    body = envelope(a.client.raw("GET", "/v1/nothing"), 404, "NOT_FOUND")
    assert body["documentation_url"] == "https://wiki.example/capbox/errors#NOT_FOUND"
