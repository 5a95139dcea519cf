"""/v1 platform routes: health, ping, status, config, logs, stats, keys, the
OpenAPI document, and Prometheus /metrics."""
import html

import bottle

from agent.api.app import ADMIN, ERRORS_PAGE, PUBLIC, Api
from agent.api.openapi import document
from agent.api.validate import Field
from agent.auth import KINDS
from agent.bus import now_iso
from agent.errors import CATALOGUE

PERIODS = {"5m": 300, "15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
LOGS = {"limit": Field(int, 100, 1, 2000), "level": Field(str, "", choices=("", "debug", "info", "warning", "error")),
        "type": Field(str, "app", doc="app (everything), or one component: capture, api, store, runtime…")}
STATS = {"period": Field(str, "24h", choices=tuple(PERIODS))}
NEW_KEY = {"kind": Field(str, "pk", choices=tuple(KINDS)), "name": Field(str, "api key"),
           "scopes": Field(str, "", doc="comma-separated route groups a tk key may write to"),
           "ttl_s": Field(int, 0, 0, 10 * 365 * 86400, doc="expire after; tk keys default to a day")}


def register(api: Api) -> None:
    agent = api.agent

    @api.route("GET", "/v1/health", "Health of every component, host figures (503 when unhealthy)", access=PUBLIC)
    def health():
        body = agent.health_report()
        return (503 if body["status"] == "unhealthy" else 200), body

    @api.route("GET", "/v1/ping", "Is the agent answering")
    def ping():
        return {"pong": True, "timestamp": now_iso()}

    @api.route("GET", "/v1/status", "The agent, its mode and which data it has")
    def status():
        return agent.status_report()

    @api.route("GET", "/v1/config", "The running configuration")
    def config():
        return agent.cfg.as_dict()

    @api.route("GET", "/v1/logs", "Recent log records, newest first", query=LOGS)
    def logs(limit, level, type):
        return agent.logs.page(limit, level, type)

    @api.route("GET", "/v1/stats", "Traffic and agent figures over a period", query=STATS)
    def stats(period):
        return agent.stats(PERIODS[period]) | {"period": period, "timestamp": now_iso()}

    @api.route("GET", "/v1/keys", "API keys (never their secrets)", access=ADMIN)
    def keys():
        return agent.keys.listing()

    @api.route("POST", "/v1/keys", "Create an API key; the key is shown once", access=ADMIN, body=NEW_KEY)
    def create_key(kind, name, scopes, ttl_s):
        return 201, agent.keys.issue(kind, name, scopes, ttl_s)

    @api.route("DELETE", "/v1/keys/<key_id>", "Revoke an API key", access=ADMIN)
    def revoke_key(key_id):
        return agent.keys.withdraw(key_id)

    @api.route("GET", "/v1/openapi.json", "This API as an OpenAPI 3.1 document")
    def openapi():
        return document(api)

    @api.route("GET", ERRORS_PAGE, "Every error code: its HTTP status, what it means, what to do (HTML)",
               access=PUBLIC, tag="docs")
    def errors_page():
        return bottle.HTTPResponse(ERRORS_HTML, status=200, headers={"Content-Type": "text/html; charset=utf-8"})

    @api.route("GET", "/metrics", "Prometheus text exposition", access=PUBLIC, tag="metrics")
    def metrics():
        body, content_type = agent.metrics.exposition()
        return bottle.HTTPResponse(body, status=200, headers={"Content-Type": content_type})


def _errors_html() -> str:
    """The page every error answer's documentation_url points into: one anchor per code."""
    rows = "\n".join(f'<tr id="{code}"><td><a href="#{code}"><code>{code}</code></a></td><td>{status}</td>'
                     f"<td>{html.escape(text)}</td></tr>" for code, (status, text) in sorted(CATALOGUE.items()))
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>capbox API errors</title>"
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}td{padding:.3em .6em;"
            "vertical-align:top}tr:target{background:#ffc}</style></head><body>\n<h1>capbox API errors</h1>\n"
            "<p>Every error answer is <code>{\"error\": {\"code\", \"message\", \"details\"}, \"timestamp\", "
            "\"request_id\", \"documentation_url\"}</code>; its <code>documentation_url</code> points at the "
            "code's row here. Programs test the code, never the message.</p>\n"
            f"<table><tr><th>code</th><th>HTTP</th><th>what it means, what to do</th></tr>\n{rows}\n</table>"
            "</body></html>\n")


ERRORS_HTML = _errors_html()
