"""Update bundles: a root filesystem image and a UKI, with a manifest, in the
firmware image format (firmware/image.py) so that the same signatures (minisign,
prehashed), keyring and rollback index apply.

    bundle   = CBFW header (target, version, rollback index, payload SHA-256) + payload
    payload  = a tar (ustar): manifest.json, rootfs.img, capbox.efi
    manifest = {"format": 1, "target", "version", "rollback_index", "build_id",
                "rootfs": {"file", "type", "size", "sha256"}, "uki": {"file", "size", "sha256"}}

Verification streams the file once (firmware.verify.verify_file); only after a
verdict of ok is the tar read, and its manifest must agree with the header
the signature covers.  Each member is hashed again as it is copied out, so a
file changed between verification and installation is caught before its slot
is armed."""
import dataclasses
import hashlib
import io
import json
import os
import pathlib
import tarfile
import time
from typing import BinaryIO, Optional

from firmware import image, sign
from firmware.errors import Reason
from firmware.keyring import Keyring
from firmware.verify import Verdict, verify_file

FORMAT = 1
MANIFEST = "manifest.json"
ROOTFS = "rootfs.img"
UKI = "capbox.efi"
MANIFEST_MAX = 64 * 1024
CHUNK = 1 << 20


class BundleError(Exception):
    def __init__(self, message: str, reason: Reason = Reason.MALFORMED):
        super().__init__(message)
        self.message = message
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Member:
    name: str
    offset: int         # of its data in the bundle file
    size: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class Contents:
    manifest: dict
    rootfs: Member
    uki: Member

    @property
    def version(self) -> str:
        return self.manifest["version"]


def _sha256_file(path) -> tuple:
    h, n = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


class _Hashing(io.RawIOBase):
    """A write-only file that hashes and counts what goes through to `f`."""

    def __init__(self, f):
        self.f, self.sha, self.n = f, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.f.write(b)
        self.sha.update(b)
        self.n += len(b)
        return len(b)


def build(out, rootfs, uki, target: str, version: str, rollback: int, build_id: str = "",
          build_time: Optional[int] = None, rootfs_type: str = "squashfs") -> dict:
    """Write a bundle to `out` (unsigned; sign() signs it).  Returns its manifest."""
    image.check_target(target)
    image.parse_version(version)
    when = int(time.time()) if build_time is None else build_time
    r_sha, r_len = _sha256_file(rootfs)
    u_sha, u_len = _sha256_file(uki)
    manifest = {"format": FORMAT, "target": target, "version": version, "rollback_index": rollback,
                "build_id": build_id, "built_at": when,
                "rootfs": {"file": ROOTFS, "type": rootfs_type, "size": r_len, "sha256": r_sha},
                "uki": {"file": UKI, "size": u_len, "sha256": u_sha}}
    out = pathlib.Path(out)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(bytes(image.HEADER_LEN))
        sink = _Hashing(f)
        with tarfile.open(fileobj=sink, mode="w|", format=tarfile.USTAR_FORMAT) as tar:
            data = json.dumps(manifest, indent=2, sort_keys=True).encode()
            _add(tar, MANIFEST, io.BytesIO(data), len(data), when)
            for name, path, size in ((ROOTFS, rootfs, r_len), (UKI, uki, u_len)):
                with open(path, "rb") as src:
                    _add(tar, name, src, size, when)
        f.seek(0)
        f.write(image.build_header(sink.n, sink.sha.digest(), target, version, rollback, when))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)
    return manifest


