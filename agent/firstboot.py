"""A box's own secrets, made on its first boot (`capbox run --firstboot`, the
image's capbox.service, before the agent starts; or `capbox firstboot` alone).

An image carries no secret: every box flashed from it makes, in its data
directory (the data partition), mode 0600:

  tls.key, tls.crt   an EC P-256 key and a self-signed certificate for the
                     management plane's HTTPS, made by the `openssl` program
                     (the image's, OpenSSL 3); clients pin its SHA-256
                     fingerprint (`--pin`), which the serial console shows
  console.passwd     the console's password hash, of a one-time setup code ...
  console.setup      ... kept in clear only until it is used: the serial
                     console shows it before the login, and the first login
                     with it must set a password of its own (docs/CONSOLE.md)

The admin API key (admin.key) is the agent's own, written on its first start
(agent.runtime), and the machine id is the initramfs's (/data/machine-id).
Each step is done only when its files are missing, so a boot cut short
finishes the job on the next one."""
import errno
import os
import pathlib
import re
import secrets
import socket
from typing import Optional

from agent.auth import fingerprint

TLS_KEY = "tls.key"
TLS_CERT = "tls.crt"
SETUP_FILE = "console.setup"
CERT_DAYS = 3650
HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,62}")
CODE_GROUPS = 4            # XXXX-XXXX-XXXX-XXXX: about 80 bits, typed on a serial terminal
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"   # no 0/O, 1/I
# the code's scrypt cost: 80 random bits need no stretching against guesses (a person's password does:
# agent.auth.SCRYPT, 16 MiB); 1 MiB, a sixteenth of the CPU on the first boot's path to the agent's READY
CODE_SCRYPT_N = 1 << 10


def write_private(path: pathlib.Path, data: bytes) -> None:
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


def tls_command(data_dir: pathlib.Path, name: Optional[str] = None) -> list:
    """The `openssl` command that writes a new key pair and self-signed certificate next to where they go
    (end_tls puts them there).  A program, not cryptography's x509 in Python: on a box's first boot
    under emulation that process cost 0.9 s of CPU (the interpreter, cryptography's 15 MB core), openssl
    0.1 s.  Valid from the moment it is made (openssl 3.0's `req` sets no earlier start)."""
    name = name or socket.gethostname()
    if not HOST_NAME.fullmatch(name):        # a name that -subj or the SAN would read as more fields
        name = "capbox"
    return ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-noenc",
            "-sha256", "-days", str(CERT_DAYS), "-subj", f"/CN={name}/O=capbox",
            "-addext", f"subjectAltName=DNS:{name},DNS:localhost,IP:127.0.0.1",
            "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
            "-keyout", str(data_dir / (TLS_KEY + ".tmp")), "-out", str(data_dir / (TLS_CERT + ".tmp"))]


def start_tls(data_dir: pathlib.Path, name: Optional[str] = None):
    """openssl making the box's pair beside the caller (`capbox run --firstboot` loads the agent meanwhile,
    on the other CPU); end_tls waits for it."""
    import subprocess
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    old = os.umask(0o077)                    # the key is private from its first byte
    try:
        return subprocess.Popen(tls_command(data_dir, name), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
    finally:
        os.umask(old)


def end_tls(data_dir: pathlib.Path, proc) -> None:
    """The pair start_tls began, on disk, 0600 and in place: the key first (has_tls wants both)."""
    err = proc.communicate()[1]
    if proc.returncode:
        raise OSError(errno.EIO, f"openssl could not make the TLS key pair: {err.strip()}", str(data_dir))
    for final in (TLS_KEY, TLS_CERT):
        tmp = data_dir / (final + ".tmp")
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fchmod(fd, 0o600)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, data_dir / final)


def ensure_tls(data_dir: pathlib.Path, name: Optional[str] = None) -> bool:
    """A key pair and self-signed certificate for this box; False when they were there already."""
    if has_tls(data_dir):
        return False
    end_tls(data_dir, start_tls(data_dir, name))
    return True


def new_setup_code() -> str:
    return "-".join("".join(secrets.choice(CODE_ALPHABET) for _ in range(4)) for _ in range(CODE_GROUPS))


def ensure_console_code(data_dir: pathlib.Path, password_path: pathlib.Path) -> bool:
    """A one-time console setup code when the box has no console password yet."""
    from agent import password
    if password.is_set(password_path):
        return False
    code = new_setup_code()
    write_private(data_dir / SETUP_FILE, (code + "\n").encode())
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
