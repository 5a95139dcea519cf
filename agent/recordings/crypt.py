"""The encrypted recording format (docs/RECORDING.md), read with the
`cryptography` package's AES-GCM: the C recorder writes it, this reads it.

A file is a 48-byte header, then chunks; each chunk is one AES-256-GCM
message over whole pcapng blocks, authenticated together with the header,
its index, its length and its flags, so a damaged, reordered, swapped or
dropped chunk and a cut-off file are all detected, and where."""
import dataclasses
import hashlib
import os
import struct
from typing import BinaryIO, Iterator, Optional

MAGIC = b"\x89CBX\r\n\x1a\n"
HEADER_SIZE = 48
CHUNK_HEADER = 20          # plaintext length, flags, nonce
TAG = 16
FINAL = 1                  # flags bit 0: the last chunk of the file
VERSION = 1
CIPHERS = {1: "AES-256-GCM"}
MAX_CHUNK = 64 << 20       # what the recorder can write (buffer_kb <= 65536)
SUFFIX = ".enc"

# Error codes: what went wrong, for programs (tests assert these, not messages).
NOT_ENCRYPTED = "NOT_ENCRYPTED"    # no capbox encrypted-recording header
UNSUPPORTED = "UNSUPPORTED"        # a format version or cipher this reader does not know
WRONG_KEY = "WRONG_KEY"            # the key's id is not the file's
DAMAGED = "DAMAGED"                # a chunk failed authentication
BAD_CHUNK = "BAD_CHUNK"            # a chunk header that cannot be right
TRUNCATED = "TRUNCATED"            # the file ends inside a chunk
INCOMPLETE = "INCOMPLETE"          # the file ends after a whole chunk without the final one
TRAILING = "TRAILING"              # bytes after the final chunk