def _add(tar: tarfile.TarFile, name: str, f, size: int, mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, mtime, 0o644
    tar.addfile(info, f)


def sign_file(path, secret_key, sig_path=None, trusted_comment: Optional[str] = None) -> pathlib.Path:
    """Sign a bundle as `capbox fw sign` (and `minisign -S`) do: prehashed, a detached .minisig."""
    key = sign.read_secret_key(secret_key, os.environ.get("CAPBOX_FW_PASSWORD"))
    data = pathlib.Path(path).read_bytes()
    header = image.parse_header(data)
    comment = trusted_comment or sign.default_trusted_comment(str(path), header)
    out = pathlib.Path(sig_path or f"{path}.minisig")
    out.write_text(key.sign(data, comment).to_text())
    return out


def verify(f: BinaryIO, signature, keys: Keyring, target: Optional[str], min_rollback: int = 0,
           allow_rollback: bool = False) -> tuple:
    """(verdict, contents): contents is None unless the verdict is ok.  A bundle
    whose signature holds but whose contents are not a bundle's is refused
    (malformed), so an ok verdict always comes with installable contents."""
    verdict = verify_file(f, signature, keys, target, min_rollback, allow_rollback)
    if not verdict.ok:
        return verdict, None
    try:
        contents = read_contents(f, verdict.header)
    except BundleError as e:
        return dataclasses.replace(verdict, reason=e.reason, message=e.message), None
    return verdict, contents


def read_contents(f: BinaryIO, header: image.Header) -> Contents:
    """The manifest and where the members lie; every field checked."""
    f.seek(image.HEADER_LEN)
    members = {}
    try:
        with tarfile.open(fileobj=f, mode="r:") as tar:
            for m in tar:
                if not m.isfile():
                    raise BundleError(f"{m.name}: not a regular file")
                if m.name in members:
                    raise BundleError(f"{m.name} appears twice")
                members[m.name] = m
            if MANIFEST not in members:
                raise BundleError("no manifest.json: not an update bundle")
            m = members[MANIFEST]
            if m.size > MANIFEST_MAX:
                raise BundleError("manifest.json is too large")
            raw = tar.extractfile(m).read()
    except tarfile.TarError as e:
        raise BundleError(f"the payload is not a tar: {e}") from None
    try:
        manifest = json.loads(raw)
    except ValueError as e:
        raise BundleError(f"manifest.json is not JSON: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"manifest format {manifest.get('format') if isinstance(manifest, dict) else '?'} "
                          f"is not {FORMAT}", Reason.UNSUPPORTED_FORMAT)
    said = {"target": header.target, "version": header.version_str, "rollback_index": header.rollback}
    for k, v in said.items():
        if manifest.get(k) != v:
            raise BundleError(f"the manifest's {k} {manifest.get(k)!r} is not the signed header's {v!r}")
    out = {}
    for part, default in (("rootfs", ROOTFS), ("uki", UKI)):
        spec = manifest.get(part)
        if not isinstance(spec, dict) or not all(isinstance(spec.get(k), t) for k, t in
                                                 (("file", str), ("size", int), ("sha256", str))):
            raise BundleError(f"the manifest's {part} entry is incomplete")
        m = members.get(spec["file"])
        if m is None:
            raise BundleError(f"{spec['file']} ({part}) is not in the bundle")
        if m.size != spec["size"] or m.size <= 0:
            raise BundleError(f"{spec['file']} is {m.size} bytes, the manifest says {spec['size']}")
        out[part] = Member(spec["file"], m.offset_data, m.size, spec["sha256"].lower())
    if manifest["rootfs"].get("type", "squashfs") != "squashfs":
        raise BundleError(f"root filesystem type {manifest['rootfs'].get('type')!r}: only squashfs slots exist")
    return Contents(manifest, out["rootfs"], out["uki"])


def copy_member(f: BinaryIO, member: Member, dst: BinaryIO) -> None:
    """Copy a member into dst, hashing it again: BundleError when it is not the
    one the (verified) manifest names."""
    f.seek(member.offset)
    h, left = hashlib.sha256(), member.size
    while left:
        block = f.read(min(CHUNK, left))
        if not block:
            raise BundleError(f"{member.name}: the bundle ends early", Reason.TRUNCATED)
        h.update(block)
        dst.write(block)
        left -= len(block)
    if h.hexdigest() != member.sha256:
        raise BundleError(f"{member.name} changed after verification (SHA-256 differs)", Reason.HASH_MISMATCH)


def describe(verdict: Verdict, contents: Optional[Contents]) -> dict:
    return {"valid": verdict.ok and contents is not None, **verdict.as_dict(),
            "manifest": contents.manifest if contents else None}

