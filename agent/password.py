"""The console password: one scrypt hash in a 0600 file in the data directory.

The same hashing as the API keys (agent.auth: scrypt, a random salt, a
constant-time compare).  The file holds one line,
`scrypt$<log2 n>$<r>$<p>$<salt hex>$<hash hex>`, so its parameters travel
with it and an image can be provisioned with a file made elsewhere."""
import hashlib
import hmac
import os
import pathlib
from typing import Optional

from agent.auth import SCRYPT

FILE_NAME = "console.passwd"
MIN_LENGTH = 8
MAX_LENGTH = 256


class PasswordError(Exception):
    """A password that cannot be set, or a file that cannot be read; says why."""


def path_for(cfg) -> pathlib.Path:
    """Where the console password lives for this configuration."""
    if cfg.console.password_file:
        return pathlib.Path(cfg.console.password_file).resolve()
    return cfg.data_dir / FILE_NAME


def _digest(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=SCRYPT["dklen"], maxmem=1 << 27)


def check_new(password: str) -> None:
    """PasswordError unless the text can be a console password."""
    if len(password) < MIN_LENGTH:
        raise PasswordError(f"a console password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise PasswordError(f"a console password has at most {MAX_LENGTH} characters")
    if not password.isprintable():
        raise PasswordError("a console password is printable characters only (what a serial terminal can type)")


def store(path: pathlib.Path, password: str, n: int = SCRYPT["n"]) -> None:
    """Hash the password and write it, mode 0600, replacing the file whole.  n: scrypt's cost, lower only
    for a secret the box drew at random (agent.firstboot's setup code), which needs no stretching."""
    check_new(password)
    salt = os.urandom(16)
    line = (f"scrypt${n.bit_length() - 1}${SCRYPT['r']}${SCRYPT['p']}${salt.hex()}$"
            f"{_digest(password, salt, n, SCRYPT['r'], SCRYPT['p']).hex()}\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(line)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _load(path: pathlib.Path) -> Optional[tuple]:
    """(salt, hash, n, r, p), None when no password is set, PasswordError for a damaged file."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise PasswordError(f"cannot read {path}: {e.strerror}") from None
    parts = text.split("$")
    try:
        if len(parts) != 6 or parts[0] != "scrypt":
            raise ValueError
        log_n, r, p = (int(x) for x in parts[1:4])
        salt, digest = bytes.fromhex(parts[4]), bytes.fromhex(parts[5])
        if not (1 <= log_n <= 20 and 1 <= r <= 32 and 1 <= p <= 16 and salt and len(digest) == SCRYPT["dklen"]
                and 128 * r << log_n <= 1 << 26):   # at most 64 MiB of scrypt memory per try
            raise ValueError
    except ValueError:
        raise PasswordError(f"{path} is not a console password file (set one with `capbox console passwd`)") from None
    return salt, digest, 1 << log_n, r, p


def is_set(path: pathlib.Path) -> bool:
    return _load(path) is not None


def verify(path: pathlib.Path, password: str) -> bool:
    """Whether `password` is the console password; PasswordError when none is set or the file is damaged."""
    stored = _load(path)
    if stored is None:
        raise PasswordError("no console password is set (run `capbox console passwd` on the box)")
    salt, digest, n, r, p = stored
    if len(password) > MAX_LENGTH:
        return False
    return hmac.compare_digest(_digest(password, salt, n, r, p), digest)
