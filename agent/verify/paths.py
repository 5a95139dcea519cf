"""Verification paths: how one check leaves the box, and how well each has done.

A path is a method (direct, source-address, namespace, http_proxy, socks)
and an endpoint (a resolver for DNS; for URLs the resolver that names the
host, or the proxy that fetches it).  Paths are made from [verify]; there
are none until the operator names resolvers, addresses, proxies or
namespaces.  Each path keeps its health: the outcome of its last 100
checks, their average latency, its last success."""
import collections
import ctypes
import dataclasses
import os
import socket
import ssl
import struct
import threading
import time
import urllib.parse
from typing import Callable, Optional

from agent.addresses import split_host_port

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
TRANSPORTS = ("udp", "tcp", "dot")
DEFAULT_PORTS = {"udp": 53, "tcp": 53, "dot": 853}
HISTORY = 100


class PathError(Exception):
    """A path could not do its check (refused, unreachable, bad proxy answer)."""


@dataclasses.dataclass(frozen=True)
class Resolver:
    transport: str     # udp, tcp, dot
    addr: str
    port: int
    tls_name: str = ""

    @property
    def label(self) -> str:
        return f"{self.transport}:{self.addr}:{self.port}"


def parse_resolver(text: str) -> Resolver:
    """"udp:ADDR[:PORT]", "tcp:…", "dot:ADDR[:PORT][#NAME]"; a bare address is UDP port 53."""
    transport, sep, rest = text.strip().partition(":")
    if not sep or transport not in TRANSPORTS:
        transport, rest = "udp", text.strip()
    rest, _, tls_name = rest.partition("#")
    addr, port = split_host_port(rest)
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in addr else socket.AF_INET, addr)
        port_n = int(port) if port else DEFAULT_PORTS[transport]
    except (OSError, ValueError):
        raise ValueError(f"not a resolver: {text!r} (use udp:ADDR[:PORT], tcp:…, dot:ADDR[:PORT][#NAME])") from None
    if not 0 < port_n < 65536:
        raise ValueError(f"bad port in {text!r}")
    return Resolver(transport, addr, port_n, tls_name)


def parse_proxy(text: str, schemes: tuple) -> tuple:
    u = urllib.parse.urlsplit(text.strip())
    if u.scheme not in schemes or not u.hostname or not u.port:
        raise ValueError(f"not a proxy: {text!r} (use {schemes[0]}://HOST:PORT)")
    return u.hostname, u.port


@dataclasses.dataclass
class Health:
    outcomes: collections.deque = dataclasses.field(default_factory=lambda: collections.deque(maxlen=HISTORY))
    last_success: Optional[float] = None
    last_error: Optional[str] = None
    failures_in_row: int = 0

    def record(self, ok: bool, latency_ms: float, error: Optional[str] = None) -> None:
        self.outcomes.append((ok, latency_ms))
        if ok:
            self.last_success = time.time()
            self.failures_in_row = 0
        else:
            self.last_error = error
            self.failures_in_row += 1

    @property
    def success_rate(self) -> Optional[float]:
        return sum(ok for ok, _ in self.outcomes) / len(self.outcomes) if self.outcomes else None

    @property
    def avg_latency_ms(self) -> Optional[float]:
        lat = [ms for ok, ms in self.outcomes if ok]
        return sum(lat) / len(lat) if lat else None

    @property
    def status(self) -> str:
        rate = self.success_rate
        if self.failures_in_row >= 3 or (rate is not None and len(self.outcomes) >= 5 and rate < 0.5):
            return "down"
        if rate is not None and rate < 0.9:
            return "degraded"
        return "healthy"


@dataclasses.dataclass
class Path:
    id: str
    kind: str                      # dns or url: what it can check
    method: str                    # direct, source-address, namespace, http_proxy, socks
    resolver: Optional[Resolver] = None
    source: str = ""               # source-address
    namespace: str = ""            # namespace
    proxy: tuple = ()              # (host, port) of an http or socks proxy
    system_resolver: bool = False  # URL paths: the box's own resolver names the host
    health: Health = dataclasses.field(default_factory=Health)

    @property
    def endpoint(self) -> str:
        if self.proxy:
            return f"{self.proxy[0]}:{self.proxy[1]}"
        return self.resolver.label if self.resolver else "system"

    def view(self) -> dict:
        h = self.health
        return {"id": self.id, "kind": self.kind, "method": self.method,
                "transport": self.resolver.transport if self.resolver and not self.proxy else ("tcp" if self.proxy else None),
                "endpoint": self.endpoint, "source_address": self.source or None,
                "namespace": self.namespace or None, "status": h.status,
                "success_rate": None if h.success_rate is None else round(h.success_rate, 3),
                "avg_latency_ms": None if h.avg_latency_ms is None else round(h.avg_latency_ms, 1),
                "checks": len(h.outcomes), "last_success": h.last_success, "error": h.last_error}

    # ---- how this path opens connections ----------------------------------------------

    def connect(self, host: str, port: int, timeout: float) -> socket.socket:
        """A TCP connection to host:port the way this path goes."""
        if self.method == "http_proxy":
            sock = socket.create_connection(self.proxy, timeout=timeout)
            try:
                return _http_connect(sock, host, port)
            except BaseException:
                sock.close()
                raise
        if self.method == "socks":
            sock = socket.create_connection(self.proxy, timeout=timeout)
            try:
                return _socks5_connect(sock, host, port)
            except BaseException:
                sock.close()
                raise
        return socket.create_connection((host, port), timeout=timeout,
                                        source_address=(self.source, 0) if self.source else None)

    def run(self, fn: Callable, *args):
        """fn(*args) where this path's sockets must be made: in its namespace if it has one."""
        if not self.namespace:
            return fn(*args)
        return in_namespace(self.namespace, fn, *args)


