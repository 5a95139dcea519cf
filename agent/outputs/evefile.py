"""JSON lines appended to one file, rotated by size: numbered as Suricata's
eve.json is (eve.json -> eve.json.1 -> ... -> eve.json.N, the oldest
removed), or stamped with the UTC time of the rotation (dns.log ->
dns.log.20261205T230102.123456.000007) and removed by prune() when a size or age
budget is spent (the protocol logs)."""
import datetime
import json
import os
import pathlib
import time


class EveFile:
    def __init__(self, path: pathlib.Path, rotate_bytes: int, keep: int, stamped: bool = False):
        self.path = path
        self.rotate_bytes = rotate_bytes
        self.keep = keep
        self.stamped = stamped
        self.written = self.rotations = 0
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._f = self._open()

    def _open(self):
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.size = os.fstat(fd).st_size   # counted, not asked: a text file's tell() costs more than the write
        return os.fdopen(fd, "a", encoding="utf-8", buffering=1 << 16)

    def write(self, record: dict) -> None:
        self.write_line(json.dumps(record, separators=(",", ":"), default=str))

    def write_line(self, line: str) -> None:
        """A record already serialised (the same text goes to the file and elsewhere)."""
        self.write_lines((line,))

    def write_lines(self, lines) -> None:
        """Records already serialised, written at once (the protocol logs' buffers): the file rotates after
        them, so it may pass rotate_bytes by their size."""
        text = "\n".join(lines) + "\n"
        self._f.write(text)
        self.written += len(lines)
        self.size += len(text) if text.isascii() else len(text.encode())
        if self.rotate_bytes and self.size >= self.rotate_bytes:
            self.rotate()

    def flush(self) -> None:
        self._f.flush()

    def rotate(self) -> None:
        self._f.close()
        if self.stamped:
            stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%f")
            # the count keeps two rotations within one microsecond apart
            self.path.rename(self.path.with_name(f"{self.path.name}.{stamp}.{self.rotations % 1000000:06d}"))
        else:
            self._shift()
        self._f = self._open()
        self.rotations += 1

    def _shift(self) -> None:
        for n in range(self.keep, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            newer = self.path.with_name(f"{self.path.name}.{n - 1}") if n > 1 else self.path
            if n == self.keep and older.exists():
                older.unlink()
            if newer.exists():
                newer.rename(older)
        if self.keep == 0:
            self.path.unlink(missing_ok=True)

    def rotated(self) -> list:
        """The files rotated out of this one, oldest first (stamped names sort by time)."""
        return sorted(self.path.parent.glob(f"{self.path.name}.*"))

    def close(self) -> None:
        self._f.close()

    def detail(self) -> dict:
        return {"path": str(self.path), "written": self.written, "rotations": self.rotations}


def prune(files: list, keep_bytes: int, keep_s: float, now: float = 0.0) -> list:
    """Remove files (oldest by mtime first) older than keep_s, then until the rest fit in keep_bytes
    (0: no limit for either); the paths removed."""
    now = now or time.time()
    stats = sorted(((st.st_mtime, st.st_size, f) for f in files for st in _stat(f)), key=lambda x: x[0])
    total = sum(size for _, size, _ in stats)
    removed = []
    for mtime, size, f in stats:
        if not (keep_s and now - mtime > keep_s or keep_bytes and total > keep_bytes):
            break
        f.unlink(missing_ok=True)
        total -= size
        removed.append(f)
    return removed


def _stat(f: pathlib.Path) -> list:
    try:
        return [f.stat()]
    except FileNotFoundError:
        return []
