"""A small client for the agent's REST API (tests, scripts, the TUI).

Standard library only.  Errors come back as ApiError (a subclass per kind of
failure: NotFound, RateLimited ...) with the envelope's code, so callers
branch on types or codes, never on message text.

    c = Client("https://box:8443", key, pin="SHA256 AB:CD:...")   # or cacert=FILE; http:// on loopback
    for t in c.list_threats(severity="high")["threats"]: ...
    job = c.upload_job("call.pcap")["job_id"]
    for ev in c.follow("threats:raised"): ...     # reconnects, resuming after the last event seen
"""
import contextlib
import hashlib
import hmac
import http.client
import json
import os
import pathlib
import re
import secrets
import ssl
import time
import urllib.parse
from typing import Iterator, Optional

from agent.auth import fingerprint


def default_key(data_dir) -> Optional[str]:
    """The key a console on this box uses unless told: CAPBOX_KEY, or the admin key in the data directory."""
    key = os.environ.get("CAPBOX_KEY")
    if key:
        return key
    try:
        return (pathlib.Path(data_dir) / "admin.key").read_text().strip() or None
    except OSError:
        return None


class PinMismatch(ssl.SSLCertVerificationError):
    """The agent's certificate is not the one pinned: nothing was sent (not the key, not the request)."""


def parse_pin(text: str) -> bytes:
    """A certificate pin as the console prints it (`SHA256 AB:CD:...`), or as bare hex: its 32 bytes."""
    t = text.strip()
    t = re.sub(r"^sha-?256[:= ]\s*", "", t, flags=re.IGNORECASE).replace(":", "").replace(" ", "")
    if not re.fullmatch(r"[0-9a-fA-F]{64}", t):
        raise ValueError(f"a pin is the certificate's SHA-256 fingerprint, 64 hex digits (colons allowed), "
                         f"not {text!r}")
    return bytes.fromhex(t)


def tls_context(cacert: Optional[str] = None, pin: Optional[str] = None) -> ssl.SSLContext:
    """TLS 1.2 or later.  With --pin the chain and name are not checked (a box's certificate is
    self-signed): the certificate's own hash is, in _PinnedHTTPS.connect.  With --cacert it must
    chain to that file and name the host.  Neither: the system's trust store."""
    if cacert and pin:
        raise ValueError("give --cacert or --pin, not both")
    if pin:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx = ssl.create_default_context(cafile=cacert)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS that checks the server's certificate against a pin right after the handshake."""

    def __init__(self, host, port, pin: bytes, **kw):
        super().__init__(host, port, **kw)
        self.pin = pin

    def connect(self):
        super().connect()
        der = self.sock.getpeercert(binary_form=True) or b""
        if not hmac.compare_digest(hashlib.sha256(der).digest(), self.pin):
            self.sock.close()
            self.sock = None
            raise PinMismatch(f"the certificate of {self.host}:{self.port} is {fingerprint(der)}, "
                              "not the pinned one")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Optional[dict] = None,
                 headers: Optional[dict] = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}


class BadRequest(ApiError):
    """400 or 422: the request was wrong (the code says how)."""


class Unauthorized(ApiError):
    """401: no key, or one that is not valid."""


class Forbidden(ApiError):
    """403: the key may not do this."""


class NotFound(ApiError):
    """404: no such resource."""


class Conflict(ApiError):
    """409: not in this state."""


class TooLarge(ApiError):
    """413: the body is over the route's limit."""


class RateLimited(ApiError):
    """429: too many requests; retry_after seconds to wait."""

    @property
    def retry_after(self) -> float:
        try:
            return float(self.headers.get("retry-after", 1))
        except ValueError:
            return 1.0


class Unavailable(ApiError):
    """503: the agent cannot do it now."""


ERRORS = {400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 413: TooLarge,
          422: BadRequest, 429: RateLimited, 503: Unavailable}


def api_error(status: int, envelope, headers: Optional[dict] = None, body: bytes = b"") -> ApiError:
    """The ApiError subclass for a status, from an error envelope (or what came instead of one)."""
    err = envelope.get("error", {}) if isinstance(envelope, dict) else {}
    cls = ERRORS.get(status, ApiError)
    return cls(status, err.get("code", "HTTP_ERROR"), err.get("message", body[:200].decode(errors="replace")),
               err.get("details"), headers)


class _Multipart:
    """A file as multipart/form-data, read in blocks (an upload of gigabytes never sits in memory)."""

    def __init__(self, path: str, field: str = "file"):
        self.boundary = "capbox" + secrets.token_hex(12)
        name = os.path.basename(path).replace('"', "")
        self._head = (f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n"
                      "Content-Type: application/octet-stream\r\n\r\n").encode()
        self._tail = f"\r\n--{self.boundary}--\r\n".encode()
        self._file = open(path, "rb")
        self.length = len(self._head) + os.fstat(self._file.fileno()).st_size + len(self._tail)
        self._parts = [self._head, None, self._tail]

    def read(self, n: int = -1) -> bytes:
        while self._parts:
            part = self._parts[0]
            if part is None:
                data = self._file.read(n if n > 0 else 1 << 20)
                if data:
                    return data
                self._parts.pop(0)
                continue
            data, rest = (part, b"") if n < 0 else (part[:n], part[n:])
            if rest:
                self._parts[0] = rest
            else:
                self._parts.pop(0)
            return data
        return b""

    def close(self) -> None:
        self._file.close()