def in_namespace(name: str, fn: Callable, *args):
    """fn(*args) in a short-lived thread that joined the network namespace /run/netns/NAME."""
    out: dict = {}

    def body():
        try:
            fd = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise PathError(f"cannot enter namespace {name}: {os.strerror(err)}")
            finally:
                os.close(fd)
            out["value"] = fn(*args)
        except BaseException as e:  # handed back to the caller
            out["error"] = e
    t = threading.Thread(target=body, name=f"verify-ns-{name}", daemon=True)
    t.start()
    t.join()
    if "error" in out:
        if isinstance(out["error"], FileNotFoundError):
            raise PathError(f"no network namespace {name}")
        raise out["error"]
    return out["value"]


def _recv_until(sock: socket.socket, marker: bytes, limit: int = 65536) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > limit:
            break
    return data


def _http_connect(sock: socket.socket, host: str, port: int) -> socket.socket:
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = _recv_until(sock, b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split(b" ")
    if len(status) < 2 or not status[1].startswith(b"2"):
        raise PathError(f"proxy refused CONNECT {target}: {head[:60]!r}")
    return sock


def _socks5_connect(sock: socket.socket, host: str, port: int) -> socket.socket:
    sock.sendall(b"\x05\x01\x00")
    if sock.recv(2) != b"\x05\x00":
        raise PathError("SOCKS proxy wants authentication or is not SOCKS5")
    try:
        packed = socket.inet_pton(socket.AF_INET, host)
        addr = b"\x01" + packed
    except OSError:
        try:
            addr = b"\x04" + socket.inet_pton(socket.AF_INET6, host)
        except OSError:
            name = host.encode("idna")
            addr = b"\x03" + bytes([len(name)]) + name
    sock.sendall(b"\x05\x01\x00" + addr + struct.pack("!H", port))
    reply = sock.recv(4)
    if len(reply) < 4 or reply[1] != 0:
        raise PathError(f"SOCKS proxy refused {host}:{port} (code {reply[1] if len(reply) > 1 else '?'})")
    skip = {1: 4, 4: 16}.get(reply[3])
    if skip is None:
        skip = sock.recv(1)[0]
    sock.recv(skip + 2)
    return sock


def tls_wrap(sock: socket.socket, server_name: str, verify: bool) -> ssl.SSLSocket:
    ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx.wrap_socket(sock, server_hostname=server_name or None)


def build(cfg) -> list:
    """The paths [verify] names (ValueError names a bad entry)."""
    resolvers = [parse_resolver(r) for r in cfg.resolvers]
    http = [parse_proxy(p, ("http",)) for p in cfg.http_proxies]
    socks = [parse_proxy(p, ("socks5", "socks5h", "socks")) for p in cfg.socks_proxies]
    out = []
    for r in resolvers:
        out.append(Path(f"dns-{r.transport}-{r.addr}-{r.port}", "dns", "direct", resolver=r))
        for src in cfg.source_addresses:
            out.append(Path(f"dns-src-{src}-{r.transport}-{r.addr}-{r.port}", "dns", "source-address", resolver=r,
                            source=src))
        for ns in cfg.namespaces:
            out.append(Path(f"dns-ns-{ns}-{r.transport}-{r.addr}-{r.port}", "dns", "namespace", resolver=r,
                            namespace=ns))
        tcp = Resolver("tcp", r.addr, r.port if r.transport != "dot" else 53)
        for host, port in http:
            out.append(Path(f"dns-proxy-{host}-{port}-{r.addr}", "dns", "http_proxy", resolver=tcp, proxy=(host, port)))
        for host, port in socks:
            out.append(Path(f"dns-socks-{host}-{port}-{r.addr}", "dns", "socks", resolver=tcp, proxy=(host, port)))
    for r in resolvers:
        out.append(Path(f"url-direct-via-{r.transport}-{r.addr}-{r.port}", "url", "direct", resolver=r))
    first = resolvers[0] if resolvers else None
    for src in cfg.source_addresses:
        out.append(Path(f"url-src-{src}", "url", "source-address", resolver=first, source=src,
                        system_resolver=first is None))
    for ns in cfg.namespaces:
        out.append(Path(f"url-ns-{ns}", "url", "namespace", resolver=first, namespace=ns,
                        system_resolver=first is None))
    for host, port in http:
        out.append(Path(f"url-proxy-{host}-{port}", "url", "http_proxy", proxy=(host, port)))
    for host, port in socks:
        out.append(Path(f"url-socks-{host}-{port}", "url", "socks", proxy=(host, port)))
    if cfg.direct:
        out.append(Path("url-direct", "url", "direct", system_resolver=True))
    return out
