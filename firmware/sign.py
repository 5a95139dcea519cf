"""Signing: key pairs and detached signatures in minisign's format, so that
`minisign -V` verifies what capbox signs and capbox can use a key made by
`minisign -G` (encrypted with a password, or unencrypted with -W)."""
import dataclasses
import hashlib
import os
import pathlib
import time
from typing import Optional

from firmware import minisign
from firmware.errors import FirmwareError
from firmware.minisign import PublicKey, Signature

SCRYPT_OPSLIMIT_MIN = 32768
# what `minisign -G` uses (libsodium's *_SENSITIVE): scrypt N = 2^20, r = 8, p = 1, 1 GiB
SCRYPT_OPSLIMIT = 33554432
SCRYPT_MEMLIMIT = 1073741824


@dataclasses.dataclass(frozen=True)
class SecretKey:
    key_id: bytes
    seed: bytes             # the Ed25519 private key (32 bytes); minisign stores seed || public key

    def _private(self):
        # on first use: `capbox` (every command) parses its command line without cryptography's core
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    def public_key(self) -> PublicKey:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
        raw = self._private().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return PublicKey(self.key_id, raw)

    def to_text(self, password: Optional[str] = None) -> str:
        """The secret key file; with a password, encrypted as `minisign -G` does."""
        sk = self.seed + self.public_key().key
        if not password:
            return minisign.format_secret_key(self.key_id, sk)
        chk = hashlib.blake2b(minisign.ALG_LEGACY + self.key_id + sk, digest_size=32).digest()
        salt = os.urandom(32)
        keynum = self.key_id + sk + chk
        stream = _kdf(password, salt, SCRYPT_OPSLIMIT, SCRYPT_MEMLIMIT, len(keynum))
        return minisign.format_secret_key_file(minisign.SecretKeyFile(
            minisign.KDF_SCRYPT, salt, SCRYPT_OPSLIMIT, SCRYPT_MEMLIMIT, bytes(a ^ b for a, b in zip(keynum, stream))))

    def sign(self, data: bytes, trusted_comment: str, untrusted_comment: str = "signature from capbox secret key",
             prehashed: bool = True) -> Signature:
        if "\n" in trusted_comment or "\r" in trusted_comment:
            raise FirmwareError("a trusted comment is one line")
        if len(trusted_comment.encode()) > minisign.TRUSTED_COMMENT_MAX:
            raise FirmwareError("trusted comment too long")
        priv = self._private()
        alg = minisign.ALG_HASHED if prehashed else minisign.ALG_LEGACY
        sig = priv.sign(minisign.prehash(data) if prehashed else data)
        glob = priv.sign(sig + trusted_comment.encode())
        return Signature(alg, self.key_id, sig, trusted_comment, glob, untrusted_comment)


def generate() -> SecretKey:
    return SecretKey(os.urandom(minisign.KEY_ID_LEN), os.urandom(32))


def _scrypt_params(opslimit: int, memlimit: int) -> tuple:
    """(N, r, p) from libsodium's scryptsalsa208sha256 limits (its pickparams)."""
    opslimit = max(opslimit, SCRYPT_OPSLIMIT_MIN)
    r = 8
    if opslimit < memlimit // 32:
        p = 1
        max_n = opslimit // (r * 4)
    else:
        max_n = memlimit // (r * 128)
    n_log2 = 1
    while n_log2 < 63 and (1 << n_log2) <= max_n // 2:
        n_log2 += 1
    if not opslimit < memlimit // 32:
        maxrp = min((opslimit // 4) // (1 << n_log2), 0x3FFFFFFF)
        p = maxrp // r
    return 1 << n_log2, r, max(p, 1)


def _kdf(password: str, salt: bytes, opslimit: int, memlimit: int, size: int) -> bytes:
    """libsodium's crypto_pwhash_scryptsalsa208sha256 with these limits: minisign's key stream."""
    n, r, p = _scrypt_params(opslimit, memlimit)
    if n * r * 128 > 4 << 30:
        raise FirmwareError("the secret key's KDF asks for more than 4 GiB")
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=n * r * 128 + (64 << 20), dklen=size)


def load_secret_key(text, password: Optional[str] = None) -> SecretKey:
    """A minisign secret key file; an encrypted one needs its password."""
    f = minisign.parse_secret_key(text)
    part = f.keynum_sk
    if f.encrypted:
        if password is None:
            raise FirmwareError("the secret key is encrypted: give its password")
        stream = _kdf(password, f.salt, f.opslimit, f.memlimit, len(part))
        part = bytes(a ^ b for a, b in zip(part, stream))
    key_id, sk, chk = part[:8], part[8:72], part[72:104]
    if f.encrypted and hashlib.blake2b(minisign.ALG_LEGACY + key_id + sk, digest_size=32).digest() != chk:
        raise FirmwareError("wrong password for the secret key (checksum mismatch)")
    key = SecretKey(key_id, sk[:32])
    if key.public_key().key != sk[32:]:
        raise FirmwareError("the secret key file is damaged: its public half does not match")
    return key


def read_secret_key(path, password: Optional[str] = None) -> SecretKey:
    try:
        text = pathlib.Path(path).read_bytes()
    except OSError as e:
        raise FirmwareError(f"{path}: {e.strerror}") from None
    try:
        return load_secret_key(text, password)
    except FirmwareError as e:
        raise FirmwareError(f"{path}: {e.message}") from None


def write_key_pair(key: SecretKey, secret_path, public_path, force: bool = False,
                   password: Optional[str] = None) -> None:
    """The secret key (mode 0600; encrypted with the password as `minisign -G` does,
    or without one like `minisign -G -W`) and its public key."""
    for p in (secret_path, public_path):
        if os.path.exists(p) and not force:
            raise FirmwareError(f"{p} exists; refusing to overwrite it")
    fd = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.to_text(password))
    os.chmod(secret_path, 0o600)
    pathlib.Path(public_path).write_text(key.public_key().to_text())


def default_trusted_comment(name: str, header=None, when: Optional[int] = None) -> str:
    """minisign's own form (timestamp, file, hashed) plus what the image says of itself."""
    parts = [f"timestamp:{int(time.time()) if when is None else when}", f"file:{os.path.basename(name)}", "hashed"]
    if header is not None:
        parts += [f"target:{header.target}", f"version:{header.version_str}", f"rollback:{header.rollback}"]
    return "\t".join(parts)
