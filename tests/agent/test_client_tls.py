"""The clients' side of HTTPS: agent.client (and so `capbox tui`, `capbox console`,
the update guard) against a real agent serving HTTPS with a certificate made by
`capbox firstboot`, the way a box makes its own: --pin with the fingerprint,
--cacert with the certificate, and what a wrong pin or an unknown CA does."""
import os
import socket
import ssl
import subprocess
import sys
import threading

import pytest

from agent import config, firstboot
from agent.client import ApiError, Client, PinMismatch, parse_pin
from agent.cli.update import health_probe
from tests.conftest import ROOT


def _firstboot(data_dir) -> str:
    """`capbox firstboot` as the image runs it; the fingerprint it prints."""
    p = subprocess.run([sys.executable, "-m", "agent", "firstboot", "--data-dir", str(data_dir)], cwd=ROOT,
                       capture_output=True, text=True, check=True)
    line = next(l for l in p.stdout.splitlines() if l.startswith("HTTPS certificate SHA256 "))
    return line.split("SHA256 ", 1)[1]


@pytest.fixture
def tls_agent(make_agent, tmp_path):
    d = tmp_path / "box"
    fp = _firstboot(d)
    unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    unverified.check_hostname, unverified.verify_mode = False, ssl.CERT_NONE
    a = make_agent(f'[capture]\nautostart = false\n[api]\ntls_cert = "{d}/tls.crt"\ntls_key = "{d}/tls.key"\n',
                   name="box", tls=unverified)
    a.https = f"https://127.0.0.1:{a.port}"
    a.fingerprint = fp
    return a


def test_firstboot_makes_private_files_once(tmp_path):
    d = tmp_path / "box"
    fp = _firstboot(d)
    for name in ("tls.key", "tls.crt", "console.passwd", "console.setup"):
        assert (d / name).stat().st_mode & 0o777 == 0o600, name
    assert d.stat().st_mode & 0o777 == 0o700
    code = firstboot.setup_code(d)
    assert code and len(code) == 19 and firstboot.cert_fingerprint(d) == fp
    assert _firstboot(d) == fp and firstboot.setup_code(d) == code      # a second run changes nothing
    assert _firstboot(tmp_path / "other") != fp                          # another box, another key


