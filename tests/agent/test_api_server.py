"""The REST server under hostile load: connection floods, per-client caps,
idle timeouts, TLS (openssl s_client as the peer), and the systemd watchdog
pinged only while the API answers through its own socket."""
import http.client
import json
import resource
import socket
import ssl
import subprocess
import time

import pytest

from tests.agent.conftest import Client, wait_for


def _raise_fd_limit(n: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 256), hard))


def _open_idle(port: int, n: int, sources: list) -> list:
    """n idle TCP connections (no byte sent), spread over loopback source addresses."""
    socks = []
    for i in range(n):
        s = socket.socket()
        s.bind((sources[i % len(sources)], 0))
        s.connect(("127.0.0.1", port))
        socks.append(s)
    return socks


def _closed_by_server(s: socket.socket, wait: float = 0.0) -> bool:
    s.settimeout(wait or 0.000001)
    try:
        return s.recv(1) == b""
    except (socket.timeout, BlockingIOError):
        return False
    except OSError:
        return True


def _health_time(client: Client) -> float:
    t = time.monotonic()
    assert client.raw("GET", "/v1/health").status == 200
    return time.monotonic() - t


@pytest.mark.parametrize("n", [1100, 2000])
def test_health_answers_during_and_after_an_idle_connection_flood(make_agent, n):
    _raise_fd_limit(n)
    a = make_agent('[capture]\nautostart = false\n')
    health = Client(a.url, timeout=5)
    socks = _open_idle(a.port, n, [f"127.0.0.{i}" for i in range(2, 8)])
    try:
        wait_for(lambda: a.client.health()["components"]["api"]["connections"]["open"] >= n, timeout=30)
        times = [_health_time(health) for _ in range(10)]
        assert max(times) < 1.0, times
        assert a.client.health()["status"] == "healthy"
        assert not any(_closed_by_server(s) for s in socks[:50])   # held, not dropped
    finally:
        for s in socks:
            s.close()
    wait_for(lambda: a.client.health()["components"]["api"]["connections"]["open"] <= 1, timeout=30)
    assert max(_health_time(health) for _ in range(5)) < 1.0
    assert "Traceback" not in a.output()


def test_per_client_cap_and_idle_timeout(make_agent):
    a = make_agent('[capture]\nautostart = false\n[api]\nmax_connections_per_client = 40\nidle_timeout_s = 2\n')
    socks = _open_idle(a.port, 60, ["127.0.0.9"])
    try:
        # the 20 over the cap are closed at once; another address is still served
        wait_for(lambda: sum(_closed_by_server(s) for s in socks) >= 20, timeout=10)
        assert a.client.raw("GET", "/v1/health").status == 200
        conns = a.client.health()["components"]["api"]["connections"]
        assert conns["per_client_max"] == 40 and conns["refused"] >= 20
        # the 40 held ones are closed after 2 s of silence
        wait_for(lambda: all(_closed_by_server(s) for s in socks), timeout=15)
    finally:
        for s in socks:
            s.close()


def test_one_address_cannot_hold_every_worker(make_agent):
    """Requests that never end (slowloris) from one address hold at most a quarter of the workers."""
    a = make_agent('[capture]\nautostart = false\n[api]\nthreads = 16\n')
    stuck = _open_idle(a.port, 40, ["127.0.0.11"])
    try:
        for s in stuck:
            s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
        wait_for(lambda: sum(_closed_by_server(s) for s in stuck) >= 40 - 4, timeout=15)
        assert max(_health_time(Client(a.url, timeout=5)) for _ in range(5)) < 1.0
    finally:
        for s in stuck:
            s.close()


