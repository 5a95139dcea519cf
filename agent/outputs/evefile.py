"""The EVE file: JSON lines appended to one file, rotated by size
(eve.json -> eve.json.1 -> ... -> eve.json.N, the oldest removed), as
Suricata's eve.json is read by Filebeat and Vector."""
import json
import os
import pathlib


class EveFile:
    def __init__(self, path: pathlib.Path, rotate_bytes: int, keep: int):
        self.path = path
        self.rotate_bytes = rotate_bytes
        self.keep = keep
        self.written = self.rotations = 0
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._f = self._open()

    def _open(self):
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return os.fdopen(fd, "a", encoding="utf-8", buffering=1 << 16)

    def write(self, record: dict) -> None:
        self._f.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
        self.written += 1
        if self.rotate_bytes and self._f.tell() >= self.rotate_bytes:
            self.rotate()

    def flush(self) -> None:
        self._f.flush()

    def rotate(self) -> None:
        self._f.close()
        for n in range(self.keep, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            newer = self.path.with_name(f"{self.path.name}.{n - 1}") if n > 1 else self.path
            if n == self.keep and older.exists():
                older.unlink()
            if newer.exists():
                newer.rename(older)
        if self.keep == 0:
            self.path.unlink(missing_ok=True)
        self._f = self._open()
        self.rotations += 1

    def close(self) -> None:
        self._f.close()

    def detail(self) -> dict:
        return {"path": str(self.path), "written": self.written, "rotations": self.rotations}
