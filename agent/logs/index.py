"""The log index: one SQLite row per record (its time, type, the two hosts,
community id, the text `q` searches, and the JSON line itself), so that a
query over a day of logs reads a few index pages instead of every file.

One writer (the log service) adds rows in batches; readers (the API) open
their own read-only connection (WAL: they never wait on the writer).
Retention removes rows by the time they were written, not the packet time,
so a replayed old capture is kept as long as a live one."""
import ipaddress
import pathlib
import sqlite3
import time
from typing import Iterator, Optional

from agent.errors import AgentError, validation
from agent.logs.records import TYPES, hosts, key_text

SCHEMA = """
CREATE TABLE IF NOT EXISTS logs (id INTEGER PRIMARY KEY, added REAL NOT NULL, ts REAL NOT NULL, type TEXT NOT NULL,
                                 orig_h TEXT, resp_h TEXT, cid TEXT, key TEXT NOT NULL, line TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS logs_type_ts ON logs (type, ts);
CREATE INDEX IF NOT EXISTS logs_orig ON logs (type, orig_h, ts);
CREATE INDEX IF NOT EXISTS logs_resp ON logs (type, resp_h, ts);
CREATE INDEX IF NOT EXISTS logs_cid ON logs (cid);
"""
BATCH = 2000                      # rows inserted in one transaction at most
CACHE_KB = 8 << 10                # SQLite page cache of the writer (8 MB: 64 MB was no faster, and grew the agent)
PRUNE_SHARE = 0.1                 # over the size budget: the oldest tenth goes


class Index:
    def __init__(self, path: pathlib.Path):
        self.path = path
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(f"PRAGMA cache_size=-{CACHE_KB}")
        self.db.executescript(SCHEMA)
        self.rows: list = []
        self.added = self.pruned = 0

    def add(self, kind: str, rec: dict, line: str, now: float) -> None:
        orig, resp = hosts(rec)
        self.rows.append((now, rec.get("ts", now), kind, orig, resp, rec.get("community_id"), key_text(kind, rec),
                          line))
        if len(self.rows) >= BATCH:
            self.commit()

    def commit(self) -> None:
        if not self.rows:
            return
        rows, self.rows = self.rows, []
        with self.db:
            self.db.executemany("INSERT INTO logs (added, ts, type, orig_h, resp_h, cid, key, line)"
                                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        self.added += len(rows)

    def size(self) -> int:
        """Bytes in use (pages not on the free list, and the write-ahead log)."""
        pages = self.db.execute("PRAGMA page_count").fetchone()[0] - self.db.execute("PRAGMA freelist_count").fetchone()[0]
        wal = self.path.with_name(self.path.name + "-wal")
        return pages * self.db.execute("PRAGMA page_size").fetchone()[0] + (wal.stat().st_size if wal.exists() else 0)

    def prune(self, keep_bytes: int, keep_s: float, now: Optional[float] = None) -> int:
        """Rows written longer ago than keep_s go; then, while over keep_bytes, the oldest tenth."""
        now = now or time.time()
        self.commit()
        n = 0
        if keep_s:
            with self.db:
                # rows are added in time order: the old ones are those before the first row still young
                first = self.db.execute("SELECT id FROM logs WHERE added >= ? ORDER BY id LIMIT 1",
                                        (now - keep_s,)).fetchone()
                n += self.db.execute("DELETE FROM logs WHERE id < ?", (first[0] if first else 1 << 62,)).rowcount
        while keep_bytes and self.size() > keep_bytes:
            total = self.db.execute("SELECT COUNT(*) FROM logs").fetchone()[0]
            if not total:
                break
            with self.db:
                n += self.db.execute("DELETE FROM logs WHERE id IN (SELECT id FROM logs ORDER BY id LIMIT ?)",
                                     (max(1, int(total * PRUNE_SHARE)),)).rowcount
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.pruned += n
        return n

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM logs").fetchone()[0]

    def close(self) -> None:
        self.commit()
        self.db.close()


def query(path: pathlib.Path, kind: str, since: float = 0.0, until: float = 0.0, host: str = "", q: str = "",
          community_id: str = "", limit: int = 100) -> Iterator[str]:
    """The JSON lines of a type's records in [since, until) (packet time), oldest first, at most limit;
    host: either end is this address; q: a substring of the record's names (query, host, SNI, ...).
    The query runs now (its errors are raised here); the lines are read as the iterator is."""
    if not path.exists():
        return iter(())
    like = "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    # the host as a union of two index lookups (an OR of the two columns made SQLite scan the type's rows)
    terms = (("ts >= ?", [since]), ("ts < ?", [until]),
             ("id IN (SELECT id FROM logs WHERE type = ? AND orig_h = ? UNION ALL "
              "SELECT id FROM logs WHERE type = ? AND resp_h = ?)", [kind, host, kind, host] if host else [None]),
             ("cid = ?", [community_id]), ("key LIKE ? ESCAPE '\\'", [like if q else None]))
    sql, args = ["SELECT line FROM logs WHERE type = ?"], [kind]
    for clause, values in terms:
        if values[0]:
            sql.append("AND " + clause)
            args += values
    sql.append("ORDER BY ts LIMIT ?")
    args.append(limit)
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    try:
        cursor = db.execute(" ".join(sql), args)
    except sqlite3.Error:
        db.close()
        raise
    return _lines(db, cursor)


def search(path: pathlib.Path, kind: str, since: float = 0.0, until: float = 0.0, host: str = "", q: str = "",
           community_id: str = "", limit: int = 100) -> Iterator[str]:
    """query() as a person asks it (GET /v1/logs/{type}, the consoles): an unknown type is NOT_FOUND, a
    host that is no IP address or a window that ends before it starts is refused."""
    if kind not in TYPES:
        raise AgentError("NOT_FOUND", f"no log type {kind!r}", {"id": kind, "choices": list(TYPES)})
    if host:
        try:
            host = str(ipaddress.ip_address(host))
        except ValueError:
            raise validation(f"host must be an IP address, not {host!r}", field="host") from None
    if until and since and until <= since:
        raise validation("until must be after since", field="until")
    return query(path, kind, since, until, host, q, community_id, limit)


def _lines(db, cursor) -> Iterator[str]:
    try:
        for (line,) in cursor:
            yield line
    finally:
        db.close()
