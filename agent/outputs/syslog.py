"""Syslog senders: RFC 5424 messages over UDP (RFC 5426), TCP with octet
counting (RFC 6587) and TLS (RFC 5425).

Written here rather than taken from logging.handlers.SysLogHandler (RFC 3164
framing only, no TLS) or rfc5424-logging-handler (blocking sends from the
caller's thread): a sender must never hold up the agent, so each target has
its own thread, a bounded queue that counts what it drops, and reconnects
with backoff when the collector goes away."""
import collections
import dataclasses
import logging
import socket
import ssl
import threading
import time
from typing import Optional

from agent.addresses import split_host_port

log = logging.getLogger(__name__)
FACILITIES = {"kern": 0, "user": 1, "daemon": 3, "auth": 4, "syslog": 5, "local0": 16, "local1": 17, "local2": 18,
              "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23}
SCHEMES = {"udp": 514, "tcp": 601, "tls": 6514}
SD_ID = "capbox@32473"        # 32473: the enterprise number RFC 5612 sets aside for examples
UDP_MAX = 65507
BACKOFF_S = (0.5, 1, 2, 5, 10)

def _sd_value(value) -> str:
    """An SD-PARAM value: '"', '\\' and ']' escaped (RFC 5424 6.3.3)."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")

def _header_field(text: str, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, or NILVALUE."""
    text = "".join(ch for ch in text if 33 <= ord(ch) <= 126)[:limit]
    return text or "-"

def format_message(msg: str, *, facility: int, severity: int, timestamp: str, hostname: str, app: str,
                   procid: str, msgid: str, params: dict) -> bytes:
    """One RFC 5424 message: <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG."""
    sd = " ".join(f'{k}="{_sd_value(v)}"' for k, v in params.items() if v is not None and v != "")
    structured = f"[{SD_ID} {sd}]" if sd else "-"
    head = (f"<{facility * 8 + severity}>1 {timestamp} {_header_field(hostname, 255)} {_header_field(app, 48)} "
            f"{_header_field(procid, 128)} {_header_field(msgid, 32)} {structured}")
    return f"{head} {msg}".encode("utf-8")

@dataclasses.dataclass(frozen=True)
class Target:
    scheme: str        # udp, tcp, tls
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

def parse_target(url: str) -> Target:
    """"tls://logs.example:6514" as a Target; ValueError names what is wrong."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in SCHEMES:
        raise ValueError(f"{url!r} is not SCHEME://HOST[:PORT] with a scheme of {', '.join(SCHEMES)}")
    host, port = split_host_port(rest)
    if not host or (port and (not port.isdigit() or not 1 <= int(port) <= 65535)):
        raise ValueError(f"{url!r}: give HOST or HOST:PORT with a port in 1..65535")
    return Target(scheme, host, int(port) if port else SCHEMES[scheme])


class Sender:
    """One collector: a thread that sends what send() queued, reconnecting as needed."""

    def __init__(self, target: Target, queue_size: int, tls: Optional[ssl.SSLContext] = None):
        self.target = target
        self.tls = tls
        self._queue: collections.deque = collections.deque()
        self._size = queue_size
        self._cv = threading.Condition()
        self._stop = threading.Event()
        self._sock: Optional[socket.socket] = None
        self.sent = self.dropped = self.errors = self.connects = 0
        self.last_error = ""
        self._thread = threading.Thread(target=self._loop, name=f"syslog-{target.scheme}-{target.port}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def send(self, message: bytes) -> None:
        """Queue one message; never blocks (a full queue drops the oldest and counts it)."""
        with self._cv:
            if len(self._queue) >= self._size:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(message)
            self._cv.notify()

    def stop(self, timeout: float = 2.0) -> None:
        """Send what is queued (for up to timeout), then close."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._queue and time.monotonic() < deadline:
                self._cv.wait(0.05)
            self._stop.set()
            self._cv.notify_all()
        self._thread.join(max(0.1, deadline - time.monotonic()))
        self._close()

    def detail(self) -> dict:
        return {"target": self.target.url, "sent": self.sent, "queued": len(self._queue), "dropped": self.dropped,
                "errors": self.errors, "connects": self.connects, "connected": self._sock is not None,
                "last_error": self.last_error}

    def _connect(self) -> socket.socket:
        t = self.target
        family, kind, proto, _, addr = socket.getaddrinfo(
            t.host, t.port, type=socket.SOCK_DGRAM if t.scheme == "udp" else socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.settimeout(5)
        try:
            sock.connect(addr)
            if t.scheme == "tls":
                sock = self.tls.wrap_socket(sock, server_hostname=t.host)
        except BaseException:
            sock.close()
            raise
        self.connects += 1
        return sock

    def _write(self, message: bytes) -> None:
        if self.target.scheme == "udp":
            self._sock.send(message[:UDP_MAX])
        else:
            self._sock.sendall(b"%d %s" % (len(message), message))   # RFC 6587 octet counting

    def _close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            with self._cv:
                while not self._queue and not self._stop.is_set():
                    self._cv.wait(1.0)
                if self._stop.is_set():
                    return
                message = self._queue[0]
            try:
                if self._sock is None:
                    self._sock = self._connect()
                self._write(message)
            except (OSError, ssl.SSLError) as e:
                self.errors += 1
                self.last_error = f"{type(e).__name__}: {e}"
                if failures == 0:
                    log.warning("syslog %s: %s (retrying)", self.target.url, self.last_error)
                self._close()
                self._stop.wait(BACKOFF_S[min(failures, len(BACKOFF_S) - 1)])
                failures += 1
                continue
            if failures:
                log.info("syslog %s: connected again", self.target.url)
            failures = 0
            with self._cv:
                if self._queue and self._queue[0] is message:
                    self._queue.popleft()
                self.sent += 1
                self._cv.notify_all()

def tls_context(cafile: str = "", certfile: str = "", keyfile: str = "") -> ssl.SSLContext:
    """A client context: TLS 1.2 or later, the collector's certificate checked against cafile
    (or the system's CAs), a client certificate when one is given."""
    ctx = ssl.create_default_context(cafile=cafile or None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if certfile:
        ctx.load_cert_chain(certfile, keyfile or None)
    return ctx
