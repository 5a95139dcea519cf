"""Verification: an image and its detached signature to a verdict.

Fails closed, cheapest checks first, and nothing is trusted before it is
checked: the header's structure and lengths (no crypto yet), the payload
against the header's SHA-256, the signature file's form, its key id in the
keyring, the Ed25519 signature over the whole image (legacy, or prehashed
with BLAKE2b-512), the trusted comment's signature, and only then what the
now-authentic header says: the hardware target and the rollback index.
Nothing here writes anything; callers act only on a verdict whose `ok` is set."""
import dataclasses
import hashlib
import os
from typing import BinaryIO, Optional

from firmware import image, minisign
from firmware.errors import FirmwareError, Reason
from firmware.keyring import Keyring


@dataclasses.dataclass(frozen=True)
class Verdict:
    reason: Reason
    message: str
    header: Optional[image.Header] = None
    key_id: Optional[str] = None
    trusted_comment: Optional[str] = None
    prehashed: Optional[bool] = None
    image_sha256: Optional[str] = None
    rollback_override: bool = False

    @property
    def ok(self) -> bool:
        return self.reason is Reason.OK

    def as_dict(self) -> dict:
        return {"ok": self.ok, "reason": self.reason.code, "message": self.message,
                "header": self.header.as_dict() if self.header else None, "key_id": self.key_id,
                "trusted_comment": self.trusted_comment,
                "signature_algorithm": None if self.prehashed is None else ("ED" if self.prehashed else "Ed"),
                "image_sha256": self.image_sha256, "rollback_override": self.rollback_override}


def check_signature(data: Optional[bytes], sig: minisign.Signature, key: minisign.PublicKey,
                    digest: Optional[bytes] = None) -> Optional[str]:
    """None when `sig` by `key` holds for `data` and for its trusted comment, else why not.
    `digest`: the file's BLAKE2b-512 when it was hashed as it was read (data may then be None)."""
    from cryptography.exceptions import InvalidSignature    # on first use: the agent starts without
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey   # cryptography's core
    pub = Ed25519PublicKey.from_public_bytes(key.key)
    try:
        pub.verify(sig.signature, (digest or minisign.prehash(data)) if sig.prehashed else data)
    except InvalidSignature:
        return f"the signature by key {key.id_hex} does not verify"
    try:
        pub.verify(sig.global_signature, sig.signature + sig.trusted_comment.encode())
    except InvalidSignature:
        return "the trusted comment's signature does not verify"
    return None


def verify(data: bytes, signature, keys: Keyring, target: Optional[str] = None,
           min_rollback: int = 0, allow_rollback: bool = False) -> Verdict:
    """The verdict on image bytes `data` and signature text `signature`.
    `target`: the hardware target the image must be built for (None: any);
    `min_rollback`: the highest rollback index accepted so far; an image
    below it is refused unless `allow_rollback` (the verdict then says so)."""
    facts: dict = {"image_sha256": hashlib.sha256(data).hexdigest()}

    def refuse(reason: Reason, message: str) -> Verdict:
        return Verdict(reason, message, **facts)
    try:
        header, payload = image.split(data)
    except FirmwareError as e:
        return refuse(e.reason or Reason.MALFORMED, e.message)
    facts["header"] = header
    if not image.payload_matches(header, payload):
        return refuse(Reason.HASH_MISMATCH, "the payload does not match the SHA-256 in the header")
    return _signed(facts, signature, keys, target, min_rollback, allow_rollback,
                   lambda sig, key: check_signature(data, sig, key))


def verify_file(f: BinaryIO, signature, keys: Keyring, target: Optional[str] = None,
                min_rollback: int = 0, allow_rollback: bool = False, chunk: int = 1 << 20) -> Verdict:
    """verify() of an image in an open file, read once in chunks and never held
    whole (update bundles: hundreds of MB on a box with little memory).  The same
    checks in the same order; only prehashed signatures (minisign's default) can
    be checked this way: a legacy one is a bad_signature here."""
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(0)
    head = f.read(image.HEADER_LEN)
    whole, blake = hashlib.sha256(head), hashlib.blake2b(head, digest_size=64)
    try:
        header = image.parse_header(head)
        image.check_length(header, size)
    except FirmwareError as e:
        for block in iter(lambda: f.read(chunk), b""):
            whole.update(block)
        return Verdict(e.reason or Reason.MALFORMED, e.message, image_sha256=whole.hexdigest())
    payload = hashlib.sha256()
    for block in iter(lambda: f.read(chunk), b""):
        whole.update(block)
        blake.update(block)
        payload.update(block)
    facts: dict = {"image_sha256": whole.hexdigest(), "header": header}
    if payload.digest() != header.sha256:
        return Verdict(Reason.HASH_MISMATCH, "the payload does not match the SHA-256 in the header", **facts)

    def check(sig, key):
        if not sig.prehashed:
            return ("a legacy (Ed) signature is over the whole file in memory, which a streamed image never is: "
                    "sign it prehashed (minisign's default)")
        return check_signature(None, sig, key, digest=blake.digest())
    return _signed(facts, signature, keys, target, min_rollback, allow_rollback, check)


def _signed(facts: dict, signature, keys: Keyring, target: Optional[str], min_rollback: int,
            allow_rollback: bool, check) -> Verdict:
    """The checks after the image's own (signature form, key, signature, target,
    rollback); `check(sig, key)` says why the signature fails, or None."""
    header = facts["header"]

    def refuse(reason: Reason, message: str) -> Verdict:
        return Verdict(reason, message, **facts)
    try:
        sig = minisign.parse_signature(signature)
    except FirmwareError as e:
        return refuse(Reason.MALFORMED_SIGNATURE, e.message)
    facts["key_id"] = minisign.key_id_hex(sig.key_id)
    facts["prehashed"] = sig.prehashed
    key = keys.find(sig.key_id)
    if key is None:
        return refuse(Reason.UNKNOWN_KEY, f"signed by key {facts['key_id']}, which is not trusted here"
                      + (f" ({len(keys)} trusted in {keys.source})" if keys.source else ""))
    failure = check(sig, key)
    if failure:
        return refuse(Reason.BAD_SIGNATURE, failure)
    facts["trusted_comment"] = sig.trusted_comment
    if target is not None and header.target != target:
        return refuse(Reason.WRONG_TARGET, f"built for {header.target!r}, this hardware is {target!r}")
    if header.rollback < min_rollback:
        if not allow_rollback:
            return refuse(Reason.ROLLBACK, f"rollback index {header.rollback} is below {min_rollback}, "
                                           "the highest accepted here")
        facts["rollback_override"] = True
    return Verdict(Reason.OK, f"signature by key {facts['key_id']} verified", **facts)
