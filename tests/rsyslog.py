"""A real rsyslogd on 127.0.0.1 for the syslog output tests: UDP (imudp),
plain TCP (imptcp) and TLS (imtcp with the openssl driver) inputs, each
writing what it parsed to its own file, one line a message, with the
RFC 5424 fields rsyslog's own parser found."""
import datetime
import ipaddress
import pathlib
import shutil
import signal
import socket
import subprocess
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# tab-separated: what rsyslog's RFC 5424 parser made of each message
FIELDS = ("pri", "timestamp", "hostname", "app", "procid", "msgid", "sd", "msg")
TEMPLATE = "\\t".join(("%pri%", "%timereported:::date-rfc3339%", "%hostname%", "%app-name%", "%procid%", "%msgid%",
                       "%structured-data%", "%msg%")) + "\\n"


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_ca(directory: pathlib.Path) -> tuple:
    """A CA and a certificate for 127.0.0.1 signed by it: (ca.pem, cert.pem, key.pem)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "capbox test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


class Rsyslog:
    def __init__(self, directory: pathlib.Path):
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.ca, cert, key = make_ca(directory)
        self.ports = {"udp": free_port(socket.SOCK_DGRAM), "tcp": free_port(), "tls": free_port()}
        self.files = {k: directory / f"{k}.log" for k in self.ports}
        (directory / "work").mkdir(exist_ok=True)
        conf = [
            f'global(workDirectory="{directory / "work"}" maxMessageSize="64k"',
            f'       DefaultNetstreamDriverCAFile="{self.ca}" DefaultNetstreamDriverCertFile="{cert}"',
            f'       DefaultNetstreamDriverKeyFile="{key}")',
            f'template(name="fields" type="string" string="{TEMPLATE}")',
            'module(load="imudp")', 'module(load="imptcp")',
            'module(load="imtcp" StreamDriver.Name="ossl" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")',
            f'input(type="imudp" address="127.0.0.1" port="{self.ports["udp"]}" ruleset="udp")',
            f'input(type="imptcp" address="127.0.0.1" port="{self.ports["tcp"]}" ruleset="tcp")',
            f'input(type="imtcp" address="127.0.0.1" port="{self.ports["tls"]}" ruleset="tls")',
        ]
        for name, path in self.files.items():
            conf.append(f'ruleset(name="{name}") {{ action(type="omfile" file="{path}" template="fields") }}')
        self.conf = directory / "rsyslog.conf"
        self.conf.write_text("\n".join(conf) + "\n")
        self.log = open(directory / "rsyslogd.out", "wb")
        self.proc = None

    def start(self) -> "Rsyslog":
        exe = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
        check = subprocess.run([exe, "-N1", "-f", str(self.conf)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        self.proc = subprocess.Popen([exe, "-n", "-f", str(self.conf), "-i", str(self.dir / "rsyslogd.pid")],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        for port in (self.ports["tcp"], self.ports["tls"]):
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or self.proc.poll() is not None:
                        raise RuntimeError(f"rsyslogd did not listen: {self.output()}")
                    time.sleep(0.1)
        return self

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return (self.dir / "rsyslogd.out").read_text(errors="replace")

    def url(self, kind: str) -> str:
        return f"{kind}://127.0.0.1:{self.ports[kind]}"

    def lines(self, kind: str) -> list:
        """What the input of that kind received so far, each as a dict of FIELDS."""
        path = self.files[kind]
        if not path.exists():
            return []
        out = []
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split("\t")
            if len(parts) == len(FIELDS):
                out.append(dict(zip(FIELDS, parts)))
        return out

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def rsyslog(tmp_path):
    if not (shutil.which("rsyslogd") or pathlib.Path("/usr/sbin/rsyslogd").exists()):
        pytest.skip("rsyslog is not installed (make test installs it)")
    r = Rsyslog(tmp_path / "rsyslog").start()
    yield r
    r.stop()
