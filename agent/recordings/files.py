"""The recordings directory: what is there, a file named by the API, and the
torn end a kill -9 can leave on the file that was being written (trimmed to
its last whole pcapng block or encrypted chunk)."""
import os
import pathlib
import re
import struct
from typing import Optional

from agent.recordings import crypt

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*-(\d{8}T\d{6}Z)-(\d{6})\.pcapng(\.enc)?$")
SHB = 0x0A0D0D0A


def is_recording(name: str) -> bool:
    return bool(NAME.match(name))


def creation_order(path: pathlib.Path) -> tuple:
    """The recorder names a file when it opens it: the second (UTC), then its sequence number.  Not the
    modification time: a file is finished (its last block, fsync) after the next one was opened."""
    stamp, seq = NAME.match(path.name).group(1, 2)
    return stamp, int(seq), path.name


def describe(path: pathlib.Path, active: Optional[str] = None) -> dict:
    st = path.stat()
    d = {"name": path.name, "size": st.st_size, "modified_ts": st.st_mtime,
         "encrypted": path.name.endswith(crypt.SUFFIX), "active": path.name == active, "key_id": None,
         "complete": None}
    if d["encrypted"]:
        try:
            with open(path, "rb") as f:
                d["key_id"] = crypt.read_header(f).key_id
                if not d["active"]:
                    f.seek(0)
                    d["complete"] = crypt.chunk_extents(f)[1]
        except (OSError, crypt.FormatError):
            d["complete"] = False
    return d


def list_dir(directory, active: Optional[str] = None) -> list:
    """Recordings in a directory, oldest first."""
    d = pathlib.Path(directory)
    if not d.is_dir():
        return []
    files = [p for p in d.iterdir() if is_recording(p.name) and p.is_file() and not p.is_symlink()]
    files.sort(key=creation_order)
    return [describe(p, active) for p in files]


def path_of(directory, name: str) -> Optional[pathlib.Path]:
    """The recording called `name` in the directory, or None: no paths, no links."""
    if not is_recording(name):
        return None
    p = pathlib.Path(directory) / name
    return p if p.is_file() and not p.is_symlink() else None


def pcapng_extent(f) -> int:
    """Bytes of whole pcapng blocks from the start (block lengths checked at both ends)."""
    size = os.fstat(f.fileno()).st_size
    head = f.read(12)
    if len(head) < 12:
        return 0
    magic = head[8:12]
    order = "<" if magic == b"\x4d\x3c\x2b\x1a" else ">" if magic == b"\x1a\x2b\x3c\x4d" else None
    if order is None or struct.unpack(order + "I", head[:4])[0] != SHB:
        return 0
    if size >= 24:  # the usual case, an intact end: the last block's two lengths agree
        f.seek(size - 4)
        last, = struct.unpack(order + "I", f.read(4))
        if 12 <= last <= size and last % 4 == 0:
            f.seek(size - last + 4)
            if struct.unpack(order + "I", f.read(4))[0] == last:
                return size
    offset = 0
    while offset + 12 <= size:
        f.seek(offset)
        _, length = struct.unpack(order + "II", f.read(8))
        if length < 12 or length % 4 or offset + length > size:
            break
        f.seek(offset + length - 4)
        if struct.unpack(order + "I", f.read(4))[0] != length:
            break
        offset += length
    return offset


def trim_torn_end(path) -> int:
    """Cut a partly written last block (or chunk) off a recording; the bytes cut."""
    with open(path, "r+b") as f:
        size = os.fstat(f.fileno()).st_size
        if f.read(8) == crypt.MAGIC:
            f.seek(0)
            try:
                keep = crypt.chunk_extents(f)[0]
            except crypt.FormatError:
                return 0
        else:
            f.seek(0)
            keep = pcapng_extent(f)
        if keep >= size or keep == 0:
            return 0
        f.truncate(keep)
        os.fsync(f.fileno())
        return size - keep


def repair_newest(directory, prefix: str) -> Optional[tuple]:
    """The newest recording of a prefix may be the one a crash interrupted:
    (name, bytes cut) when it had a torn end."""
    files = [r for r in list_dir(directory) if r["name"].startswith(prefix + "-")]
    if not files:
        return None
    newest = pathlib.Path(directory) / files[-1]["name"]
    cut = trim_torn_end(newest)
    return (newest.name, cut) if cut else None
