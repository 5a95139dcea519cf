"""A box's own secrets, made on its first boot (`capbox run --firstboot`, the
image's capbox.service, before the agent starts; or `capbox firstboot` alone).

An image carries no secret: every box flashed from it makes, in its data
directory (the data partition), mode 0600:

  tls.key, tls.crt   an EC P-256 key and a self-signed certificate for the
                     management plane's HTTPS; clients pin its SHA-256
                     fingerprint (`--pin`), which the serial console shows
  console.passwd     the console's password hash, of a one-time setup code ...
  console.setup      ... kept in clear only until it is used: the serial
                     console shows it before the login, and the first login
                     with it must set a password of its own (docs/CONSOLE.md)

The admin API key (admin.key) is the agent's own, written on its first start
(agent.runtime), and the machine id is the initramfs's (/data/machine-id).
Each step is done only when its files are missing, so a boot cut short
finishes the job on the next one."""
import datetime
import os
import pathlib
import secrets
import socket
from typing import Optional

from agent.auth import fingerprint

TLS_KEY = "tls.key"
TLS_CERT = "tls.crt"
SETUP_FILE = "console.setup"
CERT_DAYS = 3650
CODE_GROUPS = 4            # XXXX-XXXX-XXXX-XXXX: about 80 bits, typed on a serial terminal
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"   # no 0/O, 1/I
# the code's scrypt cost: 80 random bits need no stretching against guesses (a person's password does:
# agent.auth.SCRYPT, 16 MiB); 1 MiB, a sixteenth of the CPU on the first boot's path to the agent's READY
CODE_SCRYPT_N = 1 << 10


def _write_private(path: pathlib.Path, data: bytes) -> None:
    """Whole or not at all, 0600 from the first byte."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def has_tls(data_dir) -> bool:
    """Whether the box's key pair is there (both halves: a half is made again)."""
    d = pathlib.Path(data_dir)
    return (d / TLS_KEY).exists() and (d / TLS_CERT).exists()


def ensure_tls(data_dir: pathlib.Path, name: Optional[str] = None) -> bool:
    """A key pair and self-signed certificate for this box; False when they were there already."""
    key_path, cert_path = data_dir / TLS_KEY, data_dir / TLS_CERT
    if has_tls(data_dir):
        return False
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    name = name or socket.gethostname() or "capbox"
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "capbox")])
    now = datetime.datetime.now(datetime.timezone.utc)
    san = x509.SubjectAlternativeName([x509.DNSName(name), x509.DNSName("localhost"),
                                       x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
            .add_extension(san, critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    data_dir.mkdir(parents=True, exist_ok=True)
    _write_private(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return True


def new_setup_code() -> str:
    return "-".join("".join(secrets.choice(CODE_ALPHABET) for _ in range(4)) for _ in range(CODE_GROUPS))


def ensure_console_code(data_dir: pathlib.Path, password_path: pathlib.Path) -> bool:
    """A one-time console setup code when the box has no console password yet."""
    from agent import password
    if password.is_set(password_path):
        return False
    code = new_setup_code()
    _write_private(data_dir / SETUP_FILE, (code + "\n").encode())
    password.store(password_path, code, CODE_SCRYPT_N)
    return True


def cert_fingerprint(data_dir: pathlib.Path) -> Optional[str]:
    """The SHA-256 fingerprint of the box's certificate, or None when it has none."""
    import ssl
    try:
        pem = (data_dir / TLS_CERT).read_text()
    except OSError:
        return None
    return fingerprint(ssl.PEM_cert_to_DER_cert(pem))


def setup_code(data_dir: pathlib.Path) -> Optional[str]:
    """The unused setup code, or None once a password of the box's own was set."""
    try:
        return (data_dir / SETUP_FILE).read_text().strip() or None
    except OSError:
        return None


def spend_setup_code(data_dir: pathlib.Path) -> None:
    (data_dir / SETUP_FILE).unlink(missing_ok=True)


def notice(data_dir: pathlib.Path) -> list:
    """What the serial console shows before its login: how to trust the box and get in."""
    lines: list = []
    fp = cert_fingerprint(data_dir)
    if fp:
        lines.append(f"HTTPS certificate SHA256 {fp}")
        lines.append("  (clients: --pin with this fingerprint, or --cacert with " f"{data_dir / TLS_CERT})")
    code = setup_code(data_dir)
    if code:
        lines.append(f"first login: setup code {code} (it works once: the login sets a password)")
    if lines:
            lines.append(f"API keys: `keys create --kind sk` after login; the box's admin key is "
                     f"{data_dir / 'admin.key'}")
    return lines


def run(cfg) -> list:
    """Everything missing, made; what was made, by name."""
    from agent import password
    d = cfg.data_dir
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    made = []
    if ensure_tls(d):
        made.append("tls")
    if ensure_console_code(d, password.path_for(cfg)):
        made.append("console setup code")
    return made


if __name__ == "__main__":      # `python -m agent.firstboot DATA_DIR`: the TLS key pair alone (agent.cli.box.start_tls)
    import sys
    sys.exit(0 if ensure_tls(pathlib.Path(sys.argv[1])) else 1)
