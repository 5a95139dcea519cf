"""A small client for the agent's REST API (tests, scripts, the TUI).

Standard library only.  Errors come back as ApiError with the envelope's
code, so callers branch on codes, never on message text."""
import http.client
import json
import os
import pathlib
import urllib.parse
from typing import Iterator, Optional


def default_key(data_dir) -> Optional[str]:
    """The key a console on this box uses unless told: CAPBOX_KEY, or the admin key in the data directory."""
    key = os.environ.get("CAPBOX_KEY")
    if key:
        return key
    try:
        return (pathlib.Path(data_dir) / "admin.key").read_text().strip() or None
    except OSError:
        return None


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Optional[dict] = None,
                 headers: Optional[dict] = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}


class Response:
    def __init__(self, status: int, headers: dict, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body) if self.body else None


class Client:
    """Over HTTP to an agent, or in the same process (InProcessClient)."""

    def __init__(self, url: str = "http://127.0.0.1:8080", key: Optional[str] = None, timeout: float = 10.0):
        u = urllib.parse.urlsplit(url)
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or 80
        self.key = key
        self.timeout = timeout

    def _conn(self, timeout: Optional[float] = None) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout or self.timeout)

    def _headers(self, extra: Optional[dict] = None) -> dict:
        h = {"Accept": "application/json"}
        if self.key:
            h["Authorization"] = f"Bearer {self.key}"
        h.update(extra or {})
        return h

    def raw(self, method: str, path: str, body: Optional[bytes] = None, headers: Optional[dict] = None,
            query: Optional[dict] = None) -> Response:
        """One request as it is: no error handling, the response whatever it is."""
        if query:
            path += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        conn = self._conn()
        try:
            conn.request(method, path, body=body, headers=self._headers(headers))
            r = conn.getresponse()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()

    def request(self, method: str, path: str, body: Optional[dict] = None, query: Optional[dict] = None):
        data = None if body is None else json.dumps(body).encode()
        r = self.raw(method, path, data, {"Content-Type": "application/json"} if data else None, query)
        payload = r.json() if r.headers.get("content-type", "").startswith("application/json") else r.body
        if r.status >= 400:
            err = (payload or {}).get("error", {}) if isinstance(payload, dict) else {}
            raise ApiError(r.status, err.get("code", "HTTP_ERROR"), err.get("message", str(r.body[:200])),
                           err.get("details"), r.headers)
        return payload

    def get(self, path: str, **query):
        return self.request("GET", path, query=query or None)

    def post(self, path: str, body: Optional[dict] = None):
        return self.request("POST", path, body or {})

    def delete(self, path: str):
        return self.request("DELETE", path)

    # the routes the consoles use
    def health(self) -> dict:
        try:
            return self.get("/v1/health")
        except ApiError as e:  # 503 still carries the health document
            if e.status == 503:
                return self.raw("GET", "/v1/health").json()
            raise

    def capture_status(self) -> dict:
        return self.get("/v1/capture/status")

    def capture_start(self, **fields) -> dict:
        return self.post("/v1/capture/start", fields)

    def capture_stop(self, reason: str = "manual") -> dict:
        return self.post("/v1/capture/stop", {"reason": reason})

    def capture_metrics(self) -> dict:
        return self.get("/v1/capture/metrics")

    def capture_flows(self, **query) -> dict:
        return self.get("/v1/capture/flows", **query)

    def events(self, channels: str = "", last_event_id: Optional[int] = None,
               timeout: float = 60.0) -> Iterator[dict]:
        """Server-Sent Events as dicts: {"id", "event", "data"}; comments are skipped."""
        conn = self._conn(timeout)
        headers = self._headers({"Accept": "text/event-stream"})
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        path = "/v1/events" + (f"?channels={urllib.parse.quote(channels)}" if channels else "")
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        if r.status != 200:
            body = json.loads(r.read() or b"{}").get("error", {})
            conn.close()
            raise ApiError(r.status, body.get("code", "HTTP_ERROR"), body.get("message", ""), body.get("details"))
        try:
            event: dict = {}
            for raw in r:
                line = raw.decode("utf-8").rstrip("\r\n")
                if not line:
                    if "data" in event:
                        event["data"] = json.loads(event["data"])
                        yield event
                    event = {}
                elif line.startswith(":"):
                    continue
                else:
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if name == "data" and "data" in event:
                        value = event["data"] + "\n" + value
                    event[name] = value
        finally:
            conn.close()


class InProcessClient(Client):
    """The same API called inside the agent's process, through its WSGI app:
    the same routes, validation and services as over HTTP, without a socket.
    The console in the agent's own process uses it with full rights."""

    def __init__(self, app):
        super().__init__()
        self.app = app

    def raw(self, method: str, path: str, body: Optional[bytes] = None, headers: Optional[dict] = None,
            query: Optional[dict] = None) -> Response:
        import io
        from wsgiref.util import setup_testing_defaults
        env = {"REQUEST_METHOD": method, "PATH_INFO": urllib.parse.unquote(path),
               "QUERY_STRING": urllib.parse.urlencode({k: v for k, v in (query or {}).items() if v is not None}),
               "wsgi.input": io.BytesIO(body or b""), "CONTENT_LENGTH": str(len(body or b"")),
               "capbox.trusted": True}
        for k, v in (headers or {}).items():
            if k.lower() == "content-type":
                env["CONTENT_TYPE"] = v
            else:
                env["HTTP_" + k.upper().replace("-", "_")] = v
        setup_testing_defaults(env)
        status, hdrs = [], []

        def start_response(s, h, exc_info=None):
            status.append(s)
            hdrs.extend(h)
        chunks = self.app(env, start_response)
        try:
            data = b"".join(c if isinstance(c, bytes) else c.encode() for c in chunks)
        finally:
            getattr(chunks, "close", lambda: None)()
        return Response(int(status[0].split()[0]), {k.lower(): v for k, v in hdrs}, data)
