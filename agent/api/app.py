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
from agent.api.streams import RESERVED_WORKERS, StreamSlots
from agent.errors import AgentError
from agent.ratelimit import AuthThrottle, RateLimiter
from agent.store import StoreError

log = logging.getLogger(__name__)

READ, WRITE, ADMIN, PUBLIC = "read", "write", "admin", "public"   # who may call a route
ERRORS_PAGE = "/docs/errors"
DRAIN_MAX = 64 << 20     # bytes of a refused body still read (see _drain)


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
        a = agent.cfg.api
        self.ratelimit = RateLimiter({"get": a.rate_get, "write": a.rate_write, "verify": a.rate_verify,
                                      "verify_dns": a.rate_verify_dns, "threats": a.rate_threats,
                                      "deception_start": a.rate_deception_start})
        self.auth_throttle = AuthThrottle()
        # the event streams of /v1/events and /v1/jobs/<id>/events share these
        self.sse_slots = StreamSlots(a.sse_max_streams_per_key, max(1, a.threads - RESERVED_WORKERS))

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
            "documentation_url": f"{self.cfg.api.documentation_url or _own_docs()}#{code}",
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
            kwargs = _url_args(url_args)
            if info.query:
                kwargs.update(validate.parse(_query(), info.query, from_text=True, strict=False))
            if info.body:
                kwargs.update(validate.parse(self._json_body(info.max_body or self.max_body), info.body))
            result = fn(**kwargs)
            if isinstance(result, bottle.HTTPResponse):
                return result
            if isinstance(result, tuple):
                res.status, result = result
            return dumps(result)
        except AgentError as e:
            _drain(req.environ, authorized="capbox.key" in req.environ)
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
        header = req.get_header("Authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else req.query.get("token")
        key = self._verify(token, req.environ.get("REMOTE_ADDR", ""))
        if info.access == ADMIN and key.kind != "sk":
            raise AgentError("FORBIDDEN", f"only a full (sk) key may {info.method} {info.path}",
                             {"key_kind": key.kind, "required": "sk"})
        if not key.allows(info.method, info.tag):
            raise AgentError("FORBIDDEN", f"a {key.kind} key may not {info.method} {info.path}",
                             {"key_kind": key.kind, "required": "sk" if key.read_only else f"scope {info.tag}"})
        verdict = self.ratelimit.check(key.id, info.rate)
        for name, value in verdict.headers().items():
            bottle.response.set_header(name, value)
        if not verdict.allowed:
            raise AgentError("RATE_LIMIT_EXCEEDED",
                             f"Rate limit exceeded. Try again in {verdict.retry_after} seconds.",
                             {"limit": verdict.limit, "window_seconds": 60,
                              "retry_after_seconds": verdict.retry_after})
        return key

    def _verify(self, token: Optional[str], addr: str) -> ApiKey:
        """The key, with a backoff per client address after failures (429 + Retry-After):
        guessing keys, or flooding the box with bad ones, is slow for the one who does it."""
        throttle = self.auth_throttle
        wait = throttle.retry_after(addr)
        if wait:
            raise AgentError("RATE_LIMIT_EXCEEDED", f"too many failed authentications; retry in {wait} s",
                             {"retry_after_seconds": wait, "reason": "auth_failures",
                              "failures": throttle.failures(addr)})
        try:
            key = self.agent.keys.verify(token)
        except AgentError as e:
            if e.code == "INVALID_API_KEY" and token:
                throttle.failed(addr)
            raise
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
        except RecursionError:
            body = None
        if body is None and raw.strip() != b"null" or not validate.depth(body):
            raise AgentError("VALIDATION_ERROR", f"the JSON nests deeper than {validate.MAX_DEPTH} levels",
                             {"reason": "too_deep", "max_depth": validate.MAX_DEPTH})
        if not isinstance(body, dict):
            raise AgentError("VALIDATION_ERROR", "the body must be a JSON object", {"reason": "not_an_object"})
        return body


def _own_docs() -> str:
    """This agent's error reference, at the address the client used to reach it (relative when the
    answer is made outside a request: the server's own 503 to a client over its share)."""
    try:
        scheme, netloc = bottle.request.urlparts[:2]
    except (RuntimeError, KeyError):
        return ERRORS_PAGE
    return f"{scheme}://{netloc}{ERRORS_PAGE}"


def _drain(environ: dict, authorized: bool) -> None:
    """Read what is left of a refused body (up to DRAIN_MAX), so that a client still
    sending reads the answer instead of a reset; a larger one, or one from a client
    without a valid key, closes the connection instead."""
    try:
        left = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        left = 0
    stream = environ.get("wsgi.input")
    if left <= 0 or stream is None:
        return
    if left > DRAIN_MAX or not authorized:
        bottle.response.set_header("Connection", "close")
        return
    try:
        while stream.read(1 << 20):
            pass
    except (OSError, ValueError):
        pass


def _query() -> dict:
    """The query string as text; bytes that are not UTF-8 are a 400."""
    try:
        return dict(bottle.request.query.decode())
    except UnicodeError:
        raise AgentError("VALIDATION_ERROR", "the query string is not valid UTF-8",
                         {"reason": "bad_encoding"}) from None


def _url_args(url_args: dict) -> dict:
    """Path parameters: integers within 0..2^63-1 (SQLite's); Bottle has decoded the text."""
    for name, value in url_args.items():
        if isinstance(value, int) and not 0 <= value <= validate.INT_MAX:
            raise AgentError("VALIDATION_ERROR", f"{name} must be between 0 and {validate.INT_MAX}",
                             {"field": name, "min": 0, "max": validate.INT_MAX})
    return dict(url_args)


def _is_store_error() -> bool:
    return isinstance(sys.exc_info()[1], (StoreError, sqlite3.Error))