def test_firstboot_certificate_is_the_boxs_p256_and_names_it_safely(tmp_path):
    """openssl's pair: an EC P-256 key, a CA:TRUE self-signed certificate for 10 years naming the box,
    localhost and 127.0.0.1; a host name that would read as more fields is not put in it."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    for name, named in (("box-7.lan", "box-7.lan"), ("a/CN=evil,DNS:x", "capbox")):
        d = tmp_path / named
        assert firstboot.ensure_tls(d, name) and not firstboot.ensure_tls(d, name)
        cert = x509.load_pem_x509_certificate((d / "tls.crt").read_bytes())
        assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey) and cert.public_key().curve.name == "secp256r1"
        assert cert.subject.rfc4514_string() == f"O=capbox,CN={named}" and cert.issuer == cert.subject
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == [named, "localhost"]
        assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == firstboot.CERT_DAYS
        assert sorted(p.name for p in d.iterdir()) == ["tls.crt", "tls.key"]       # no .tmp left
        assert (d / "tls.key").stat().st_mode & 0o777 == 0o600


def test_firstboot_without_openssl_says_so_and_leaves_no_key(tmp_path):
    d = tmp_path / "box"
    p = subprocess.run([sys.executable, "-m", "agent", "firstboot", "--data-dir", str(d)], cwd=ROOT,
                       capture_output=True, text=True, env={**os.environ, "PATH": str(tmp_path / "nothing")})
    assert p.returncode == 1 and "openssl" in p.stderr, p.stderr
    assert not firstboot.has_tls(d)


def test_pin_and_cacert_reach_the_agent(tls_agent):
    d = tls_agent.data_dir
    for kw in ({"pin": tls_agent.fingerprint}, {"pin": "sha256:" + tls_agent.fingerprint.replace(":", "").lower()},
               {"cacert": str(d / "tls.crt")}):
        c = Client(tls_agent.https, tls_agent.key, **kw)
        assert c.health()["status"] in ("healthy", "degraded")
        assert c.capture_status()["running"] is False              # a keyed route: the key went over TLS
    with pytest.raises(ApiError) as e:
        Client(tls_agent.https, "sk_wrong", pin=tls_agent.fingerprint).capture_status()
    assert e.value.status == 401


def test_wrong_pin_or_unknown_ca_is_refused(tls_agent, tmp_path):
    other_fp = _firstboot(tmp_path / "other")
    with pytest.raises(PinMismatch) as e:
        Client(tls_agent.https, tls_agent.key, pin=other_fp).health()
    assert tls_agent.fingerprint in str(e.value)
    with pytest.raises(ssl.SSLCertVerificationError):
        Client(tls_agent.https, tls_agent.key, cacert=str(tmp_path / "other" / "tls.crt")).health()
    with pytest.raises(ssl.SSLCertVerificationError):       # neither: the system's CAs do not know a box
        Client(tls_agent.https, tls_agent.key).health()
    # plain HTTP to the HTTPS port gets no health document
    r = None
    try:
        r = Client(f"http://127.0.0.1:{tls_agent.port}").raw("GET", "/v1/health")
    except OSError:
        pass
    assert r is None or r.status >= 400


def test_a_wrong_pin_sends_nothing(tmp_path):
    """The pin is checked after the handshake and before the request: a server with
    another certificate never sees the bearer key."""
    d = tmp_path / "impostor"
    _firstboot(d)
    real_fp = _firstboot(tmp_path / "real")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d / "tls.crt", d / "tls.key")
    srv = socket.create_server(("127.0.0.1", 0))
    got = []

    def serve():
        conn, _ = srv.accept()
        with ctx.wrap_socket(conn, server_side=True) as s:
            s.settimeout(5)
            try:
                while data := s.recv(4096):
                    got.append(data)
            except (OSError, ssl.SSLError):
                pass
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    with pytest.raises(PinMismatch):
        Client(f"https://127.0.0.1:{srv.getsockname()[1]}", "sk_secret", pin=real_fp).get("/v1/keys")
    t.join(10)
    srv.close()
    assert b"".join(got) == b""


def test_bad_options_are_told(tmp_path):
    with pytest.raises(ValueError, match="64 hex"):
        parse_pin("AB:CD")
    with pytest.raises(ValueError, match="https"):
        Client("http://127.0.0.1:1", pin="00" * 32)
    r = subprocess.run([sys.executable, "-m", "agent", "tui", "--url", "https://127.0.0.1:1", "--key", "k",
                        "--pin", "nope"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 1 and "64 hex digits" in r.stderr
    r = subprocess.run([sys.executable, "-m", "agent", "console", "--port", "socket://127.0.0.1:1", "--key", "k",
                        "--url", "https://127.0.0.1:1", "--pin", "00" * 32, "--cacert", "x"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 2 and "not allowed with" in r.stderr


def test_tui_source_and_update_guard_over_https(tls_agent):
    from tui.source import remote
    src = remote(tls_agent.https, tls_agent.key, pin=tls_agent.fingerprint)
    assert src.health()["status"] in ("healthy", "degraded")
    d = tls_agent.data_dir
    cfg = config.load(None, env={}, overrides={"api": {"listen": f"0.0.0.0:{tls_agent.port}",
                                                       "tls_cert": str(d / "tls.crt"),
                                                       "tls_key": str(d / "tls.key")}})
    assert health_probe(cfg)() in ("healthy", "degraded")


def test_run_firstboot_makes_the_secrets_then_serves_https_with_them(tmp_path):
    """`capbox run --firstboot` (the image's capbox.service): one process makes the box's secrets, then
    serves HTTPS with the certificate it just made; the configuration names files that did not exist."""
    from tests.agent.conftest import free_port, wait_for
    d, port = tmp_path / "box", free_port()
    cfg = tmp_path / "capbox.toml"
    cfg.write_text(f'[capture]\nautostart = false\n[api]\ntls_cert = "{d}/tls.crt"\ntls_key = "{d}/tls.key"\n')
    argv = [sys.executable, "-m", "agent", "run", "--headless", "--firstboot", "--config", str(cfg),
            "--data-dir", str(d), "--listen", f"127.0.0.1:{port}"]
    log = tmp_path / "agent.log"
    for run in (1, 2):          # the second start finds everything made and changes nothing
        with open(log, "w") as out:
            proc = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: (d / "admin.key").exists() and "HTTPS certificate SHA256" in log.read_text(), 60)
            fp = log.read_text().split("HTTPS certificate SHA256 ", 1)[1].split()[0]
            client = Client(f"https://127.0.0.1:{port}", (d / "admin.key").read_text().strip(), pin=fp)
            wait_for(lambda: _answers(client), 60)
            assert client.capture_status()["running"] is False
        finally:
            proc.terminate()
            proc.wait(30)
        if run == 1:
            first, code = fp, firstboot.setup_code(d)
            assert "firstboot: tls, console setup code in" in log.read_text(), log.read_text()
        else:
            assert fp == first and firstboot.setup_code(d) == code
            assert "firstboot: nothing to do" in log.read_text()
    for name in ("tls.key", "tls.crt", "console.passwd", "console.setup", "admin.key"):
        assert (d / name).stat().st_mode & 0o777 == 0o600, name
    no_dir = subprocess.run(argv[:6] + ["--config", str(cfg)], cwd=ROOT, capture_output=True, text=True)
    assert no_dir.returncode != 0 and "--firstboot needs --data-dir" in no_dir.stderr


def _answers(client) -> bool:
    try:
        return client.health()["status"] in ("healthy", "degraded")
    except OSError:
        return False