def _stream(port: int, key: str, source: str) -> http.client.HTTPResponse:
    """An event stream (it holds a worker as long as it is open) from one source address."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    conn.request("GET", f"/v1/events?token={key}")
    return conn.getresponse()


def _status_from(port: int, source: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
    try:
        conn.request("GET", "/v1/health")
        return conn.getresponse().status
    finally:
        conn.close()


def test_requests_over_an_address_share_get_503_with_the_envelope(make_agent):
    """One address holding its share of the workers (16 threads: 4) with slow requests
    (event streams, which never end): its next requests are answered 503 + Retry-After
    with the error envelope, never closed silently; another address is served; the
    refusals are counted in health and /metrics."""
    a = make_agent('[capture]\nautostart = false\n[api]\nthreads = 16\nsse_keepalive_s = 1\n')
    answers = [_stream(a.port, a.key, "127.0.0.21") for _ in range(10)]
    try:
        held = [r for r in answers if r.status == 200]
        refused = [r for r in answers if r.status != 200]
        assert len(held) == 4 and len(refused) == 6, [r.status for r in answers]
        for r in refused:
            assert r.status == 503 and r.getheader("Retry-After") == "1"
            assert r.getheader("Content-Type") == "application/json"
            body = json.loads(r.read())
            assert body["error"]["code"] == "SERVICE_UNAVAILABLE"
            assert body["error"]["details"]["retry_after_seconds"] == 1
            assert body["request_id"].startswith("req_") and body["documentation_url"]
        one = Client(a.url, a.key, timeout=5)
        assert _status_from(a.port, "127.0.0.21") == 503   # still over its share: a plain GET too
        assert one.raw("GET", "/v1/health").status == 200  # 127.0.0.1: served
        conns = one.health()["components"]["api"]["connections"]
        assert conns["busy_refused"] == 7 and conns["busy_per_client_max"] == 4
        metrics = one.raw("GET", "/metrics").body.decode()
        assert 'capbox_api_refused_total{cause="busy_per_client"} 7.0' in metrics
    finally:
        for r in answers:
            r.close()
    # the streams closed (noticed at their next keep-alive), the address is served again
    wait_for(lambda: _status_from(a.port, "127.0.0.21") == 200, timeout=15, interval=0.5)
    assert "Traceback" not in a.output()


def test_watchdog_pinged_only_while_the_api_answers(make_agent, tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    a = make_agent('[capture]\nautostart = false\n[api]\nthreads = 12\nidle_timeout_s = 8\n',
                   env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"})

    def pings(seconds: float) -> int:
        n, deadline = 0, time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                n += "WATCHDOG=1" in sock.recv(4096).decode().split("\n")
            except socket.timeout:
                pass
        return n
    assert pings(3) >= 9            # several tries per period: one slow answer under load is no restart
    # wedge the API while the process (and its stats thread) runs on: every worker
    # waits on a request that never ends until the idle timeout
    stuck = _open_idle(a.port, 16, [f"127.0.1.{i}" for i in range(1, 17)])
    for s in stuck:
        s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
    try:
        with pytest.raises(OSError):
            Client(a.url, timeout=2).raw("GET", "/v1/health")
        pings(1.0)                      # a ping sent just before the wedge
        assert pings(2.5) == 0
    finally:
        for s in stuck:
            s.close()
    # the workers come back (the idle timeout ends the stuck reads), and so do the pings
    wait_for(lambda: pings(1.5) >= 1, timeout=30)
    assert Client(a.url, timeout=5).raw("GET", "/v1/health").status == 200


# ---- TLS --------------------------------------------------------------------------


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by it."""
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
             "-subj", "/CN=capbox test CA", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    for name in ("server", "client"):
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={name}",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
        (d / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1\n" if name == "server" else
                                       "extendedKeyUsage=clientAuth\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)
    return d


def _s_client(port: int, *args) -> subprocess.CompletedProcess:
    """openssl s_client: a GET /v1/health; its output names the protocol and shows the answer."""
    return subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-ign_eof", *args],
                          input=b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                          capture_output=True, timeout=30)


def _start_tls(make_agent, pki, client_ca: bool):
    ctx = ssl.create_default_context(cafile=f"{pki}/ca.pem")
    if client_ca:
        ctx.load_cert_chain(f"{pki}/client.pem", f"{pki}/client.key")
    conf = (f'[capture]\nautostart = false\n[api]\ntls_cert = "{pki}/server.pem"\ntls_key = "{pki}/server.key"\n'
            + (f'client_ca = "{pki}/ca.pem"\n' if client_ca else ""))
    return make_agent(conf, tls=ctx)


def test_tls_versions_and_suites(make_agent, pki):
    a = _start_tls(make_agent, pki, client_ca=False)
    for version, name in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
        p = _s_client(a.port, version, "-CAfile", f"{pki}/ca.pem", "-verify_return_error")
        out = p.stdout.decode(errors="replace")
        assert f"Protocol  : {name}" in out or f"New, {name}" in out, out
        assert "Verify return code: 0 (ok)" in out and "HTTP/1.1 200" in out and '"status":"healthy"' in out
    for version in ("-tls1", "-tls1_1"):
        # the client offers it (SECLEVEL=0 lets openssl speak it); the server refuses it
        p = _s_client(a.port, version, "-cipher", "DEFAULT@SECLEVEL=0")
        assert "HTTP/1.1" not in p.stdout.decode(errors="replace")
        assert p.returncode != 0 and b"alert protocol version" in p.stderr, p.stderr
    # no weak suites: CBC/SHA1, RSA key exchange and 3DES are refused under TLS 1.2
    for cipher in ("AES128-SHA", "ECDHE-ECDSA-AES128-SHA", "AES256-GCM-SHA384"):
        p = _s_client(a.port, "-tls1_2", "-cipher", cipher)
        assert p.returncode != 0 and "HTTP/1.1" not in p.stdout.decode(errors="replace"), cipher
    # plain HTTP to the TLS port gets no answer, and the server goes on
    with socket.create_connection(("127.0.0.1", a.port), timeout=10) as s:
        s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert not s.recv(100).startswith(b"HTTP/1.1 200")
    assert b"HTTP/1.1 200" in _s_client(a.port, "-tls1_3").stdout


def test_mutual_tls_requires_a_client_certificate(make_agent, pki):
    a = _start_tls(make_agent, pki, client_ca=True)
    p = _s_client(a.port, "-tls1_2")
    assert b"HTTP/1.1 200" not in p.stdout
    p = _s_client(a.port, "-tls1_3")
    assert b"HTTP/1.1 200" not in p.stdout
    for version in ("-tls1_2", "-tls1_3"):
        p = _s_client(a.port, version, "-cert", f"{pki}/client.pem", "-key", f"{pki}/client.key",
                      "-CAfile", f"{pki}/ca.pem", "-verify_return_error")
        assert b"HTTP/1.1 200" in p.stdout, p.stdout
    # a silent TLS client holds no worker: health over mutual TLS still answers at once
    idle = [socket.create_connection(("127.0.0.1", a.port)) for _ in range(100)]
    try:
        t = time.monotonic()
        p = _s_client(a.port, "-cert", f"{pki}/client.pem", "-key", f"{pki}/client.key")
        assert b"HTTP/1.1 200" in p.stdout and time.monotonic() - t < 5
    finally:
        for s in idle:
            s.close()

