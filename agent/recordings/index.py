"""The recordings' time index: for each file its first and last packet time
and its ranges (hwdrivers.extract: whole blocks, or one encrypted chunk, with
their time span), so that a window reads only the ranges it overlaps.

Each closed recording's index is a sidecar <data_dir>/recordings-index/<name>.json
(0600, the directory 0700: out of the recordings directory, which holds
recordings only), written the first time the recording is looked at after it
closed (the agent does so as files rotate, and at start for files a crash left
without one) and rebuilt when the file's size or modification time are not
the ones it was made for (a torn end trimmed, a file replaced).  Retention
deletes recordings in C; a sidecar whose recording is gone is deleted at the
next pass, and a file that vanishes between the index and the read is skipped
by the reader.  The file being written is indexed when asked, never kept."""
import dataclasses
import json
import logging
import os
import pathlib
import threading
from typing import Optional

from agent.recordings import crypt, files, keys
from hwdrivers import CaptureError
from hwdrivers.extract import Mark, Source, index_file

log = logging.getLogger(__name__)

INDEX_DIR = "recordings-index"
VERSION = 1


@dataclasses.dataclass(frozen=True)
class Indexed:
    """One recording as the index knows it."""
    name: str
    path: pathlib.Path
    size: int
    encrypted: bool
    key_id: Optional[str]
    first_ns: Optional[int]      # None: no packet (or unreadable: see error)
    last_ns: Optional[int]
    packets: int
    complete: bool
    active: bool
    marks: tuple
    error: Optional[str] = None  # why it cannot be read (no key, damaged)

    def overlaps(self, since_ns: int, until_ns: int) -> bool:
        return self.first_ns is not None and self.first_ns <= until_ns and self.last_ns >= since_ns

    def summary(self) -> dict:
        return {"name": self.name, "first_ns": self.first_ns, "last_ns": self.last_ns, "packets": self.packets,
                "encrypted": self.encrypted, "active": self.active, "error": self.error}


class RecordingIndex:
    def __init__(self, directory, data_dir):
        self.dir = pathlib.Path(directory)
        self.data_dir = data_dir
        self._cache: dict = {}       # name -> ((size, mtime_ns), Indexed)
        self._lock = threading.Lock()

    @property
    def sidecars(self) -> pathlib.Path:
        return pathlib.Path(self.data_dir) / INDEX_DIR

    def _key(self, key_id: str) -> Optional[bytes]:
        """Looked up each time: a key taken out of the key directory no longer reads its files."""
        return keys.find(self.data_dir, key_id)

    def refresh(self, active: Optional[str] = None, walk_active: bool = True) -> list:
        """Every recording, oldest first, with its index (sidecars written for
        closed files that lack one, removed for files that are gone); the file
        being written is walked too unless walk_active is False (then it has no time span)."""
        with self._lock:
            out = []
            names = set()
            for p in _recordings(self.dir):
                names.add(p.name)
                try:
                    if p.name == active and not walk_active:
                        out.append(_without_index(p, 0, p.name.endswith(crypt.SUFFIX), None, True, None))
                        continue
                    out.append(self._one(p, p.name == active))
                except FileNotFoundError:  # retention took it meanwhile
                    continue
            self._prune(names)
            return out

    def _one(self, path: pathlib.Path, active: bool) -> Indexed:
        st = path.stat()
        stamp = (st.st_size, st.st_mtime_ns)
        cached = self._cache.get(path.name)
        if cached and cached[0] == stamp and not active:
            return cached[1]
        ix = None if active else self._load(path, stamp)
        if ix is None:
            ix = self._build(path, st.st_size, active)
            if not active and ix.error is None:
                self._save(ix, stamp)
        if not active and ix.error is None:
            self._cache[path.name] = (stamp, ix)
        return ix

    def _build(self, path: pathlib.Path, size: int, active: bool) -> Indexed:
        encrypted = path.name.endswith(crypt.SUFFIX)
        key = key_id = None
        if encrypted:
            with open(path, "rb") as f:
                try:
                    key_id = crypt.read_header(f).key_id
                except crypt.FormatError as e:
                    return _without_index(path, size, True, None, active, e.message)
            key = self._key(key_id)
            if key is None:
                return _without_index(path, size, True, key_id, active, f"no key with id {key_id} in the key directory")
        try:
            fx = index_file(str(path), key)
        except CaptureError as e:
            return _without_index(path, size, encrypted, key_id, active, e.message)
        return Indexed(path.name, path, size, encrypted, key_id, fx.first_ns, fx.last_ns, fx.packets, fx.complete,
                       active, fx.marks)

    def _sidecar(self, name: str) -> pathlib.Path:
        return self.sidecars / (name + ".json")

    def _load(self, path: pathlib.Path, stamp: tuple) -> Optional[Indexed]:
        try:
            d = json.loads(self._sidecar(path.name).read_text())
        except (OSError, ValueError):
            return None
        if d.get("version") != VERSION or (d.get("size"), d.get("mtime_ns")) != stamp:
            return None
        try:
            return Indexed(path.name, path, d["size"], d["encrypted"], d["key_id"], d["first_ns"], d["last_ns"],
                           d["packets"], d["complete"], False, tuple(Mark(*m) for m in d["marks"]))
        except (KeyError, TypeError):
            return None

    def _save(self, ix: Indexed, stamp: tuple) -> None:
        d = {"version": VERSION, "name": ix.name, "size": stamp[0], "mtime_ns": stamp[1], "encrypted": ix.encrypted,
             "key_id": ix.key_id, "first_ns": ix.first_ns, "last_ns": ix.last_ns, "packets": ix.packets,
             "complete": ix.complete, "marks": [list(m) for m in ix.marks]}
        try:
            self.sidecars.mkdir(mode=0o700, exist_ok=True)
            final = self._sidecar(ix.name)
            tmp = final.with_name(final.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(d, f, separators=(",", ":"))
            os.replace(tmp, final)
        except OSError as e:  # the index is a cache: without it the file is walked again next time
            log.warning("cannot keep the index of %s: %s", ix.name, e)

    def _prune(self, names: set) -> None:
        d = self.sidecars
        if not d.is_dir():
            return
        for p in d.iterdir():
            stem = p.name[:-len(".json")] if p.name.endswith(".json") else None
            if stem is None or stem not in names:
                self._cache.pop(stem, None)
                try:
                    p.unlink()
                except OSError:
                    pass
        for name in [n for n in self._cache if n not in names]:
            del self._cache[name]

    def sources(self, indexed: list, since_ns: int, until_ns: int) -> list:
        """The files and ranges a window needs (never more), with the keys to read them."""
        out, found = [], {}
        for ix in indexed:
            if ix.error or not ix.overlaps(since_ns, until_ns):
                continue
            marks = [m for m in ix.marks if m.packets and m.first_ns <= until_ns and m.last_ns >= since_ns]
            key = None
            if ix.encrypted:
                if ix.key_id not in found:
                    found[ix.key_id] = self._key(ix.key_id)
                key = found[ix.key_id]
                if key is None:
                    continue
            if marks:
                out.append(Source(str(ix.path), marks, key))
        return out


def _recordings(directory: pathlib.Path) -> list:
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if files.is_recording(p.name) and p.is_file() and not p.is_symlink()]
    return sorted(found, key=files.creation_order)


def _without_index(path, size, encrypted, key_id, active, why) -> Indexed:
    """A recording with no time span: unreadable (why), or the file being written when not walked."""
    return Indexed(path.name, path, size, encrypted, key_id, None, None, 0, False, active, (), why)
