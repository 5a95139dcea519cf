"""SQLite store in WAL mode: versioned schema, one writer thread, many readers.

Writes are submitted to the writer thread as functions of a connection and
return a Future; readers borrow one of a few read connections (WAL lets them
read while the writer writes).  A pool, not one connection per thread: each
connection keeps its own page and statement caches (a few MB once warm), and
the API alone has 64 worker threads, so per-thread connections made the
agent's memory grow with every thread that ever queried."""
import concurrent.futures
import logging
import os
import queue
import sqlite3
import threading
import time
from typing import Callable

from agent.store.schema import MIGRATIONS

log = logging.getLogger(__name__)


class StoreError(Exception):
    pass


READERS = 4      # read connections at most; a query waits for a free one beyond that


class Store:
    def __init__(self, path: str, queue_size: int = 10000):
        self.path = str(path)
        self._readers: queue.LifoQueue = queue.LifoQueue()   # idle read connections, the warmest on top
        self._reader_slots = threading.BoundedSemaphore(READERS)
        self._queue: queue.Queue = queue.Queue(queue_size)
        self._stop = threading.Event()
        self.dropped = 0
        self.written = 0
        conn = self._connect()
        conn.execute("PRAGMA journal_mode=WAL")
        for suffix in ("", "-wal", "-shm"):   # keys' hashes, threats, logs: 0600 whatever the umask was
            if os.path.exists(self.path + suffix):
                os.chmod(self.path + suffix, 0o600)
        self._migrate(conn)
        self._writer_conn = conn
        self._thread = threading.Thread(target=self._writer, name="store-writer", daemon=True)
        self.heartbeat = 0.0

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        current = row[0] if row else 0
        for version, sql in sorted(MIGRATIONS):  # in version order, however the list was merged
            if version <= current:
                continue
            log.info("store: migrating schema to version %d", version)
            conn.execute("BEGIN")
            try:
                for statement in [s for s in sql.split(";") if s.strip()]:
                    conn.execute(statement)
                conn.execute("DELETE FROM schema_version")
                conn.execute("INSERT INTO schema_version VALUES (?)", (version,))
                conn.execute("COMMIT")
            except Exception:
                conn.execute("ROLLBACK")
                raise
        self.version = max([current] + [v for v, _ in MIGRATIONS])

    def start(self) -> None:
        self._thread.start()

    def _writer(self) -> None:
        while not self._stop.is_set() or not self._queue.empty():
            self.heartbeat = time.monotonic()
            try:
                fn, fut = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            batch = [(fn, fut)]
            while len(batch) < 500:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            batch = [item for item in batch if item[0] is not None]     # close()'s wake-up
            if batch:
                self._run_batch(batch)

    def _run_batch(self, batch: list) -> None:
        conn = self._writer_conn
        conn.execute("BEGIN")
        results = []
        for fn, fut in batch:
            try:
                conn.execute("SAVEPOINT one")
                results.append((fut, fn(conn), None))
                conn.execute("RELEASE one")
            except Exception as e:  # one bad write must not lose the others
                conn.execute("ROLLBACK TO one")
                conn.execute("RELEASE one")
                results.append((fut, None, e))
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            log.error("store: commit failed: %s", e)
            conn.execute("ROLLBACK")
            results = [(fut, None, e) for fut, _, _ in results]
        for fut, value, err in results:
            self.written += 1
            if fut is None:
                if err is not None:
                    log.warning("store: write failed: %s", err)
                continue
            if err is None:
                fut.set_result(value)
            else:
                fut.set_exception(StoreError(str(err)))

    def submit(self, fn: Callable[[sqlite3.Connection], object]) -> concurrent.futures.Future:
        """Run fn(conn) in the writer thread, in a transaction; the Future has its result."""
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put((fn, fut), timeout=5)
        return fut

    def submit_nowait(self, fn: Callable[[sqlite3.Connection], object]) -> bool:
        """Fire and forget; a full queue counts a drop instead of waiting."""
        try:
            self._queue.put_nowait((fn, None))
            return True
        except queue.Full:
            self.dropped += 1
            return False

    def write(self, fn: Callable[[sqlite3.Connection], object], timeout: float = 10):
        """Submit and wait; before start() (or after close) runs inline."""
        if not self._thread.is_alive():
            conn = self._writer_conn
            conn.execute("BEGIN")
            try:
                value = fn(conn)
                conn.execute("COMMIT")
                return value
            except Exception as e:
                conn.execute("ROLLBACK")
                raise StoreError(str(e)) from e
        return self.submit(fn).result(timeout)

    def query(self, sql: str, args: tuple = ()) -> list:
        """Rows as dicts, read on a pooled connection (at most READERS at once)."""
        return self.read(lambda run: run(sql, args))

    def read(self, fn: Callable) -> object:
        """fn(run) where run(sql, args) gives rows as dicts, every read in one snapshot (a read
        transaction): figures put together from several queries agree with each other."""
        if not self._reader_slots.acquire(timeout=30):
            raise StoreError("no read connection free for 30 s")
        try:
            try:
                conn = self._readers.get_nowait()
            except queue.Empty:
                conn = self._connect()
            try:
                conn.execute("BEGIN")
                try:
                    return fn(lambda sql, args=(): [dict(r) for r in conn.execute(sql, args).fetchall()])
                finally:
                    conn.execute("COMMIT")
            finally:
                self._readers.put(conn)
        except sqlite3.Error as e:
            raise StoreError(str(e)) from e
        finally:
            self._reader_slots.release()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        self._stop.set()
        try:
            self._queue.put_nowait((None, None))     # the writer ends now, not at its next poll
        except queue.Full:
            pass                                    # it is busy with the queue, and ends after it
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._writer_conn.close()
        while not self._readers.empty():
            self._readers.get_nowait().close()
