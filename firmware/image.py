"""The firmware image format: a 128-byte header, then the payload.

    offset size  field (little-endian)
         0    4  magic "CBFW"
         4    2  format version (1)
         6    2  header length (128)
         8   32  hardware target, ASCII, NUL-padded
        40    6  firmware version: major, minor, patch (u16 each)
        46    2  reserved, zero
        48    4  rollback index
        52    4  flags, zero
        56    8  build time, Unix seconds
        64    8  payload length
        72   32  SHA-256 of the payload
       104   24  reserved, zero

The detached signature (minisign) covers the whole file, header included.
Parsing checks every field before anything else looks at the image."""
import dataclasses
import hashlib
import re
import struct
import time
from typing import Optional

from firmware.errors import FirmwareError, Reason

MAGIC = b"CBFW"
FORMAT_VERSION = 1
HEADER = struct.Struct("<4sHH32sHHHHIIQQ32s24s")
HEADER_LEN = HEADER.size
TARGET_MAX = 32
PAYLOAD_MAX = 1 << 30
_TARGET_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
_VERSION_RE = re.compile(r"(\d{1,5})\.(\d{1,5})\.(\d{1,5})")

assert HEADER_LEN == 128


@dataclasses.dataclass(frozen=True)
class Header:
    target: str
    version: tuple          # (major, minor, patch)
    rollback: int
    build_time: int
    payload_len: int
    sha256: bytes
    format_version: int = FORMAT_VERSION

    @property
    def version_str(self) -> str:
        return ".".join(map(str, self.version))

    def as_dict(self) -> dict:
        return {"format_version": self.format_version, "target": self.target, "version": self.version_str,
                "rollback_index": self.rollback, "build_time": self.build_time,
                "build_time_iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.build_time)),
                "payload_length": self.payload_len, "payload_sha256": self.sha256.hex()}


def parse_version(text: str) -> tuple:
    m = _VERSION_RE.fullmatch(text.strip())
    if not m or any(int(g) > 0xFFFF for g in m.groups()):
        raise FirmwareError(f"version {text!r} is not X.Y.Z (each 0..65535)")
    return tuple(int(g) for g in m.groups())


def check_target(target: str) -> str:
    if not _TARGET_RE.fullmatch(target):
        raise FirmwareError(f"target {target!r}: 1 to 32 of letters, digits, '.', '_', '-'")
    return target


def build(payload: bytes, target: str, version: str, rollback: int, build_time: Optional[int] = None) -> bytes:
    """A complete image (header and payload)."""
    return build_header(len(payload), hashlib.sha256(payload).digest(), target, version, rollback,
                        build_time) + payload


def build_header(payload_len: int, payload_sha256: bytes, target: str, version: str, rollback: int,
                 build_time: Optional[int] = None) -> bytes:
    """The header of an image whose payload is written separately (update bundles, streamed)."""
    check_target(target)
    ver = parse_version(version)
    if not 0 <= rollback <= 0xFFFFFFFF:
        raise FirmwareError(f"rollback index {rollback} out of range 0..4294967295")
    if payload_len > PAYLOAD_MAX:
        raise FirmwareError(f"payload of {payload_len} bytes is larger than {PAYLOAD_MAX}")
    if not payload_len:
        raise FirmwareError("the payload is empty")
    when = int(time.time()) if build_time is None else build_time
    return HEADER.pack(MAGIC, FORMAT_VERSION, HEADER_LEN, target.encode().ljust(TARGET_MAX, b"\0"),
                       *ver, 0, rollback, 0, when, payload_len, payload_sha256, bytes(24))


def parse_header(data: bytes) -> Header:
    """The header of an image, every field checked; FirmwareError with a reason otherwise."""
    if len(data) < 8:
        raise FirmwareError(f"{len(data)} bytes: too short for an image header", Reason.TRUNCATED)
    if data[:4] != MAGIC:
        raise FirmwareError("not a capbox firmware image (bad magic)", Reason.BAD_MAGIC)
    fmt, hlen = struct.unpack_from("<HH", data, 4)
    if fmt != FORMAT_VERSION:
        raise FirmwareError(f"image format version {fmt} is not supported (this capbox reads {FORMAT_VERSION})",
                            Reason.UNSUPPORTED_FORMAT)
    if hlen != HEADER_LEN:
        raise FirmwareError(f"header length {hlen} where format {fmt} has {HEADER_LEN}", Reason.MALFORMED)
    if len(data) < HEADER_LEN:
        raise FirmwareError(f"the file ends inside the header ({len(data)} of {HEADER_LEN} bytes)", Reason.TRUNCATED)
    (_, _, _, raw_target, major, minor, patch, pad, rollback, flags, build_time, payload_len, digest,
     reserved) = HEADER.unpack_from(data)
    name, _, rest = raw_target.partition(b"\0")
    try:
        target = name.decode("ascii")
    except UnicodeDecodeError:
        target = ""
    if rest.strip(b"\0") or not _TARGET_RE.fullmatch(target):
        raise FirmwareError("the header's target is not a NUL-padded name", Reason.MALFORMED)
    if pad or flags or any(reserved):
        raise FirmwareError("reserved header bytes are not zero", Reason.MALFORMED)
    if payload_len == 0 or payload_len > PAYLOAD_MAX:
        raise FirmwareError(f"payload length {payload_len} out of range 1..{PAYLOAD_MAX}", Reason.MALFORMED)
    return Header(target, (major, minor, patch), rollback, build_time, payload_len, digest, fmt)


def split(data: bytes) -> tuple:
    """(header, payload) of a whole image; the file must end where the payload does."""
    header = parse_header(data)
    check_length(header, len(data))
    return header, data[HEADER_LEN:]


def check_length(header: Header, file_len: int) -> None:
    """The file (of file_len bytes) must end where the header says the payload does."""
    have = file_len - HEADER_LEN
    if have < header.payload_len:
        raise FirmwareError(f"the file ends inside the payload ({have} of {header.payload_len} bytes)",
                            Reason.TRUNCATED)
    if have > header.payload_len:
        raise FirmwareError(f"{have - header.payload_len} bytes follow the payload", Reason.MALFORMED)


def payload_matches(header: Header, payload: bytes) -> bool:
    return hashlib.sha256(payload).digest() == header.sha256
