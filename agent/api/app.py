"""The REST face: one Bottle app under /v1, JSON everywhere.

Every route is declared through Api.route, which wraps it with what every
request gets: a request id, the API key check, the rate limit, the JSON
error envelope (also for 404, 405, 413, 415 and bad JSON), and an entry in
the OpenAPI document.  Nothing here knows how capture works: routes call
the agent's services, as the console and the TUI do."""
import dataclasses
import json
import logging
import sqlite3
import sys
import time
import uuid
from typing import Callable, Optional

import bottle

from agent.auth import ApiKey
from agent.bus import now_iso
from agent.api import validate
from agent.errors import AgentError
from agent.store import StoreError

log = logging.getLogger(__name__)

READ, WRITE, ADMIN, PUBLIC = "read", "write", "admin", "public"   # who may call a route
TRUSTED = ApiKey("local", "sk", "in-process console", ("*",), 0.0, None, None)


@dataclasses.dataclass
class RouteInfo:
    method: str
    path: str
    summary: str
    access: str
    rate: str
    query: dict
    body: dict
    tag: str
    deprecated: Optional[str] = None
    max_body: Optional[int] = None   # bytes; None: api.max_body_kb


def json_default(o):
    """JSON for what the services hand out: dataclasses, bytes, sets."""
    if dataclasses.is_dataclass(o):
        return dataclasses.asdict(o)
    if isinstance(o, (bytes, bytearray)):
        return o.hex()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    return str(o)


def dumps(obj) -> str:
    return json.dumps(obj, default=json_default, separators=(",", ":"))


