"""minisign's file formats: public keys, secret keys and signatures.

    public key   untrusted comment line, base64("Ed" || key id(8) || public key(32))
    secret key   untrusted comment line, base64("Ed" || kdf "Sc"/"\\0\\0" || "B2" || salt(32)
                 || opslimit(8 LE) || memlimit(8 LE) || [key id(8) || secret key(64) || checksum(32)])
                 the bracketed part XORed with scrypt(password) when kdf is "Sc"
    signature    untrusted comment line, base64(alg || key id(8) || signature(64)),
                 trusted comment line, base64(signature over signature(64) || trusted comment)
                 alg "Ed": Ed25519 over the file; "ED": over BLAKE2b-512 of the file (prehashed)

A key id is printed as minisign prints it: the 8 bytes as a little-endian
64-bit number in 16 upper-case hex digits."""
import base64
import binascii
import dataclasses
import hashlib

from firmware.errors import FirmwareError, Reason

UNTRUSTED = "untrusted comment: "
TRUSTED = "trusted comment: "
ALG_LEGACY = b"Ed"
ALG_HASHED = b"ED"
KDF_SCRYPT = b"Sc"
KDF_NONE = b"\0\0"
CHK_BLAKE2B = b"B2"
KEY_ID_LEN = 8
SECRET_KEY_BLOB = 158
COMMENT_MAX = 1024
TRUSTED_COMMENT_MAX = 8192
SIGNATURE_MAX = 16384          # a .minisig file the agent takes from a user (upload, header, file)


def key_id_hex(key_id: bytes) -> str:
    return f"{int.from_bytes(key_id, 'little'):016X}"


def prehash(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=64).digest()


def _b64(line: str, size: int, what: str, reason=None) -> bytes:
    try:
        raw = base64.b64decode(line.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise FirmwareError(f"{what}: not base64", reason) from None
    if len(raw) != size:
        raise FirmwareError(f"{what}: {len(raw)} bytes where {size} belong", reason)
    return raw


def _lines(text, what: str, reason=None) -> list:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise FirmwareError(f"{what}: not text", reason) from None
    return text.replace("\r\n", "\n").split("\n")


@dataclasses.dataclass(frozen=True)
class PublicKey:
    key_id: bytes
    key: bytes              # Ed25519 public key, 32 bytes
    comment: str = ""

    @property
    def id_hex(self) -> str:
        return key_id_hex(self.key_id)

    def blob(self) -> str:
        return base64.b64encode(ALG_LEGACY + self.key_id + self.key).decode()

    def to_text(self) -> str:
        return f"{UNTRUSTED}minisign public key {self.id_hex}\n{self.blob()}\n"


def parse_public_key(text) -> PublicKey:
    """A minisign public key file, or its bare base64 line (as `minisign -P` takes)."""
    lines = [l for l in _lines(text, "public key") if l.strip()]
    comment = ""
    if lines and lines[0].startswith(UNTRUSTED):
        comment = lines.pop(0)[len(UNTRUSTED):]
    if len(lines) != 1:
        raise FirmwareError("public key: expected one base64 line after the comment")
    raw = _b64(lines[0], 2 + KEY_ID_LEN + 32, "public key")
    if raw[:2] != ALG_LEGACY:
        raise FirmwareError(f"public key: unsupported algorithm {raw[:2]!r}")
    return PublicKey(raw[2:10], raw[10:], comment)


@dataclasses.dataclass(frozen=True)
class SecretKeyFile:
    """A secret key file as stored: the key part may still be encrypted."""

    kdf: bytes
    salt: bytes
    opslimit: int
    memlimit: int
    keynum_sk: bytes        # key id || secret key || checksum (104 bytes, maybe encrypted)

    @property
    def encrypted(self) -> bool:
        return self.kdf == KDF_SCRYPT


def parse_secret_key(text) -> SecretKeyFile:
    lines = [l for l in _lines(text, "secret key") if l.strip()]
    if len(lines) != 2 or not lines[0].startswith(UNTRUSTED):
        raise FirmwareError("secret key: expected an untrusted comment line and one base64 line")
    raw = _b64(lines[1], SECRET_KEY_BLOB, "secret key")
    if raw[:2] != ALG_LEGACY or raw[4:6] != CHK_BLAKE2B:
        raise FirmwareError("secret key: not a minisign Ed25519 secret key")
    kdf = raw[2:4]
    if kdf not in (KDF_SCRYPT, KDF_NONE):
        raise FirmwareError(f"secret key: unsupported key derivation {kdf!r}")
    return SecretKeyFile(kdf, raw[6:38], int.from_bytes(raw[38:46], "little"),
                         int.from_bytes(raw[46:54], "little"), raw[54:158])


def format_secret_key(key_id: bytes, sk: bytes) -> str:
    """An unencrypted secret key file, as `minisign -G -W` writes it: no KDF,
    zero salt and limits, and a zero checksum (minisign checks it only for
    encrypted keys)."""
    return format_secret_key_file(SecretKeyFile(KDF_NONE, bytes(32), 0, 0, key_id + sk + bytes(32)))


def format_secret_key_file(f: "SecretKeyFile") -> str:
    blob = (ALG_LEGACY + f.kdf + CHK_BLAKE2B + f.salt + f.opslimit.to_bytes(8, "little")
            + f.memlimit.to_bytes(8, "little") + f.keynum_sk)
    return f"{UNTRUSTED}minisign encrypted secret key\n{base64.b64encode(blob).decode()}\n"


@dataclasses.dataclass(frozen=True)
class Signature:
    alg: bytes              # ALG_LEGACY or ALG_HASHED
    key_id: bytes
    signature: bytes        # 64 bytes
    trusted_comment: str
    global_signature: bytes # 64 bytes, over signature || trusted comment
    untrusted_comment: str = ""

    @property
    def prehashed(self) -> bool:
        return self.alg == ALG_HASHED

    def to_text(self) -> str:
        return (f"{UNTRUSTED}{self.untrusted_comment}\n"
                f"{base64.b64encode(self.alg + self.key_id + self.signature).decode()}\n"
                f"{TRUSTED}{self.trusted_comment}\n"
                f"{base64.b64encode(self.global_signature).decode()}\n")


def parse_signature(text) -> Signature:
    """A .minisig file; anything else is MALFORMED_SIGNATURE."""
    bad = Reason.MALFORMED_SIGNATURE
    if len(text) > COMMENT_MAX + TRUSTED_COMMENT_MAX + 512:
        raise FirmwareError("signature: too large for a minisign signature", bad)
    lines = _lines(text, "signature", bad)
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) != 4:
        raise FirmwareError(f"signature: {len(lines)} lines where a minisign signature has 4", bad)
    if not lines[0].startswith(UNTRUSTED):
        raise FirmwareError("signature: the first line is not an untrusted comment", bad)
    if not lines[2].startswith(TRUSTED):
        raise FirmwareError("signature: the third line is not a trusted comment", bad)
    raw = _b64(lines[1], 2 + KEY_ID_LEN + 64, "signature", bad)
    if raw[:2] not in (ALG_LEGACY, ALG_HASHED):
        raise FirmwareError(f"signature: unsupported algorithm {raw[:2]!r}", bad)
    trusted = lines[2][len(TRUSTED):]
    if len(trusted.encode()) > TRUSTED_COMMENT_MAX:
        raise FirmwareError("signature: trusted comment too long", bad)
    glob = _b64(lines[3], 64, "signature: trusted comment signature", bad)
    return Signature(raw[:2], raw[2:10], raw[10:], trusted, glob, lines[0][len(UNTRUSTED):])
