"""One check through one path: a DNS question (dnspython), an HTTP GET, or a TLS handshake."""
import hashlib
import http.client
import re
import socket
import ssl
import urllib.parse

from agent.verify.paths import Path, PathError, tls_wrap

RECORD_TYPES = ("A", "AAAA", "MX", "TXT")
COMPARED_HEADERS = ("content-type", "server", "location", "strict-transport-security", "content-security-policy",
                    "x-frame-options")


def resolve(path: Path, domain: str, record_type: str, timeout: float) -> dict:
    """{"values": [...], "rcode"} of one question through the path's resolver."""
    # dnspython and x509 (below) on first use: about 100 modules the agent's start paged in off the slot
    import dns.exception
    import dns.flags
    import dns.message
    import dns.query
    import dns.rcode
    import dns.rdatatype
    r = path.resolver
    q = dns.message.make_query(domain, record_type)
    src = path.source or None

    def ask():
        if path.proxy:
            sock = path.connect(r.addr, r.port, timeout)
            try:
                return dns.query.tcp(q, r.addr, timeout=timeout, port=r.port, sock=sock)
            finally:
                sock.close()
        if r.transport == "udp":
            answer = dns.query.udp(q, r.addr, timeout=timeout, port=r.port, source=src)
            if answer.flags & dns.flags.TC:
                answer = dns.query.tcp(q, r.addr, timeout=timeout, port=r.port, source=src)
            return answer
        if r.transport == "tcp":
            return dns.query.tcp(q, r.addr, timeout=timeout, port=r.port, source=src)
        ctx = ssl.create_default_context()
        if not r.tls_name:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return dns.query.tls(q, r.addr, timeout=timeout, port=r.port, source=src, ssl_context=ctx,
                             server_hostname=r.tls_name or None)
    try:
        answer = path.run(ask)
    except dns.exception.Timeout:
        raise TimeoutError(f"no answer from {r.label} in {timeout:g} s") from None
    except dns.exception.DNSException as e:
        raise PathError(f"{r.label}: {e}") from None
    rdtype = dns.rdatatype.from_text(record_type)
    values = []
    for rrset in answer.answer:
        if rrset.rdtype != rdtype:
            continue
        for rd in rrset:
            if record_type in ("A", "AAAA"):
                values.append(rd.address)
            elif record_type == "MX":
                values.append(f"{rd.preference} {str(rd.exchange).rstrip('.').lower()}")
            else:
                values.append(b"".join(rd.strings).decode("utf-8", "replace"))
    return {"values": sorted(set(values)), "rcode": dns.rcode.to_text(answer.rcode())}


def _address(path: Path, host: str, timeout: float) -> str:
    """The address the path connects to for a host: its resolver's answer, or the system's."""
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        return host
    except OSError:
        pass
    if path.resolver is not None and not path.system_resolver:
        values = resolve(path, host, "A", timeout)["values"] or resolve(path, host, "AAAA", timeout)["values"]
        if not values:
            raise PathError(f"{host} does not resolve through {path.resolver.label}")
        return values[0]
    return socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][4][0]


def fetch(path: Path, url: str, timeout: float, max_body: int, verify_tls: bool) -> dict:
    """{"status_code", "headers", "content_hash", "content_length", "body"} of a GET through the path."""
    u = urllib.parse.urlsplit(url)
    host, https = u.hostname, u.scheme == "https"
    port = u.port or (443 if https else 80)
    target = (u.path or "/") + (f"?{u.query}" if u.query else "")
    host_header = host if u.port is None else f"{host}:{u.port}"

    def get():
        if path.method == "http_proxy" and not https:
            sock = socket.create_connection(path.proxy, timeout=timeout)
            request_target = url
        elif path.proxy:
            sock = path.connect(host, port, timeout)
            request_target = target
        else:
            addr = _address(path, host, timeout)
            sock = path.connect(addr, port, timeout)
            request_target = target
        try:
            sock.settimeout(timeout)
            if https:
                sock = tls_wrap(sock, host, verify_tls)
            sock.sendall((f"GET {request_target} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: capbox-verify/1\r\n"
                          "Accept: */*\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n").encode())
            resp = http.client.HTTPResponse(sock, method="GET")
            resp.begin()
            body = resp.read(max_body)
            headers = {k.lower(): v for k, v in resp.getheaders()}
            return resp.status, headers, body
        finally:
            sock.close()
    try:
        status, headers, body = path.run(get)
    except socket.timeout:
        raise TimeoutError(f"no answer in {timeout:g} s") from None
    except (http.client.HTTPException, ConnectionError) as e:
        raise PathError(f"{type(e).__name__}: {e}") from None
    return {"status_code": status, "headers": {k: headers[k] for k in COMPARED_HEADERS if k in headers},
            "content_hash": hashlib.sha256(body).hexdigest(), "content_length": len(body),
            "normalized_hash": hashlib.sha256(re.sub(rb"\s+", b" ", body).strip()).hexdigest()}


def certificate(path: Path, host: str, port: int, sni: str, timeout: float) -> dict:
    """The leaf certificate the server behind host:port presents through the path: its SHA-256 fingerprint,
    issuer, subject and validity.  Verification is off: an interceptor's certificate is what we look for."""
    def handshake():
        sock = path.connect(host, port, timeout) if path.proxy else path.connect(_address(path, host, timeout), port,
                                                                                  timeout)
        try:
            sock.settimeout(timeout)
            tls = tls_wrap(sock, sni, False)
            try:
                return tls.getpeercert(binary_form=True)
            finally:
                tls.close()
        finally:
            sock.close()
    try:
        der = path.run(handshake)
    except socket.timeout:
        raise TimeoutError(f"no handshake in {timeout:g} s") from None
    except (ssl.SSLError, ConnectionError) as e:
        raise PathError(f"{type(e).__name__}: {e}") from None
    if not der:
        raise PathError("the server sent no certificate")
    return describe(der)


def describe(der: bytes) -> dict:
    from cryptography import x509
    cert = x509.load_der_x509_certificate(der)
    return {"fingerprint": hashlib.sha256(der).hexdigest(), "subject": cert.subject.rfc4514_string(),
            "issuer": cert.issuer.rfc4514_string(), "not_before": cert.not_valid_before_utc.isoformat(),
            "not_after": cert.not_valid_after_utc.isoformat(), "self_issued": cert.issuer == cert.subject}
