"""The log index: the JSON lines in blocks of up to 512 lines of one type,
each block one row with what a search needs to skip it (its packet-time
range, the addresses, community ids and `q` text of its lines), so that a
day of logs is a few thousand rows: writing costs one row per block instead
of one per record with four B-tree indexes (what made the writer slow), and
a query reads the blocks that may hold a match, then keeps the lines that do
(oldest first, streamed).

One writer (the log service) adds lines; the block being filled is written
(inserted, then updated in place) at every commit, so a search sees records
within a tick.  Readers (the API) open their own read-only connection (WAL:
they never wait on the writer).  Retention removes blocks by the time they
were written, not the packet time, so a replayed old capture is kept as long
as a live one; a block spans at most BLOCK_SPAN_S of writing."""
import dataclasses
import heapq
import ipaddress
import json
import pathlib
import sqlite3
import time
from typing import Iterator, Optional

from agent.errors import AgentError, validation
from agent.logs import TYPES
from agent.logs.keys import hosts, key_text

SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks (id INTEGER PRIMARY KEY, added REAL NOT NULL, type TEXT NOT NULL,
                                   ts_min REAL NOT NULL, ts_max REAL NOT NULL, n INTEGER NOT NULL,
                                   hosts TEXT NOT NULL, cids TEXT NOT NULL, keys TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS block_lines (id INTEGER PRIMARY KEY, lines TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS blocks_type_ts ON blocks (type, ts_min);
"""
BLOCK_LINES = 512                 # lines in a block at most
BLOCK_SPAN_S = 60.0               # write time one block spans at most (retention's granularity)
CACHE_KB = 4 << 10                # SQLite page cache of the writer (4 MB: blocks are appended, not scattered;
                                  # 64 MB was no faster with a row per record, and grew the agent)
MIGRATE_BATCH = 10000             # old rows made blocks at once (then removed)
PRUNE_SHARE = 0.1                 # over the size budget: the oldest tenth goes
_ODD_LOWER = ("\\u0130", "\\u212a")   # escapes whose lower() is ASCII: a block with one is parsed, not scanned


def _sql(text: str) -> str:
    """text as SQLite can take it: a lone surrogate (a line's "\\ud800", read back) as U+FFFD.  One such key
    stopped every commit of the indexer, which was started again and again, losing its lines each time."""
    try:
        text.encode()
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


@dataclasses.dataclass(slots=True)
class Block:
    """The block of one type being filled."""
    first_added: float
    id: Optional[int] = None      # its row once written
    added: float = 0.0
    ts_min: float = float("inf")
    ts_max: float = float("-inf")
    lines: list = dataclasses.field(default_factory=list)
    keys: list = dataclasses.field(default_factory=list)
    hosts: set = dataclasses.field(default_factory=set)
    cids: set = dataclasses.field(default_factory=set)
    written: int = 0              # lines in its row


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
        self.open: dict = {}          # type -> Block being filled
        self.added = self.pruned = 0
        self._migrate()

    def _migrate(self) -> None:
        """An index of the one-row-per-record form (before the blocks) becomes blocks, each record with the time
        it was written (retention goes on from there), so an update forgets no record; then its table goes.  A
        batch's rows go once its blocks are written, so a start stopped halfway repeats no more than a batch."""
        if not self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'logs'").fetchone():
            return
        last = 0
        while rows := self.db.execute("SELECT id, added, type, line FROM logs WHERE id > ? ORDER BY id LIMIT ?",
                                      (last, MIGRATE_BATCH)).fetchall():
            for last, added, kind, line in rows:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue          # a line the old writer could not have written: nothing to search in it
                self.add(kind, rec, line, added)
            self.commit()
            self.db.execute("DELETE FROM logs WHERE id <= ?", (last,))   # an agent stopped here goes on from here
        self.db.execute("DROP TABLE logs")     # its pages go to the free list, which new blocks take first

    def add(self, kind: str, rec: dict, line: str, now: float) -> None:
        self.add_many(kind, [rec], [line], now)

    def add_many(self, kind: str, recs: list, lines: list, now: float) -> None:
        """Records of one type and their lines."""
        self.add_keyed(kind, lines, [r.get("ts", 0.0) for r in recs], [key_text(kind, r) for r in recs],
                       [h for r in recs for h in hosts(r)], [r.get("community_id") for r in recs], now)

    def add_keyed(self, kind: str, lines: list, ts: list, keys: list, hosts: list, cids: list, now: float) -> None:
        """Lines of one type with what a search needs of each (hwdrivers.logs.IndexKeys reads it in C): packet
        times, search texts, two addresses a line and community IDs (falsy: none), a block's worth at a time
        (a loop per line cost the log indexer more than parsing the lines)."""
        done = 0
        while done < len(lines):
            block = self.open.get(kind)
            if block is not None and (len(block.lines) >= BLOCK_LINES or now - block.first_added > BLOCK_SPAN_S):
                self._write(kind, block)
                block = None
            if block is None:
                block = self.open[kind] = Block(now)
            n = min(len(lines) - done, BLOCK_LINES - len(block.lines))
            some = ts[done:done + n]
            block.ts_min, block.ts_max = min(block.ts_min, *some), max(block.ts_max, *some)
            block.added = now
            block.lines.extend(lines[done:done + n])
            block.keys.extend(keys[done:done + n])
            block.hosts.update(filter(None, hosts[2 * done:2 * (done + n)]))
            block.cids.update(filter(None, cids[done:done + n]))
            done += n

    def _write(self, kind: str, block: Block) -> None:
        """The block's row as it is now (inserted the first time, then replaced); a full one is closed."""
        if len(block.lines) == block.written:
            if len(block.lines) >= BLOCK_LINES:
                del self.open[kind]
            return
        meta = (block.added, kind, block.ts_min, block.ts_max, len(block.lines),
                _sql(" " + " ".join(block.hosts) + " "), _sql(" " + " ".join(block.cids) + " "),
                _sql("\n".join(block.keys)))
        with self.db:
            if block.id is None:
                block.id = self.db.execute("INSERT INTO blocks (added, type, ts_min, ts_max, n, hosts, cids, keys)"
                                           " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", meta).lastrowid
                self.db.execute("INSERT INTO block_lines (id, lines) VALUES (?, ?)", (block.id, "\n".join(block.lines)))
            else:
                self.db.execute("UPDATE blocks SET added = ?, type = ?, ts_min = ?, ts_max = ?, n = ?, hosts = ?,"
                                " cids = ?, keys = ? WHERE id = ?", (*meta, block.id))
                self.db.execute("UPDATE block_lines SET lines = ? WHERE id = ?", ("\n".join(block.lines), block.id))
        self.added += len(block.lines) - block.written
        block.written = len(block.lines)
        if len(block.lines) >= BLOCK_LINES or block is not self.open.get(kind):
            self.open.pop(kind, None)

    def commit(self) -> None:
        """Every block being filled is written (a search sees its lines); the full ones are closed."""
        for kind, block in list(self.open.items()):
            self._write(kind, block)

    def size(self) -> int:
        """Bytes in use (pages not on the free list, and the write-ahead log)."""
        pages = (self.db.execute("PRAGMA page_count").fetchone()[0]
                 - self.db.execute("PRAGMA freelist_count").fetchone()[0])
        wal = self.path.with_name(self.path.name + "-wal")
        return pages * self.db.execute("PRAGMA page_size").fetchone()[0] + (wal.stat().st_size if wal.exists() else 0)

    def prune(self, keep_bytes: int, keep_s: float, now: Optional[float] = None) -> int:
        """Blocks last written longer ago than keep_s go; then, while over keep_bytes, the oldest tenth.
        The records removed."""
        now = now or time.time()
        self.commit()
        self.open.clear()             # a block being filled may go: the next line starts a new one
        n = 0
        if keep_s:
            n += self._delete("WHERE added < ?", (now - keep_s,))
        while keep_bytes and self.size() > keep_bytes:
            total = self.db.execute("SELECT COUNT(*) FROM blocks").fetchone()[0]
            if not total:
                break
            n += self._delete("WHERE id IN (SELECT id FROM blocks ORDER BY id LIMIT ?)",
                              (max(1, int(total * PRUNE_SHARE)),))
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.pruned += n
        return n

    def _delete(self, where: str, args: tuple) -> int:
        with self.db:
            ids = [i for (i,) in self.db.execute(f"SELECT id FROM blocks {where}", args)]
            if not ids:
                return 0
            marks = ",".join("?" * len(ids))
            n = self.db.execute(f"SELECT COALESCE(SUM(n), 0) FROM blocks WHERE id IN ({marks})", ids).fetchone()[0]
            self.db.execute(f"DELETE FROM blocks WHERE id IN ({marks})", ids)
            self.db.execute(f"DELETE FROM block_lines WHERE id IN ({marks})", ids)
        return n

    def count(self) -> int:
        return self.db.execute("SELECT COALESCE(SUM(n), 0) FROM blocks").fetchone()[0]

    def close(self) -> None:
        self.commit()
        self.db.close()


def query(path: pathlib.Path, kind: str, since: float = 0.0, until: float = 0.0, host: str = "", q: str = "",
          community_id: str = "", limit: int = 100) -> Iterator[str]:
    """The JSON lines of a type's records in [since, until) (packet time), oldest first (ties in the order
    written), at most limit; host: either end is this address; q: a substring of the record's names (query,
    host, SNI, ...).  The query runs now (its errors are raised here); the lines are read as the iterator is."""
    if not path.exists():
        return iter(())
    q = q.lower()
    terms = (("ts_max >= ?", since), ("ts_min < ?", until), ("instr(hosts, ?)", host and f" {host} "),
             ("instr(cids, ?)", community_id and f" {community_id} "), ("instr(keys, ?)", q))
    sql = ["SELECT b.id, b.ts_min, l.lines FROM blocks b JOIN block_lines l ON l.id = b.id WHERE b.type = ?"]
    args = [kind]
    for clause, value in terms:
        if value:
            sql.append("AND " + clause)
            args.append(value)
    sql.append("ORDER BY b.ts_min, b.id")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    try:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'blocks'").fetchone():
            db.close()                # the log indexer (its own process) is making the index right now
            return iter(())
        cursor = db.execute(" ".join(sql), args)
    except sqlite3.Error:
        db.close()
        raise
    match = _matcher(kind, since, until, host, q, community_id)
    return _lines(db, cursor, match, (host, q, community_id), limit)


def _matcher(kind: str, since: float, until: float, host: str, q: str, community_id: str):
    """rec -> whether it answers the query (what the blocks' columns could only narrow down)."""
    def match(rec: dict) -> bool:
        ts = rec.get("ts", 0.0)
        return not ((since and ts < since) or (until and ts >= until) or (host and host not in hosts(rec))
                    or (community_id and rec.get("community_id") != community_id)
                    or (q and q not in key_text(kind, rec)))
    return match


def _scan(lines: str, host: str, q: str, community_id: str) -> list:
    """The lines of a block that may match, by their text (every one is parsed after)."""
    if q and q.isascii() and q.isprintable() and '"' not in q and "\\" not in q \
            and lines.isascii() and ("\\" not in lines or not any(e in lines for e in _ODD_LOWER)):
        # a name's ASCII shows as itself in the JSON text (only the quote and backslash are escaped), unless
        # the block has a character whose lower case is ASCII only once decoded: the lines around each place
        # q is found
        low, out, at = lines.lower(), [], 0
        while (at := low.find(q, at)) >= 0:
            start, end = low.rfind("\n", 0, at) + 1, low.find("\n", at)
            end = len(low) if end < 0 else end
            out.append(lines[start:end])
            at = end
    else:
        out = lines.split("\n")
    if host:
        out = [x for x in out if f'"{host}"' in x]
    if community_id:
        out = [x for x in out if f'"{community_id}"' in x]
    return out


def _lines(db, cursor, match, text: tuple, limit: int) -> Iterator[str]:
    """The blocks come by their earliest packet time: a line is handed out once no block still to come can
    hold an earlier one."""
    heap: list = []
    n = 0
    try:
        if limit <= 0:
            return
        for block_id, ts_min, lines in cursor:
            while heap and heap[0][0] < ts_min:
                yield heapq.heappop(heap)[3]
                n += 1
                if n >= limit:
                    return
            for i, line in enumerate(_scan(lines, *text)):
                rec = json.loads(line)
                if match(rec):
                    heapq.heappush(heap, (rec.get("ts", 0.0), block_id, i, line))
        while heap and n < limit:
            yield heapq.heappop(heap)[3]
            n += 1
    finally:
        db.close()


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