class Response:
    def __init__(self, status: int, headers: dict, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body) if self.body else None


class Client:
    """Over HTTP or HTTPS (--cacert, --pin) to an agent in another process.  The consoles call the
    named methods below; agent.console.local.LocalClient has the same ones for the agent in this process."""

    def __init__(self, url: str = "http://127.0.0.1:8080", key: Optional[str] = None, timeout: float = 10.0,
                 cacert: Optional[str] = None, pin: Optional[str] = None):
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https"):
            raise ValueError(f"an agent's URL is http:// or https://, not {url!r}")
        self.https = u.scheme == "https"
        if (cacert or pin) and not self.https:
            raise ValueError(f"--cacert and --pin are for an https:// URL, not {url!r}")
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or (443 if self.https else 80)
        self.key = key
        self.timeout = timeout
        self.pin = parse_pin(pin) if pin else None
        self.tls = tls_context(cacert, pin) if self.https else None

    def _conn(self, timeout: Optional[float] = None) -> http.client.HTTPConnection:
        t = timeout or self.timeout
        if self.pin:
            return _PinnedHTTPS(self.host, self.port, self.pin, timeout=t, context=self.tls)
        if self.https:
            return http.client.HTTPSConnection(self.host, self.port, timeout=t, context=self.tls)
        return http.client.HTTPConnection(self.host, self.port, timeout=t)

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
            raise api_error(r.status, payload, r.headers, r.body)
        return payload

    @contextlib.contextmanager
    def _stream(self, path: str, accept: str = "application/json", timeout: Optional[float] = None):
        """A GET whose body is read as it comes: (response, lower-cased headers) while open;
        ApiError, before any of the body is handed over, for a refusal."""
        conn = self._conn(timeout)
        try:
            conn.request("GET", path, headers=self._headers({"Accept": accept}))
            r = conn.getresponse()
            headers = {k.lower(): v for k, v in r.getheaders()}
            if r.status >= 400:
                body = r.read()
                try:
                    envelope = json.loads(body)
                except ValueError:
                    envelope = None
                raise api_error(r.status, envelope, headers, body)
            yield r, headers
        finally:
            conn.close()

    def download(self, path: str, out, query: Optional[dict] = None, timeout: float = 300.0) -> dict:
        """GET a body that may be large (a pcapng) into the binary file `out` as it comes: the response's
        headers; ApiError (nothing written) for a refusal."""
        if query:
            path += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        with self._stream(path, "*/*", timeout) as (r, headers):
            while True:
                data = r.read(1 << 16)
                if not data:
                    break
                out.write(data)
            return headers

    def pcap(self, out, **query) -> dict:
        """GET /v1/pcap into `out` (since, until, bpf, flow, threat, call, pad_s): the response's headers."""
        return self.download("/v1/pcap", out, {k: v for k, v in query.items() if v not in (None, "")})

    def get(self, path: str, **query):
        return self.request("GET", path, query=query or None)

    def post(self, path: str, body: Optional[dict] = None):
        return self.request("POST", path, body or {})

    def delete(self, path: str):
        return self.request("DELETE", path)

    # ---- the routes the consoles use (agent.console.local.LocalClient has the same methods) ----

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

    def capture_backends(self) -> dict:
        return self.get("/v1/capture/backends")

    def capture_filter(self, bpf: str) -> dict:
        return self.post("/v1/capture/filter", {"bpf": bpf})

    def status(self) -> dict:
        return self.get("/v1/status")

    def recent_logs(self, **query) -> dict:
        """GET /v1/logs: limit, level, type."""
        return self.get("/v1/logs", **query)

    def windows(self, **query) -> dict:
        return self.get("/v1/windows", **query)

    def compute_windows(self, **body) -> dict:
        return self.post("/v1/windows/compute", body)

    def anomalies(self, **query) -> dict:
        return self.get("/v1/anomalies", **query)

    def anomalies_by_type(self, **query) -> dict:
        return self.get("/v1/anomalies/by-type", **query)

    def baselines(self, **query) -> dict:
        return self.get("/v1/baselines", **query)

    def calls(self, **query) -> dict:
        return self.get("/v1/calls", **query)

    def call_ladder(self, session_id: str) -> dict:
        return self.get(f"/v1/sessions/{urllib.parse.quote(session_id, safe='')}/ladder")

    def firmware(self) -> dict:
        return self.get("/v1/firmware")

    def verify_firmware(self, firmware_path: str, signature_path: str = "") -> dict:
        return self.get("/v1/firmware/verify", firmware_path=firmware_path, signature_path=signature_path or None)

    def system(self) -> dict:
        return self.get("/v1/system")

    def list_keys(self) -> dict:
        return self.get("/v1/keys")

    def create_key(self, **body) -> dict:
        """POST /v1/keys: kind, name, scopes, ttl_s."""
        return self.post("/v1/keys", body)

    def revoke_key(self, key_id: str) -> dict:
        return self.delete(f"/v1/keys/{urllib.parse.quote(key_id, safe='')}")

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
            body = r.read()
            conn.close()
            try:
                envelope = json.loads(body or b"{}")
            except ValueError:
                envelope = {}
            raise api_error(r.status, envelope, {k.lower(): v for k, v in r.getheaders()}, body)
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


    def follow(self, channels: str = "", last_event_id: Optional[int] = None, retry_s: float = 1.0,
               timeout: float = 60.0) -> Iterator[dict]:
        """events() for good: a dropped stream is opened again with Last-Event-ID, so nothing the
        agent still holds in its backlog is missed.  Ends only when the caller stops iterating;
        errors that retrying cannot fix (401, 403, 400) are raised."""
        while True:
            try:
                for ev in self.events(channels, last_event_id, timeout):
                    if ev.get("id", "").isdigit():
                        last_event_id = int(ev["id"])
                    yield ev
            except (OSError, http.client.HTTPException, Unavailable, RateLimited):
                pass
            time.sleep(retry_s)

    # ---- the monitor's helpers (seed 003), jobs and stats ---------------------------------

    def list_threats(self, **query) -> dict:
        """GET /v1/threats: attack_type, severity, verified, status, since, limit, offset."""
        return self.get("/v1/threats", **query)

    def get_threat(self, threat_id: str) -> dict:
        return self.get(f"/v1/threats/{urllib.parse.quote(threat_id, safe='')}")

    def mark_threat(self, threat_id: str, status: str, note: Optional[str] = None) -> dict:
        body = {"status": status} if note is None else {"status": status, "note": note}
        return self.request("PATCH", f"/v1/threats/{urllib.parse.quote(threat_id, safe='')}", body)

    def verify_url(self, url: str, **options) -> dict:
        """POST /v1/verify: num_paths, timeout, strategy, compare_method, paths ..."""
        return self.post("/v1/verify", {"url": url, **options})

    def verify_dns(self, domain: str, record_type: str = "A", **options) -> dict:
        return self.post("/v1/verify-dns", {"domain": domain, "record_type": record_type, **options})

    def verify_tls(self, host: str, port: int = 443, **options) -> dict:
        """POST /v1/verify-tls: sni, local_fingerprint, num_paths, timeout, strategy, paths ..."""
        return self.post("/v1/verify-tls", {"host": host, "port": port, **options})

    def start_deception(self, target_domain: str, attacker_ip: str, **options) -> dict:
        return self.post("/v1/deception/start", {"target_domain": target_domain, "attacker_ip": attacker_ip,
                                                 **options})

    def stop_deception(self, session_id: str) -> dict:
        return self.post("/v1/deception/stop", {"session_id": session_id})

    def get_stats(self, period: str = "24h") -> dict:
        return self.get("/v1/stats", period=period)

    def upload_job(self, path: str, timeout: Optional[float] = None) -> dict:
        """POST /v1/jobs with a capture file, streamed from disk: {job_id, status}."""
        body = _Multipart(path)
        conn = self._conn(timeout or max(self.timeout, 300))
        try:
            conn.request("POST", "/v1/jobs", body=body, headers=self._headers({
                "Content-Type": f"multipart/form-data; boundary={body.boundary}",
                "Content-Length": str(body.length)}))
            r = conn.getresponse()
            data = r.read()
        finally:
            body.close()
            conn.close()
        payload = json.loads(data) if data else None
        if r.status >= 400:
            raise api_error(r.status, payload, {k.lower(): v for k, v in r.getheaders()}, data)
        return payload

    def log_records(self, kind: str, **query) -> dict:
        """GET /v1/logs/{type} as one answer ({"type", "records", "count"}): for a few records."""
        return self.get(f"/v1/logs/{urllib.parse.quote(kind, safe='')}", **query)

    def logs(self, kind: str, **query) -> Iterator[dict]:
        """The records of one protocol log type (GET /v1/logs/{type} as JSON lines), as they arrive."""
        q = {k: v for k, v in query.items() if v not in (None, "")} | {"format": "jsonl"}
        path = f"/v1/logs/{urllib.parse.quote(kind, safe='')}?{urllib.parse.urlencode(q)}"
        with self._stream(path) as (r, _):
            for line in r:
                if line.strip():
                    yield json.loads(line)
