"""Recording and encryption at rest, the agent's side: what to record (its
rotation, retention and filter) and with which key, applied to the running
capture at once and to every capture started later.  The C core writes the
files; this keeps the settings, trims the torn end a crash may have left,
and lists, hands out and decrypts the recordings."""
import logging
import pathlib
import threading
from typing import Iterator, Optional

from agent.config import Config, ConfigError
from agent.errors import AgentError, not_found, validation
from agent.recordings import crypt, files, keys
from agent.recordings import packets as pcap
from agent.recordings.index import RecordingIndex
from agent.store import settings
from agent.store.settings import Settings
from hwdrivers import CaptureError, ErrorCode, RecordConfig, Session, check_filter

log = logging.getLogger(__name__)

SETTINGS = ("prefix", "rotate_mb", "rotate_s", "keep_mb", "keep_s", "bpf", "bpf_outer", "snaplen")
READ_BLOCK = 1 << 20
INDEX_EVERY_S = 2.0      # how soon a closed recording is indexed


class RecordingManager:
    def __init__(self, cfg: Config, saved: Settings):
        self.cfg = cfg
        self.dir: pathlib.Path = cfg.recordings_dir
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        keys.ensure_key_dir(cfg.data_dir)
        r = cfg.recording
        self.saved = saved
        kept = saved.get(settings.RECORDING, {})
        self.settings = {k: kept.get("settings", {}).get(k, getattr(r, k)) for k in SETTINGS}
        self.enabled = kept.get("enabled", r.enabled)
        self.key: Optional[bytes] = None
        self.key_file: Optional[str] = None
        self.key_lost: Optional[str] = None   # encryption was on, its key file is gone: record nothing
        self.last = None          # RecordStats of the recording that ended last
        self.error: Optional[str] = None
        self.repaired: list = []
        self.index = RecordingIndex(self.dir, cfg.data_dir)
        self._attached: Optional[Session] = None
        self._reindex = threading.Event()
        self._indexer: Optional[threading.Thread] = None
        self._lock = threading.RLock()
        encryption = saved.get(settings.ENCRYPTION)
        if encryption is not None:       # set over REST: wins over the file
            if encryption.get("key_file"):
                try:
                    self._load_key(encryption["key_file"])
                except AgentError as e:   # fail closed: never plaintext where encryption was asked for
                    self.key_lost = encryption["key_file"]
                    log.error("recording encryption key %s cannot be loaded (%s): nothing is recorded until "
                              "encryption is set again", self.key_lost, e.message)
        elif r.key_file:
            try:
                self._load_key(r.key_file)
            except AgentError as e:  # a bad key file in the configuration stops the start
                raise ConfigError("recording.key_file", e.message) from None

    def _keep(self) -> None:
        self.saved.put(settings.RECORDING, {"enabled": self.enabled, "settings": self.settings})

    # ---- settings ---------------------------------------------------------------

    def _record_config(self, source: str) -> RecordConfig:
        s, r = self.settings, self.cfg.recording
        return RecordConfig(directory=str(self.dir), prefix=s["prefix"], bpf=s["bpf"], bpf_outer=s["bpf_outer"],
                            if_name=source,
                            snaplen=s["snaplen"], rotate_bytes=s["rotate_mb"] << 20, rotate_s=s["rotate_s"],
                            keep_bytes=s["keep_mb"] << 20, keep_s=s["keep_s"], buffer_kb=r.buffer_kb,
                            flush_ms=r.flush_ms)

    def _start_on(self, session: Session, source: str) -> None:
        if self.key_lost:
            raise CaptureError(ErrorCode.ARG, f"the encryption key {self.key_lost} is gone: set encryption again "
                                              "(POST /v1/capture/encryption) before recording")
        cut = files.repair_newest(self.dir, self.settings["prefix"])
        if cut:
            log.warning("recording %s ended torn (an earlier crash): %d bytes trimmed", *cut)
            self.repaired.append({"name": cut[0], "bytes_trimmed": cut[1]})
        self._attached = session
        if self._indexer is None:
            self._indexer = threading.Thread(target=self._index_files, name="recording-index", daemon=True)
            self._indexer.start()
        self._reindex.set()   # files found without an index (a crash, an older version) get one, off this path
        session.start_recording(self._record_config(source), self.key)
        self.error = None
        log.info("recording to %s (%s)", self.dir, "encrypted" if self.key else "plain pcapng")

    def start(self, session: Optional[Session], source: str, **settings) -> dict:
        with self._lock:
            if settings.get("snaplen") and settings["snaplen"] < 64:
                raise validation("snaplen must be 0 (whole packets) or at least 64", field="snaplen")
            if settings.get("bpf"):
                try:
                    check_filter(settings["bpf"], session.linktype if session is not None else 1)
                except CaptureError as e:
                    raise validation(e.message, field="bpf", capture_error=e.code.name) from None
            new = {**self.settings, **{k: v for k, v in settings.items() if v is not None}}
            old, self.settings = self.settings, new
            if session is not None:
                if session.recording().active:
                    self.last = session.stop_recording()  # new settings: a new file
                try:
                    self._start_on(session, source)
                except CaptureError as e:
                    self.settings = old
                    if self.enabled:  # back to what ran before
                        try:
                            self._start_on(session, source)
                        except CaptureError:
                            pass
                    raise _recording_error(e) from None
            self.enabled = True
            self._keep()
            return self.status(session)

    def stop(self, session: Optional[Session]) -> dict:
        with self._lock:
            self.enabled = False
            self._keep()
            if session is not None and session.recording().active:
                self.last = session.stop_recording()
                log.info("recording stopped: %d packets in %d files", self.last.packets, self.last.files)
            return self.status(session)

    def _load_key(self, key_file: str) -> None:
        try:
            path = keys.resolve(self.cfg.data_dir, key_file)
            key = keys.load(path)
        except keys.KeyFileError as e:
            if e.code == keys.OUTSIDE:
                raise AgentError("FORBIDDEN", e.message, {"field": "key_file",
                                                          "key_dir": str(keys.key_dir(self.cfg.data_dir))}) from None
            raise validation(e.message, field="key_file", reason=e.code.lower()) from None
        self.key, self.key_file = key, path.name

    def set_encryption(self, session: Optional[Session], enable: bool, cipher_suite: str, key_file: str) -> dict:
        with self._lock:
            if enable:
                if not key_file:
                    raise validation("key_file is required to enable encryption", field="key_file",
                                     key_dir=str(keys.key_dir(self.cfg.data_dir)))
                self._load_key(key_file)
            else:
                self.key, self.key_file = None, None
            self.key_lost = None
            self.saved.put(settings.ENCRYPTION, {"key_file": self.key_file})
            if session is not None and session.recording().active:
                session.set_recording_key(self.key)  # key rotation: the current file ends here
            log.info("recording encryption %s", f"on (key id {crypt.key_id(self.key)})" if self.key else "off")
            return self.encryption()

    # ---- captures come and go ---------------------------------------------------

    def attach(self, session: Session, source: str) -> None:
        with self._lock:
            if not self.enabled:
                return
            try:
                self._start_on(session, source)
            except (CaptureError, OSError) as e:
                self.error = getattr(e, "message", None) or str(e)
                log.error("this capture is not recorded: %s", self.error)

    def detach(self, session: Session) -> None:
        with self._lock:
            if session.recording().active:
                self.last = session.stop_recording()
            self._attached = None
            self._reindex.set()

    def _index_files(self) -> None:
        """Index each recording as it closes (the recorder counts them), so that a query finds them indexed."""
        closed = None
        while True:
            asked = self._reindex.wait(INDEX_EVERY_S)
            self._reindex.clear()
            session = self._attached
            try:
                st = session.recording() if session is not None else None
                if asked or st is not None and st.files_closed != closed:
                    closed = st.files_closed if st is not None else None
                    self.index.refresh(pathlib.Path(st.current).name if st is not None and st.current else None)
            except Exception:  # a session closing under it, a file system error: never the end of the agent
                log.exception("indexing the recordings failed; the next query indexes them")

    # ---- what the faces read ----------------------------------------------------

    def encryption(self) -> dict:
        return {"enabled": self.key is not None, "cipher_suite": "AES-256-GCM" if self.key else None,
                "key_file": self.key_file, "key_id": crypt.key_id(self.key) if self.key else None,
                "cipher_suites": list(keys.CIPHER_SUITES), "key_dir": str(keys.key_dir(self.cfg.data_dir)),
                "key_lost": self.key_lost,
                "applies_to": "the running capture (a new file) and the next"}

    def status(self, session: Optional[Session]) -> dict:
        with self._lock:
            st = session.recording() if session is not None else None
            active = bool(st and st.active)
            stats = st if active else self.last
            return {"enabled": self.enabled, "recording": active, "directory": str(self.dir),
                    "settings": dict(self.settings),
                    "current_file": pathlib.Path(st.current).name if active and st.current else None,
                    "stats": stats.as_dict() if stats else None, "encryption": self.encryption(),
                    "error": self.error, "repaired": list(self.repaired)}

    def current_path(self, session: Optional[Session]) -> Optional[str]:
        st = session.recording() if session is not None else None
        return st.current if st and st.active and st.current else None

    def list(self, session: Optional[Session]) -> dict:
        current = self.current_path(session)
        items = files.list_dir(self.dir, pathlib.Path(current).name if current else None)
        return {"directory": str(self.dir), "count": len(items), "total_bytes": sum(i["size"] for i in items),
                "recordings": items}

    def packets(self, session: Optional[Session], window: pcap.Window, full_key: bool) -> tuple:
        """(headers, body iterator): the pcapng of the kept packets in a window that match its filter."""
        current = self.current_path(session)
        sources, read = pcap.plan(self.index, pathlib.Path(current).name if current else None, window)
        if not full_key and any(s.key is not None for s in sources):
            raise AgentError("FORBIDDEN", "these packets are in encrypted recordings: only a full (sk) key may "
                             "read them decrypted", {"required": "sk"})
        return ({"Content-Type": pcap.MEDIA_TYPE, "Content-Disposition": 'attachment; filename="capbox.pcapng"',
                 "X-Capbox-Since-Ns": str(window.since_ns), "X-Capbox-Until-Ns": str(window.until_ns),
                 "X-Capbox-Filter": window.bpf, "X-Capbox-Files": str(read["files"]),
                 "X-Capbox-Ranges": str(read["ranges"])}, pcap.stream(sources, window))

    def kept(self, session: Optional[Session], window: pcap.Window) -> dict:
        """What the recordings still hold of a window: the files, or that it aged out."""
        current = self.current_path(session)
        # asked with every threat's detail: the file being written is not walked for it, it holds what
        # came after the newest closed file
        indexed = self.index.refresh(pathlib.Path(current).name if current else None, walk_active=False)
        hit = [ix for ix in indexed if ix.overlaps(window.since_ns, window.until_ns)]
        newest = max((ix.last_ns for ix in indexed if ix.last_ns is not None), default=0)
        hit += [ix for ix in indexed if ix.active and window.until_ns >= newest]
        oldest = min((ix.first_ns for ix in indexed if ix.first_ns is not None), default=None)
        state = "kept" if hit else "aged_out" if oldest is not None and window.until_ns < oldest else "not_recorded"
        return {"state": state, "window": window.as_dict(), "files": [ix.name for ix in hit],
                "oldest_kept_ns": oldest}

    def _path(self, name: str) -> pathlib.Path:
        p = files.path_of(self.dir, name)
        if p is None:
            raise not_found("recording", name)
        return p

    def delete(self, session: Optional[Session], name: str) -> dict:
        p = self._path(name)
        current = self.current_path(session)
        if current and pathlib.Path(current).name == name:
            raise AgentError("CONFLICT", "this recording is being written; stop the recording or rotate first",
                             {"name": name})
        p.unlink()
        return {"deleted": True, "name": name}

    def download(self, name: str, decrypt: bool, full_key: bool) -> tuple:
        """(headers, body iterator) for a recording, as stored or decrypted."""
        p = self._path(name)
        encrypted = crypt.is_encrypted(p)
        if not decrypt or not encrypted:
            size = p.stat().st_size
            media = "application/octet-stream" if encrypted else "application/x-pcapng"
            return ({"Content-Type": media, "Content-Length": str(size),
                     "Content-Disposition": f'attachment; filename="{name}"'}, _read(p, size))
        if not full_key:
            raise AgentError("FORBIDDEN", "only a full (sk) key may download a recording decrypted",
                             {"required": "sk"})
        with open(p, "rb") as f:
            header = crypt.read_header(f)
        key = self.key if self.key and crypt.key_id(self.key) == header.key_id else keys.find(
            self.cfg.data_dir, header.key_id)
        if key is None:
            raise AgentError("CONFLICT", f"no key with id {header.key_id} in the key directory",
                             {"key_id": header.key_id, "key_dir": str(keys.key_dir(self.cfg.data_dir))})
        # authenticate the whole file before the first byte goes out: a damaged
        # file is refused with its position instead of cut off mid-download
        result = crypt.verify(p, key)
        complete = True
        if result.error is not None:
            if result.error.code != crypt.INCOMPLETE:
                e = result.error
                raise AgentError("INTEGRITY_ERROR", f"{name}: {e.message}",
                                 {"name": name, "reason": e.code.lower(), "chunk": e.chunk,
                                  "offset": list(e.offset) if e.offset else None})
            complete = False
        plain_name = name[:-len(crypt.SUFFIX)]
        return ({"Content-Type": "application/x-pcapng", "Content-Length": str(result.bytes),
                 "Content-Disposition": f'attachment; filename="{plain_name}"',
                 "X-Recording-Complete": "true" if complete else "false"},
                _decrypted(p, key, result.chunks))


def _read(p: pathlib.Path, size: int) -> Iterator[bytes]:
    with open(p, "rb") as f:
        left = size
        while left > 0:
            block = f.read(min(READ_BLOCK, left))
            if not block:
                return
            left -= len(block)
            yield block


def _decrypted(p: pathlib.Path, key: bytes, n: int) -> Iterator[bytes]:
    with open(p, "rb") as f:
        it = crypt.chunks(f, key)
        for _ in range(n):
            yield next(it)


def _recording_error(e: CaptureError) -> AgentError:
    if e.code == ErrorCode.FILTER:
        return validation(e.message, field="bpf", capture_error=e.code.name)
    if e.code in (ErrorCode.ARG, ErrorCode.STATE):
        return validation(e.message, capture_error=e.code.name)
    return AgentError("CAPTURE_ERROR", e.message, {"capture_error": getattr(e.code, "name", str(e.code))})