class FormatError(Exception):
    """Why a file does not decrypt, and where: `chunk` (index) and `offset`
    (byte range in the file) when a chunk is to blame."""

    def __init__(self, code: str, message: str, chunk: Optional[int] = None,
                 offset: Optional[tuple] = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.chunk = chunk
        self.offset = offset


@dataclasses.dataclass(frozen=True)
class Header:
    version: int
    cipher: str
    max_chunk: int
    key_id: str
    file_id: str
    created_ns: int
    raw: bytes


def key_id(key: bytes) -> str:
    """SHA-256 of the key, first 8 bytes, hex: the id in a file's header."""
    return hashlib.sha256(key).digest()[:8].hex()


def parse_header(raw: bytes) -> Header:
    if len(raw) < 8 or raw[:8] != MAGIC:
        raise FormatError(NOT_ENCRYPTED, "not a capbox encrypted recording (no header)")
    if len(raw) < HEADER_SIZE:
        raise FormatError(TRUNCATED, f"the file ends inside its {HEADER_SIZE}-byte header", offset=(0, len(raw)))
    version, cipher, hlen, max_chunk = struct.unpack("!BBHI", raw[8:16])
    if version != VERSION or hlen != HEADER_SIZE:
        raise FormatError(UNSUPPORTED, f"format version {version} (header {hlen} bytes); this reader knows "
                          f"version {VERSION}")
    if cipher not in CIPHERS:
        raise FormatError(UNSUPPORTED, f"cipher {cipher} is not one this reader implements")
    if not 0 < max_chunk <= MAX_CHUNK:
        raise FormatError(BAD_CHUNK, f"chunk size {max_chunk} in the header is out of range", offset=(12, 16))
    created, = struct.unpack("!Q", raw[40:48])
    return Header(version, CIPHERS[cipher], max_chunk, raw[16:24].hex(), raw[24:40].hex(), created,
                  bytes(raw[:HEADER_SIZE]))


def read_header(f: BinaryIO) -> Header:
    return parse_header(f.read(HEADER_SIZE))


def is_encrypted(path) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == MAGIC


def chunks(f: BinaryIO, key: bytes, header: Optional[Header] = None) -> Iterator[bytes]:
    """The plaintext of each chunk in order, each authenticated before it is
    yielded; FormatError at the first thing wrong (f is after the header)."""
    if header is None:
        header = read_header(f)
    if key_id(key) != header.key_id:
        raise FormatError(WRONG_KEY, f"the key's id {key_id(key)} is not the file's {header.key_id}: wrong key")
    from cryptography.exceptions import InvalidTag        # on first use: the agent starts without
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM   # cryptography's 15 MB core
    aead = AESGCM(key)
    offset, index = HEADER_SIZE, 0
    while True:
        head = f.read(CHUNK_HEADER)
        if not head:
            raise FormatError(INCOMPLETE, f"the file ends after chunk {index - 1} without its final chunk: "
                              "the recording was interrupted, or the file was cut", chunk=index,
                              offset=(offset, offset))
        if len(head) < CHUNK_HEADER:
            raise FormatError(TRUNCATED, f"the file ends inside the header of chunk {index} at byte {offset}",
                              chunk=index, offset=(offset, offset + len(head)))
        length, flags = struct.unpack("!II", head[:8])
        end = offset + CHUNK_HEADER + length + TAG
        if length > header.max_chunk or flags & ~FINAL:
            raise FormatError(BAD_CHUNK, f"chunk {index} at bytes {offset}..{offset + CHUNK_HEADER} has an "
                              f"impossible header (length {length}, flags {flags:#x}): the file is damaged there",
                              chunk=index, offset=(offset, offset + CHUNK_HEADER))
        body = f.read(length + TAG)
        if len(body) < length + TAG:
            raise FormatError(TRUNCATED, f"the file ends inside chunk {index} (bytes {offset}..{end})",
                              chunk=index, offset=(offset, offset + CHUNK_HEADER + len(body)))
        aad = header.raw + struct.pack("!QII", index, length, flags)
        try:
            plain = aead.decrypt(head[8:20], body, aad)
        except InvalidTag:
            raise FormatError(DAMAGED, f"chunk {index} (bytes {offset}..{end} of the file) failed authentication: "
                              "it is damaged, or was altered, moved or taken from another file",
                              chunk=index, offset=(offset, end)) from None
        yield plain
        offset, index = end, index + 1
        if flags & FINAL:
            extra = f.read(1)
            if extra:
                raise FormatError(TRAILING, f"bytes after the final chunk, from byte {offset}", chunk=index,
                                  offset=(offset, offset))
            return


@dataclasses.dataclass
class Result:
    chunks: int = 0
    bytes: int = 0
    error: Optional[FormatError] = None


def decrypt_file(src, dst: BinaryIO, key: bytes) -> Result:
    """Decrypt src into dst as far as it authenticates; the error, if any, in the result."""
    out = Result()
    with open(src, "rb") as f:
        try:
            for plain in chunks(f, key):
                dst.write(plain)
                out.chunks += 1
                out.bytes += len(plain)
        except FormatError as e:
            out.error = e
    return out


def verify(path, key: bytes) -> Result:
    """Authenticate every chunk without keeping the plaintext."""
    out = Result()
    with open(path, "rb") as f:
        try:
            for plain in chunks(f, key):
                out.chunks += 1
                out.bytes += len(plain)
        except FormatError as e:
            out.error = e
    return out


def chunk_extents(f: BinaryIO) -> tuple:
    """(bytes of whole chunks from the start of the file, whether the last is
    final), by the chunks' length fields alone, without a key: to trim a torn end."""
    header = read_header(f)
    size = os.fstat(f.fileno()).st_size
    offset = HEADER_SIZE
    while offset + CHUNK_HEADER <= size:
        f.seek(offset)
        length, flags = struct.unpack("!II", f.read(8))
        end = offset + CHUNK_HEADER + length + TAG
        if length > header.max_chunk or end > size:
            break
        offset = end
        if flags & FINAL:
            return offset, True
    return offset, False
