"""Servers on loopback for the verification and deception tests: DNS
resolvers (UDP and TCP, some lying), an HTTP server, a tampering HTTP proxy
(plain and CONNECT), a SOCKS5 proxy, TLS servers with certificates of
their own CA, and a CONNECT proxy that intercepts TLS with its own CA.  Each serves in a daemon thread until
stop(); 127.0.0.x addresses keep them apart."""
import datetime
import http.server
import os
import select
import socket
import socketserver
import ssl
import tempfile
import struct
import threading
import urllib.parse

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def free_port(host: str = "127.0.0.1", kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class DnsServer:
    """Answers from `zone` ({name: {"A": [...], "MX": [...], "TXT": [...]}}); NXDOMAIN otherwise.
    Serves UDP and TCP on the same port.  `queries` lists what it was asked."""

    def __init__(self, host: str, zone: dict, ttl: int = 300, port: int = 0):
        self.host, self.zone, self.ttl = host, {k.lower(): v for k, v in zone.items()}, ttl
        self.port = port or free_port(host, socket.SOCK_DGRAM)
        self.queries: list = []
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((host, self.port))
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((host, self.port))
        self.tcp.listen(16)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True, name=f"dns-{host}")
        self.thread.start()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def answer(self, wire: bytes) -> bytes:
        q = dns.message.from_wire(wire)
        r = dns.message.make_response(q)
        name = str(q.question[0].name).rstrip(".").lower()
        rtype = dns.rdatatype.to_text(q.question[0].rdtype)
        self.queries.append((name, rtype))
        records = self.zone.get(name)
        if records is None:
            r.set_rcode(dns.rcode.NXDOMAIN)
        elif records.get(rtype):
            values = [f'"{v}"' for v in records[rtype]] if rtype == "TXT" else records[rtype]
            r.answer.append(dns.rrset.from_text(q.question[0].name, self.ttl, "IN", rtype, *values))
        return r.to_wire()

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.udp, self.tcp], [], [], 0.2)
            for s in ready:
                try:
                    if s is self.udp:
                        data, addr = s.recvfrom(4096)
                        s.sendto(self.answer(data), addr)
                    else:
                        conn, _ = s.accept()
                        with conn:
                            conn.settimeout(2)
                            n = struct.unpack("!H", conn.recv(2))[0]
                            data = b""
                            while len(data) < n:
                                data += conn.recv(n - len(data))
                            out = self.answer(data)
                            conn.sendall(struct.pack("!H", len(out)) + out)
                except (OSError, ValueError, dns.exception.DNSException):
                    continue

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.udp.close()
        self.tcp.close()


class _Threaded(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class HttpServer:
    """Serves `pages` ({path: (status, headers, body)}); records requests (method, path, headers, body)."""

    def __init__(self, host: str, pages: dict, port: int = 0):
        self.pages, self.requests = pages, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _serve(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                outer.requests.append((self.command, self.path, dict(self.headers), body, self.client_address[0]))
                status, headers, page = outer.pages.get(urllib.parse.urlsplit(self.path).path,
                                                         (404, {}, b"not found"))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)
            do_GET = do_POST = _serve

        self.server = _Threaded((host, port), Handler)
        self.host, self.port = host, self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True, name=f"http-{host}").start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class TamperingProxy:
    """An HTTP proxy (absolute-URI GETs and CONNECT) that rewrites what it relays:
    `tamper(body) -> body` for plain HTTP pages it fetches itself."""

    def __init__(self, host: str, tamper=lambda b: b, headers=None, hosts=None):
        self.tamper, self.extra, self.hosts = tamper, headers or {}, hosts or {}
        self.requests: list = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(32)
        self.host, self.port = host, self.sock.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True, name=f"proxy-{host}").start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        with conn:
            conn.settimeout(5)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            line = head.split(b"\r\n", 1)[0].decode()
            method, target, _ = line.split(" ", 2)
            self.requests.append((method, target))
            if method == "CONNECT":
                host, port = target.rsplit(":", 1)
                upstream = socket.create_connection((self.hosts.get(host, host), int(port)), timeout=5)
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                _pipe(conn, upstream)
                return
            u = urllib.parse.urlsplit(target)
            with socket.create_connection((self.hosts.get(u.hostname, u.hostname), u.port or 80), timeout=5) as up:
                path = (u.path or "/") + (f"?{u.query}" if u.query else "")
                up.sendall(f"GET {path} HTTP/1.1\r\nHost: {u.netloc}\r\nConnection: close\r\n\r\n".encode())
                data = b""
                while True:
                    chunk = up.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            rhead, _, body = data.partition(b"\r\n\r\n")
            lines = [l for l in rhead.split(b"\r\n") if not l.lower().startswith(b"content-length")]
            body = self.tamper(body)
            lines += [f"{k}: {v}".encode() for k, v in self.extra.items()] + [f"Content-Length: {len(body)}".encode()]
            conn.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)

    def stop(self):
        self._stop.set()
        self.sock.close()