class Api:
    def __init__(self, agent):
        self.agent = agent
        self.cfg = agent.cfg
        self.routes: list = []
        self.app = bottle.Bottle()
        self.app.config['catchall'] = False
        self.app.default_error_handler = self._bottle_error
        self.max_body = agent.cfg.api.max_body_kb * 1024
        self.app.add_hook("before_request", self._before)
        self.app.add_hook("after_request", self._after)

    # ---- hooks ----------------------------------------------------------------

    def _before(self) -> None:
        env = bottle.request.environ
        env["capbox.request_id"] = f"req_{uuid.uuid4().hex[:16]}"
        env["capbox.start"] = time.monotonic()
        path = env.get("PATH_INFO", "/")
        if len(path) > 1 and path.endswith("/"):  # trailing slashes tolerated
            env["PATH_INFO"] = path.rstrip("/")

    def _after(self) -> None:
        r = bottle.response
        r.set_header("X-Request-ID", bottle.request.environ.get("capbox.request_id", ""))
        origins = self.cfg.api.cors_origins
        origin = bottle.request.get_header("Origin")
        if origins and origin and (origin in origins or "*" in origins):
            r.set_header("Access-Control-Allow-Origin", origin)
            r.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID")
            r.set_header("Access-Control-Allow-Methods", "GET, POST, PATCH, DELETE, OPTIONS")
            r.set_header("Vary", "Origin")

    def envelope(self, code: str, message: str, details: Optional[dict] = None, request_id: str = "") -> str:
        if not request_id:
            request_id = bottle.request.environ.get("capbox.request_id") or f"req_{uuid.uuid4().hex[:16]}"
        return dumps({
            "error": {"code": code, "message": message, "details": details or {}},
            "timestamp": now_iso(),
            "request_id": request_id,
            "documentation_url": f"{self.cfg.api.documentation_url}#{code}",
        })

    def _bottle_error(self, err: bottle.HTTPError) -> str:
        """Errors Bottle raises itself: unknown routes, wrong methods, and the rest."""
        status = err.status_code
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE",
                415: "UNSUPPORTED_MEDIA_TYPE"}.get(status, "INTERNAL_ERROR" if status >= 500 else "VALIDATION_ERROR")
        details = {}
        if status == 404:
            message = f"no route {bottle.request.method} {bottle.request.path}"
        elif status == 405:
            message = f"{bottle.request.method} is not allowed on {bottle.request.path}"
            details["allowed"] = err.headers.get("Allow", "") if err.headers else ""
        elif status >= 500:
            message = "internal error"
            if err.exception is not None:
                log.error("request %s: %r", bottle.request.environ.get("capbox.request_id"), err.exception)
        else:
            message = str(err.body) if err.body else bottle.HTTP_CODES.get(status, "error")
        bottle.response.content_type = "application/json"
        return self.envelope(code, message, details)

    # ---- the route wrapper -------------------------------------------------------

    def route(self, method: str, path: str, summary: str, access: str = READ, rate: str = "",
              query: Optional[dict] = None, body: Optional[dict] = None, tag: str = "",
              deprecated: Optional[str] = None, max_body: Optional[int] = None):
        """Declare a route: fn(**query, **body, **url_args) returns a JSON-able
        value (or a (status, value) pair, or a bottle.HTTPResponse)."""
        rate = rate or ("get" if method == "GET" else "write")
        info = RouteInfo(method, path, summary, access, rate, query or {}, body or {},
                         tag or path.split("/")[2], deprecated, max_body)
        self.routes.append(info)

        def decorate(fn: Callable):
            def handler(**url_args):
                return self._handle(info, fn, url_args)
            self.app.route(path, method, handler)
            return fn
        return decorate

    def _handle(self, info: RouteInfo, fn: Callable, url_args: dict):
        req, res = bottle.request, bottle.response
        res.content_type = "application/json"
        if info.deprecated:
            res.set_header("Deprecation", "true")
            res.set_header("Sunset", info.deprecated)
        try:
            key = self._authorize(info)
            req.environ["capbox.key"] = key
            kwargs = dict(url_args)
            if info.query:
                kwargs.update(validate.parse(dict(req.query.decode()), info.query, from_text=True, strict=False))
            if info.body:
                kwargs.update(validate.parse(self._json_body(info.max_body or self.max_body), info.body))
            result = fn(**kwargs)
            if isinstance(result, bottle.HTTPResponse):
                return result
            if isinstance(result, tuple):
                res.status, result = result
            return dumps(result)
        except AgentError as e:
            res.status = e.status
            if e.code == "RATE_LIMIT_EXCEEDED" and "Retry-After" not in res.headers:
                res.set_header("Retry-After", str(e.details.get("retry_after_seconds", 1)))
            return self.envelope(e.code, e.message, e.details)
        except Exception:
            rid = req.environ.get("capbox.request_id")
            log.exception("request %s %s %s failed", rid, req.method, req.path)
            res.status = 500
            code = "DATABASE_ERROR" if _is_store_error() else "INTERNAL_ERROR"
            return self.envelope(code, "the request failed inside the agent; the log has the details",
                                 {"request_id": rid})

    def _authorize(self, info: RouteInfo) -> Optional[ApiKey]:
        req = bottle.request
        if info.access == PUBLIC:
            return None
        if req.environ.get("capbox.trusted"):  # the console in the agent's own process
            return TRUSTED
        header = req.get_header("Authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else req.query.get("token")
        key = self.agent.keys.verify(token)
        if info.access == ADMIN and key.kind != "sk":
            raise AgentError("FORBIDDEN", f"only a full (sk) key may {info.method} {info.path}",
                             {"key_kind": key.kind, "required": "sk"})
        if not key.allows(info.method, info.tag):
            raise AgentError("FORBIDDEN", f"a {key.kind} key may not {info.method} {info.path}",
                             {"key_kind": key.kind, "required": "sk" if key.read_only else f"scope {info.tag}"})
        verdict = self.agent.ratelimit.check(key.id, info.rate)
        for name, value in verdict.headers().items():
            bottle.response.set_header(name, value)
        if not verdict.allowed:
            raise AgentError("RATE_LIMIT_EXCEEDED",
                             f"Rate limit exceeded. Try again in {verdict.retry_after} seconds.",
                             {"limit": verdict.limit, "window_seconds": 60,
                              "retry_after_seconds": verdict.retry_after})
        return key

    def _json_body(self, max_body: int) -> dict:
        req = bottle.request
        length = req.content_length
        if length > max_body:
            raise AgentError("PAYLOAD_TOO_LARGE", f"the body is larger than {max_body} bytes",
                             {"max_bytes": max_body})
        ctype = (req.content_type or "").split(";")[0].strip().lower()
        if "chunked" in req.environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            raw = req.body.read(max_body + 1)
            if len(raw) > max_body:
                raise AgentError("PAYLOAD_TOO_LARGE", f"the body is larger than {max_body} bytes",
                                 {"max_bytes": max_body})
        else:
            raw = req.environ["wsgi.input"].read(length) if length > 0 else b""
        if not raw.strip():
            return {}
        if ctype != "application/json":
            raise AgentError("UNSUPPORTED_MEDIA_TYPE", "send the body as application/json",
                             {"content_type": ctype or None})
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise AgentError("VALIDATION_ERROR", f"malformed JSON: {e}", {"reason": "malformed_json"}) from None
        if not isinstance(body, dict):
            raise AgentError("VALIDATION_ERROR", "the body must be a JSON object", {"reason": "not_an_object"})
        return body


def _is_store_error() -> bool:
    return isinstance(sys.exc_info()[1], (StoreError, sqlite3.Error))
