"""The threaded WSGI server that serves the Bottle app: cheroot, over epoll.

cheroot replaced waitress, whose select() loop died for good on the first
descriptor above 1023 (about 1,000 idle connections, no key needed), and
which has no TLS.  cheroot's connection manager uses `selectors` (epoll
here: no descriptor ceiling, and a connection a worker hands back is
watched at once), and its `ssl` adapter slot takes the context below.

What is added around it, because a box on a hostile network needs it:
- a connection cap below the descriptor limit, and a per-client-address cap
  (over either, the new connection is closed at once);
- a cap on the workers one client address holds at once (a quarter of them):
  one host sending requests that never end (slowloris) cannot take them all;
  a request over that share is answered 503 + Retry-After with the API's
  error envelope (never a silent close), and counted;
- a new connection waits in the epoll set until it sends something, so idle
  connections hold no worker thread; idle ones are closed after
  idle_timeout_s;
- TLS (1.2 and 1.3 only, forward-secret AEAD suites), optionally with client
  certificates (mutual TLS); the handshake runs in a worker, never in the
  accept loop, so a client that connects and says nothing stalls nobody.

Request bodies are streamed to the app (never spooled): routes check their own
limits from Content-Length before reading (agent.api.app, jobs.upload)."""
import collections
import dataclasses
import http.client
import logging
import resource
import socket
import ssl
import threading
import uuid
from typing import Callable, Optional

from cheroot import connections, errors as cherrors, server as chserver, wsgi
from cheroot.makefile import StreamReader, StreamWriter
from cheroot.ssl import Adapter

log = logging.getLogger(__name__)
logging.getLogger("cheroot").setLevel(logging.CRITICAL)
FD_RESERVE = 256          # descriptors kept for the store, captures, recordings, jobs
# forward-secret AEAD suites only (TLS 1.3 suites are all AEAD and set by OpenSSL)
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!SHA1:!RC4:!3DES:!DSS:!PSK:!SRP:!CAMELLIA:!ARIA"
REFUSE_READ_S = 0.5       # an over-share request's head must arrive within this, or it is closed unanswered
REFUSE_DRAIN = 64 << 10   # body bytes of an over-share request still read, so the 503 is not lost to a reset
RETRY_AFTER_S = 1
# (code, message, details, request_id) -> the JSON error envelope (agent.api.app.Api.envelope)
Envelope = Callable[[str, str, dict, str], str]


@dataclasses.dataclass(frozen=True)
class Limits:
    max_connections: int = 4096
    per_client: int = 512
    idle_timeout_s: float = 30.0
    busy_per_client: int = 16     # workers one address may hold at once

@dataclasses.dataclass(frozen=True)
class Tls:
    cert: str
    key: str
    client_ca: str = ""          # set: every client must present a certificate signed by it


def tls_context(tls: Tls) -> ssl.SSLContext:
    """The server context: TLS 1.2+, no weak suites, client certificates when client_ca is set."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION
    ctx.load_cert_chain(tls.cert, tls.key)
    if tls.client_ca:
        ctx.load_verify_locations(cafile=tls.client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class _TlsAdapter(Adapter):
    """cheroot's adapter slot with our context; the handshake is deferred to a worker."""

    def __init__(self, context: ssl.SSLContext):   # pylint: disable=super-init-not-called
        self.context = context

    def bind(self, sock):
        return sock

    def wrap(self, sock):
        s = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return s, {"wsgi.url_scheme": "https", "HTTPS": "on"}

    def get_environ(self, sock=None):
        return {"wsgi.url_scheme": "https", "HTTPS": "on"}

    def makefile(self, sock, mode="r", bufsize=-1):
        return (StreamReader if "r" in mode else StreamWriter)(sock, mode, bufsize)


def descriptor_budget(wanted: int) -> int:
    """The connection cap that fits the descriptor limit (raised to the hard limit first)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return max(16, min(wanted, soft - FD_RESERVE))


class _Counter:
    """Open connections in total and per client address."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.total = 0
        self.by_addr: collections.Counter = collections.Counter()
        self.busy: collections.Counter = collections.Counter()   # connections in a worker, by address
        self.refused = 0         # connections closed at accept (over the total or per-address cap)
        self.busy_refused = 0    # requests answered 503 (their address held its share of the workers)
        self.lock = threading.Lock()

    def admit(self, addr: str) -> bool:
        with self.lock:
            if self.total >= self.limits.max_connections or self.by_addr[addr] >= self.limits.per_client:
                self.refused += 1
                return False
            self.total += 1
            self.by_addr[addr] += 1
            return True

    def enter(self, addr: str) -> bool:
        """A worker takes a connection of addr: False when addr holds its share already."""
        with self.lock:
            if self.busy[addr] >= self.limits.busy_per_client:
                self.busy_refused += 1
                return False
            self.busy[addr] += 1
            return True

    def leave(self, addr: str) -> None:
        with self.lock:
            self.busy[addr] -= 1
            if self.busy[addr] <= 0:
                del self.busy[addr]

    def release(self, addr: str) -> None:
        with self.lock:
            self.total -= 1
            self.by_addr[addr] -= 1
            if self.by_addr[addr] <= 0:
                del self.by_addr[addr]


