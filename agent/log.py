"""Logging, configured once: stderr, a ring of recent records for /v1/logs,
and the store for the record that outlives a restart."""
import collections
import logging
import threading
import time
from typing import Optional

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class RecentLogs(logging.Handler):
    """The last `size` records in memory; INFO and above also to the store."""

    def __init__(self, size: int = 2000):
        super().__init__()
        self.records: collections.deque = collections.deque(maxlen=size)
        self.store = None
        self._lock2 = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            entry = {"ts": record.created, "level": record.levelname.lower(), "logger": record.name,
                     "message": record.getMessage()}
        except Exception:  # a bad format string must not take logging down
            return
        with self._lock2:
            self.records.append(entry)
        store = self.store
        if store is not None and record.levelno >= logging.INFO:
            store.submit_nowait(lambda conn: conn.execute(
                "INSERT INTO logs (ts, level, logger, message) VALUES (?, ?, ?, ?)",
                (entry["ts"], entry["level"], entry["logger"], entry["message"])))

    def _matching(self, level: Optional[str], component: Optional[str]) -> list:
        floor = LEVELS.get(level, 0) if level else 0
        with self._lock2:
            items = list(self.records)
        return [e for e in items if LEVELS.get(e["level"], 0) >= floor
                and (not component or component in e["logger"].split("."))]

    def recent(self, limit: int = 100, level: Optional[str] = None, component: Optional[str] = None) -> list:
        """Newest first."""
        return self._matching(level, component)[-limit:][::-1]

    def total(self, level: Optional[str] = None, component: Optional[str] = None) -> int:
        return len(self._matching(level, component))

    def page(self, limit: int, level: str = "", kind: str = "app") -> dict:
        """GET /v1/logs and the consoles: the newest `limit` records of a level and up, of one
        component (kind) or all ("app")."""
        component = None if kind in ("", "app") else kind
        items = self.recent(limit, level or None, component)
        return {"type": kind, "limit": limit, "total": self.total(level or None, component),
                "returned": len(items), "count": len(items), "logs": items}


recent = RecentLogs()


def setup(level: str = "info", stderr: bool = True) -> None:
    """stderr=False when the console owns the terminal (the log is still kept and stored)."""
    root = logging.getLogger()
    root.setLevel(LEVELS.get(level, logging.INFO))
    if not any(isinstance(h, RecentLogs) for h in root.handlers):
        root.addHandler(recent)
    if stderr and not any(type(h) is logging.StreamHandler for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    logging.Formatter.converter = time.gmtime
    for noisy in ("cheroot", "cheroot.server"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