class _Listener:
    """A TCP listener on host:port that hands each connection to _handle in a thread of its own."""

    def __init__(self, host: str, port: int = 0):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(32)
        self.host, self.port = host, self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True, name=f"{type(self).__name__}-{host}").start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        raise NotImplementedError

    def stop(self):
        self.sock.close()


class Socks5Proxy(_Listener):
    """A SOCKS5 proxy without authentication (CONNECT only), as a Tor client offers one."""

    def __init__(self, host: str, hosts=None):
        self.hosts = hosts or {}
        self.connects: list = []
        super().__init__(host)

    @property
    def url(self) -> str:
        return f"socks5://{self.host}:{self.port}"

    def _handle(self, conn):
        with conn:
            conn.settimeout(5)
            conn.recv(3)
            conn.sendall(b"\x05\x00")
            req = conn.recv(4)
            atyp = req[3]
            if atyp == 1:
                host = socket.inet_ntoa(conn.recv(4))
            elif atyp == 3:
                host = conn.recv(conn.recv(1)[0]).decode()
            else:
                host = socket.inet_ntop(socket.AF_INET6, conn.recv(16))
            port = struct.unpack("!H", conn.recv(2))[0]
            self.connects.append((host, port))
            try:
                upstream = socket.create_connection((self.hosts.get(host, host), port), timeout=5)
            except OSError:
                conn.sendall(b"\x05\x05\x00\x01" + bytes(6))
                return
            conn.sendall(b"\x05\x00\x00\x01" + bytes(6))
            _pipe(conn, upstream)


def _pipe(a: socket.socket, b: socket.socket) -> None:
    with b:
        socks = [a, b]
        while True:
            ready, _, _ = select.select(socks, [], [], 5)
            if not ready:
                return
            for s in ready:
                try:
                    data = s.recv(65536)
                    if data:
                        (b if s is a else a).sendall(data)
                except OSError:      # a side reset: the relay ends
                    return
                if not data:
                    return


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class Authority:
    """A CA that signs leaf certificates (EC P-256, quick to make)."""

    def __init__(self, name: str):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = _name(name)

    def issue(self, host: str, age_s: float = 86400 * 30) -> tuple:
        """(certificate PEM, key PEM) of a leaf for host, minted age_s ago."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(_name(host)).issuer_name(self.name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(seconds=age_s))
                .not_valid_after(now + datetime.timedelta(days=365))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
                .sign(self.key, hashes.SHA256()))
        return (cert.public_bytes(serialization.Encoding.PEM),
                key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


def server_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as d:
        cf, kf = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
        with open(cf, "wb") as f:
            f.write(cert_pem)
        with open(kf, "wb") as f:
            f.write(key_pem)
        ctx.load_cert_chain(cf, kf)
    return ctx


def fingerprint(cert_pem: bytes) -> str:
    return x509.load_pem_x509_certificate(cert_pem).fingerprint(hashes.SHA256()).hex()


class TlsServer(_Listener):
    """A TLS server that completes handshakes with its certificate and closes."""

    def __init__(self, host: str, cert_pem: bytes, key_pem: bytes, port: int = 0):
        self.ctx = server_context(cert_pem, key_pem)
        self.pem, self.fingerprint = cert_pem, fingerprint(cert_pem)
        super().__init__(host, port)

    def _handle(self, conn):
        conn.settimeout(5)
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except (OSError, ssl.SSLError):
            conn.close()


class InterceptingProxy(TlsServer):
    """An HTTP CONNECT proxy that terminates the tunnelled TLS itself with a
    certificate of its own CA, as mitmproxy does."""

    def __init__(self, host: str, cert_pem: bytes, key_pem: bytes):
        self.requests: list = []
        super().__init__(host, cert_pem, key_pem)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _handle(self, conn):
        conn.settimeout(5)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                conn.close()
                return
            head += chunk
        self.requests.append(head.split(b"\r\n", 1)[0].decode())
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        super()._handle(conn)
