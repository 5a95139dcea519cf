"""Packet recording: pcapng files written by the C core (hwdrivers/src/record.c),
rotated by size and packet time, kept by total size and age, optionally
AES-256-GCM encrypted in chunks (docs/RECORDING.md).  Python only starts,
stops and reads the recorder; packets never pass through here."""
import dataclasses
from typing import Optional

from hwdrivers._hw import ffi, lib
from hwdrivers.errors import CaptureError, ErrorCode

KEY_SIZE = lib.HW_REC_KEY_SIZE
KEY_ID_SIZE = lib.HW_REC_KEY_ID_SIZE


def _defaults():
    c = ffi.new("struct hw_record_config *")
    lib.hw_record_config_init(c)
    return c


_D = _defaults()


@dataclasses.dataclass(frozen=True)
class RecordConfig:
    directory: str
    prefix: str = "capbox"
    bpf: str = ""                        # the recording's own filter (a tunnel's: on the packet inside)
    bpf_outer: bool = False              # the filter sees a tunnel's outer packet instead
    if_name: str = ""                    # interface description in each file
    snaplen: int = 0                     # 0: whole packets
    rotate_bytes: int = _D.rotate_bytes  # 0: never
    rotate_s: int = 0                    # packet time; 0: never
    keep_bytes: int = 0                  # retention: total size of the prefix's files; 0: no limit
    keep_s: int = 0                      # retention: age; 0: no limit
    buffer_kb: int = _D.buffer_kb
    buffers: int = _D.buffers
    flush_ms: int = _D.flush_ms
    lossless: bool = False               # offline: wait for the writer instead of dropping
    fsync: bool = True


@dataclasses.dataclass(frozen=True)
class RecordStats:
    active: bool
    encrypted: bool
    key_id: Optional[str]
    packets: int
    bytes: int
    filtered: int
    dropped: int
    file_bytes: int
    files: int
    files_closed: int
    files_deleted: int
    chunks: int
    write_errors: int
    writer_cpu_s: float
    current: str
    last_error: str

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def check_key(key: Optional[bytes]) -> None:
    if key is not None and (not isinstance(key, (bytes, bytearray)) or len(key) != KEY_SIZE):
        raise CaptureError(ErrorCode.ARG, f"a recording key is {KEY_SIZE} bytes")


def to_cdata(cfg: RecordConfig, key: Optional[bytes]):
    """struct hw_record_config, and what must stay alive with it."""
    check_key(key)
    c = ffi.new("struct hw_record_config *")
    lib.hw_record_config_init(c)
    keep = [ffi.new("char[]", cfg.directory.encode()), ffi.new("char[]", cfg.prefix.encode()),
            ffi.new("char[]", cfg.bpf.encode()), ffi.new("char[]", cfg.if_name.encode())]
    c.dir, c.prefix, c.bpf, c.if_name = keep
    c.snaplen = cfg.snaplen
    c.bpf_outer = int(cfg.bpf_outer)
    c.rotate_bytes = cfg.rotate_bytes
    c.rotate_s = cfg.rotate_s
    c.keep_bytes = cfg.keep_bytes
    c.keep_s = cfg.keep_s
    c.buffer_kb = cfg.buffer_kb
    c.buffers = cfg.buffers
    c.flush_ms = cfg.flush_ms
    c.lossless = int(cfg.lossless)
    c.fsync = int(cfg.fsync)
    if key is not None:
        k = ffi.new("uint8_t[]", bytes(key))
        keep.append(k)
        c.key = k
    return c, keep


def stats_from_cdata(s) -> RecordStats:
    kid = bytes(s.key_id)
    return RecordStats(
        active=bool(s.active), encrypted=bool(s.encrypted), key_id=kid.hex() if s.encrypted else None,
        packets=s.packets, bytes=s.bytes, filtered=s.filtered, dropped=s.dropped, file_bytes=s.file_bytes,
        files=s.files, files_closed=s.files_closed, files_deleted=s.files_deleted, chunks=s.chunks,
        write_errors=s.write_errors, writer_cpu_s=s.writer_cpu_ns / 1e9, current=ffi.string(s.current).decode(errors="replace"),
        last_error=ffi.string(s.last_error).decode(errors="replace"))