def _refusal(envelope: Envelope, limit: int) -> bytes:
    """The whole 503 answer to a request over its address's share of the workers."""
    body = envelope("SERVICE_UNAVAILABLE",
                    f"this client address already has {limit} requests in progress; retry after {RETRY_AFTER_S} s",
                    {"reason": "busy_per_client", "limit": limit, "retry_after_seconds": RETRY_AFTER_S},
                    f"req_{uuid.uuid4().hex[:16]}").encode()
    head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: {RETRY_AFTER_S}\r\nConnection: close\r\n\r\n")
    return head.encode() + body


def _connection_class(counter: _Counter, envelope: Envelope):
    class Connection(chserver.HTTPConnection):
        counted = False
        handshaken = False

        def handshake(self) -> bool:
            """TLS: the handshake, once, in a worker; False for a bad or silent client."""
            if isinstance(self.socket, ssl.SSLSocket) and not self.handshaken:
                try:
                    self.socket.do_handshake()
                except (OSError, ValueError):
                    return False
                self.handshaken = True
            return True

        def communicate(self):
            addr = self.remote_addr or ""
            if not counter.enter(addr):
                return self.refuse()
            try:
                return self.handshake() and super().communicate()
            finally:
                counter.leave(addr)

        def refuse(self) -> bool:
            """Over the address's share: read the head briefly (a slow one is just closed),
            answer 503 + Retry-After with the envelope, close."""
            try:
                self.socket.settimeout(REFUSE_READ_S)
                if not self.handshake():
                    return False
                req = self.RequestHandlerClass(self.server, self)
                req.parse_request()
                if not req.ready:
                    return False
                self.wfile.write(_refusal(envelope, counter.limits.busy_per_client))
                length = req.inheaders.get(b"Content-Length", b"0")
                if length.isdigit() and 0 < int(length) <= REFUSE_DRAIN:
                    self.rfile.read(int(length))
            except (OSError, ValueError, cherrors.FatalSSLAlert, cherrors.NoSSLError):
                pass
            return False

        def close(self):
            if self.counted:
                self.counted = False
                counter.release(self.remote_addr or "")
            super().close()
    return Connection


class _Manager(connections.ConnectionManager):
    def __init__(self, server, counter: _Counter):
        super().__init__(server)
        self.counter = counter

    def _from_server_socket(self, server_socket):
        conn = super()._from_server_socket(server_socket)
        if conn is None:
            return None
        if not self.counter.admit(conn.remote_addr or ""):
            conn.close()
            return None
        conn.counted = True
        return conn


class _Wsgi(wsgi.Server):
    counter: _Counter

    def prepare(self):
        """Bind and listen now (port 0 gets its real port here); workers start in serve()."""
        start, self.requests.start = self.requests.start, lambda: None
        try:
            super().prepare()
        finally:
            del self.requests.start
        self._connections = _Manager(self, self.counter)

    def process_conn(self, conn):
        # a new connection goes to the epoll set first, so an idle one holds no worker
        if conn.last_used is None:
            self._connections.put(conn)
        else:
            super().process_conn(conn)


class Server:
    def __init__(self, app, host: str, port: int, threads: int, envelope: Envelope, limits: Limits = Limits(),
                 tls: Optional[Tls] = None):
        self.limits = dataclasses.replace(limits, max_connections=descriptor_budget(limits.max_connections))
        self.counter = _Counter(self.limits)
        self.tls = tls
        self.context = tls_context(tls) if tls else None
        srv = _Wsgi((host, port), app, numthreads=threads, server_name="capbox",
                    timeout=limits.idle_timeout_s, request_queue_size=1024, shutdown_timeout=2)
        srv.ConnectionClass = _connection_class(self.counter, envelope)
        srv.keep_alive_conn_limit = self.limits.max_connections
        srv.max_request_header_size = 64 << 10
        srv.max_request_body_size = 0        # each route checks its own limit (agent.api.app)
        if self.context is not None:
            srv.ssl_adapter = _TlsAdapter(self.context)
        srv.counter = self.counter
        srv.prepare()
        self.srv = srv
        self.host, self.port = srv.bind_addr[0], srv.bind_addr[1]
        self.scheme = "https" if tls else "http"
        self.ready = False

    def serve(self, component) -> None:
        component.beat()
        self.srv.requests.start()
        self.ready = True
        shown = self.host if ":" not in self.host else f"[{self.host}]"
        log.info("REST API on %s://%s:%d/v1 (at most %d connections, %d per client)", self.scheme, shown,
                 self.port, self.limits.max_connections, self.limits.per_client)
        self.srv.serve()

    def stop(self) -> None:
        self.ready = False
        self.srv.stop()

    def connections(self) -> dict:
        c = self.counter
        return {"open": c.total, "max": self.limits.max_connections, "per_client_max": self.limits.per_client,
                "refused": c.refused, "busy_per_client_max": self.limits.busy_per_client,
                "busy_refused": c.busy_refused}

    def probe(self, timeout: float = 3.0) -> bool:
        """True when GET /v1/health answers through the real listening socket
        (the systemd watchdog is pinged only then: a wedged API means a restart).
        With mutual TLS the agent has no client certificate: the server's
        handshake answer (a certificate request) counts as alive."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        try:
            if self.context is None:
                conn = http.client.HTTPConnection(host, self.port, timeout=timeout)
            else:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
                conn = http.client.HTTPSConnection(host, self.port, timeout=timeout, context=ctx)
            try:
                conn.request("GET", "/v1/health", headers={"Connection": "close"})
                return conn.getresponse().status in (200, 503)
            finally:
                conn.close()
        except ssl.SSLError:
            return bool(self.tls and self.tls.client_ca)   # the server answered the handshake and refused us
        except (OSError, http.client.HTTPException):
            return False
