"""The log indexer: a child process of the agent that writes the protocol log
lines to one rotated file per type and to the index (agent.logs.index), and
keeps both within retention.

Why a process: reading a line back for the index (json.loads, its hosts and
names) costs Python some 10 µs a line; as a thread of the agent, at 15,000
DNS lines a second (the mix at 300,000 packets/s) it held the agent's GIL
for long stretches, and the REST API waited behind it (issue 22: p99 65 ms
with the logs on, 8 ms off).  The log service hands over whole buffers of
'\\n'-ended JSON lines (as the C logger made them) and a tick; a sender thread
writes them to the child, so the service never waits: past QUEUE_BYTES
waiting, a buffer is dropped and its lines counted (/v1/health losses).  A
child that dies is started again; the lines it held are lost (its restarts
are counted as a loss too)."""
import collections
import dataclasses
import json
import logging
import os
import pathlib
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Optional

import orjson

from agent.logs.index import Index
from agent.logs.keys import KEY_FIELDS, hosts as record_hosts, key_text
from agent.outputs.evefile import EveFile, prune
from hwdrivers.logs import IndexKeys

log = logging.getLogger(__name__)

INDEX_FILE = "index.db"
PRUNE_EVERY_S = 60.0
COMMIT_EVERY_S = 1.0              # the index's blocks being filled are rewritten at most this often (ticks are
                                  # 4 a second: a type with few lines would rewrite its open block each time)
PIECE_BYTES = 64 << 10            # lines parsed at once
QUEUE_BYTES = 32 << 20            # lines waiting for the indexer at most (about two seconds of the mix at 300 k pps)
RESTART_S = (0.5, 10.0)           # wait before starting a dead indexer again: doubled per restart, up to the second
STOP_S = 10.0
NICE = 10                         # the indexer yields the cores to the capture, the detectors and the API when
                                  # they are short (its queue takes the wait, and drops are counted)


class LogFiles:
    """One stamped, rotated JSON-lines file per log type, and retention over all of them."""

    def __init__(self, root, types, rotate_bytes: int):
        self.root = root
        self.files = {t: EveFile(root / f"{t}.log", rotate_bytes, 0, stamped=True) for t in types}

    def write(self, kind: str, lines: list) -> None:
        self.files[kind].write_lines(lines)

    def flush(self) -> None:
        for f in self.files.values():
            f.flush()

    def size(self) -> int:
        return sum(p.stat().st_size for f in self.files.values() for p in [f.path, *f.rotated()] if p.exists())

    def prune(self, keep_bytes: int, keep_s: float) -> int:
        """Rotated files past the budget go (the files being written stay)."""
        rotated = [p for f in self.files.values() for p in f.rotated()]
        live = sum(f.path.stat().st_size for f in self.files.values() if f.path.exists())
        return len(prune(rotated, max(1, keep_bytes - live) if keep_bytes else 0, keep_s))

    def close(self) -> None:
        for f in self.files.values():
            f.close()


def parse(text: list) -> list:
    """The records of JSON lines (ValueError when one is not JSON).  orjson reads the C logger's lines in half
    json's time (3.6 against 7.3 µs a dns line) into the same objects (but an integer past 64 bits, which no
    record holds, as a float); what it refuses and json reads (NaN, lone surrogates) goes to json."""
    joined = "[" + ",".join(text) + "]"
    try:
        return orjson.loads(joined)
    except orjson.JSONDecodeError:
        return json.loads(joined)


def pieces(buf: bytes, size: int = PIECE_BYTES):
    """The '\\n'-ended lines of buf as lists of str, about size bytes of them at a time (a parse of megabytes at
    once holds the GIL for tens of milliseconds)."""
    for _, text in spans(buf, size):
        yield text


def spans(buf: bytes, size: int = PIECE_BYTES):
    """pieces() with each piece's bytes: (bytes, [str])."""
    start = 0
    while start < len(buf):
        end = buf.find(b"\n", start + size - 1)
        end = len(buf) if end < 0 else end + 1
        raw = buf[start:end]
        yield raw, raw.decode().splitlines()
        start = end


@dataclasses.dataclass(frozen=True)
class Settings:
    """What the indexer needs of [logs] (sent to it first)."""
    root: str
    types: tuple
    rotate_bytes: int
    keep_mb: int
    keep_s: int


@dataclasses.dataclass(frozen=True)
class Tally:
    """The indexer's counters, sent back after each tick."""
    indexed: int
    index_pruned: int
    files_pruned: int
    unreadable: int               # lines that were no JSON (none are, unless a bug made them)


# ---- the indexer (its own process: python -m agent.logs.indexer CONN_FD) ------------------------

class Writer:
    """The files and the index the lines go to."""

    def __init__(self, s: Settings):
        root = pathlib.Path(s.root)
        self.settings = s
        self.files = LogFiles(root, s.types, s.rotate_bytes)
        self.index = Index(root / INDEX_FILE)
        self.files_pruned = self.unreadable = 0
        self._keys: dict = {}                 # type -> its IndexKeys
        self.dirty = False                    # lines not yet committed to the index
        self._next_prune = 0.0
        self._committed = float("-inf")       # monotonic time of the last commit

    def lines(self, kind: str, buf: bytes, now: float) -> None:
        """Lines to the files and the index: what the index keeps of them read in C (IndexKeys), the lines C
        leaves to Python (none of the loggers' own) parsed here."""
        keys = self._keys.get(kind) or self._keys.setdefault(kind, IndexKeys(KEY_FIELDS.get(kind, ())))
        for raw, text in spans(bytes(buf)):
            got = keys.read(raw, len(text))
            if got is not None and len(got[0]) == len(text):
                self._keyed(kind, text, got, now)
                continue
            try:
                recs = parse(text)
                if len(recs) != len(text) or not all(isinstance(r, dict) for r in recs):
                    raise ValueError("a line that is no record")     # ('1', '{..},{..}'): each line alone
            except ValueError:                # not ours to write: the records that read, the others counted
                n = len(text)
                recs, text = _each(text)
                self.unreadable += n - len(text)
            self.files.write(kind, text)
            self.index.add_many(kind, recs, text, now)
            self.dirty = True

    def _keyed(self, kind: str, text: list, got: tuple, now: float) -> None:
        ts, python, keys, hosts, cids = got
        gone = []
        for i in python:
            rec = _one(text[i])
            if rec is None:
                gone.append(i)
                continue
            ts[i], keys[i], cids[i] = rec.get("ts", 0.0), key_text(kind, rec), rec.get("community_id")
            hosts[2 * i:2 * i + 2] = record_hosts(rec)
        if gone:                              # not ours to write: counted
            self.unreadable += len(gone)
            for i in reversed(gone):
                del text[i], ts[i], keys[i], cids[i], hosts[2 * i:2 * i + 2]
        self.files.write(kind, text)
        self.index.add_keyed(kind, text, ts, keys, hosts, cids, now)
        self.dirty = True

    def tick(self, now: float, commit: bool = False) -> Tally:
        """The files flushed; the index committed when a second has passed since the last commit (or commit)."""
        self.files.flush()
        if commit or time.monotonic() - self._committed >= COMMIT_EVERY_S:
            self.commit()
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_EVERY_S
            self.retain()
        return Tally(self.index.added, self.index.pruned, self.files_pruned, self.unreadable)

    def commit(self) -> None:
        self.index.commit()
        self.dirty = False
        self._committed = time.monotonic()

    def retain(self) -> None:
        """Retention: the index takes at most half the size budget, the files the rest."""
        keep = self.settings.keep_mb << 20
        self.index.prune(keep // 2, self.settings.keep_s)
        self.files_pruned += self.files.prune(keep - self.index.size() if keep else 0, self.settings.keep_s)

    def close(self) -> None:
        self.files.close()
        self.index.close()


def _one(line: str):
    """The record of one line, None when it is none (no JSON, or no JSON object: the index would fail on it,
    and the indexer restarted again and again, losing the lines it held)."""
    try:
        rec = orjson.loads(line)
    except orjson.JSONDecodeError:
        try:
            rec = json.loads(line)
        except ValueError:
            return None
    return rec if isinstance(rec, dict) else None


def _each(text: list) -> tuple:
    """([record], [its line]) of the lines that parse."""
    recs, good = [], []
    for line in text:
        if (rec := _one(line)) is not None:
            recs.append(rec)
            good.append(line)
    return recs, good


def work(conn_fd: int) -> int:
    """Write what the agent hands over until it says stop or goes away: (type, lines), or (None, b"") to flush
    and answer with a Tally.  Lines left uncommitted are committed within COMMIT_EVERY_S of quiet."""
    os.nice(NICE)
    conn = Connection(conn_fd)
    writer = Writer(conn.recv())
    try:
        while True:
            if not conn.poll(COMMIT_EVERY_S):
                if writer.dirty:
                    conn.send(writer.tick(time.time(), commit=True))
                continue
            msg = conn.recv()
            if msg == "stop":
                conn.send(writer.tick(time.time(), commit=True))
                return 0
            kind, buf = msg
            if kind is None:
                conn.send(writer.tick(time.time()))
            else:
                writer.lines(kind, buf, time.time())
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return 0                              # the agent is gone
    finally:
        writer.close()


# ---- the agent's side --------------------------------------------------------------------------

class Indexer:
    """The indexer process as the log service sees it: give() and tick() never wait.  Started with the first
    lines or tick handed over (the log service ticks it when a capture starts: a Python started during the
    traffic cost the REST API a 200 ms stall on the loaded machine)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.proc: Optional[subprocess.Popen] = None
        self.conn: Optional[Connection] = None
        self.tally = Tally(0, 0, 0, 0)       # the running indexer's
        self._before = self.tally             # those of the indexers before it
        self.dropped: collections.Counter = collections.Counter()     # lines not handed over, by type
        self.restarts = 0
        self.error: Optional[str] = None      # what stopped the sender, if anything did
        self.queued = 0                       # bytes waiting
        self._queue: collections.deque = collections.deque()
        self._cv = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="logs-indexer", daemon=True)
        self._thread.start()

    def give(self, kind: str, buf: bytes) -> bool:
        """Lines for the indexer; False when they are dropped (too much waiting: counted)."""
        with self._cv:
            if self.error or self.queued + len(buf) > QUEUE_BYTES:
                self.dropped[kind] += buf.count(b"\n")
                return False
            self._queue.append((kind, buf))
            self.queued += len(buf)
            self._cv.notify()
        return True

    def tick(self) -> None:
        """The files flushed, the index committed (at most once a second), the counters sent back."""
        with self._cv:
            self._queue.append((None, b""))
            self._cv.notify()

    def _spawn(self) -> None:
        mine, theirs = socket.socketpair()
        with theirs:
            self.proc = subprocess.Popen([sys.executable, "-m", "agent.logs.indexer", str(theirs.fileno())],
                                         pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                                         start_new_session=True)   # Ctrl-C is the agent's, which stops it in order
        self.conn = Connection(mine.detach())
        self.conn.send(self.settings)
        log.info("log indexer %d started", self.proc.pid)

    def _run(self) -> None:
        try:
            self._send_all()
        except Exception as e:     # said in health (and what is given from now on is dropped and counted)
            self.error = f"{type(e).__name__}: {e}"
            log.exception("log indexer: the sender failed")

    def _send_all(self) -> None:
        """The sender: the queue to the indexer, in order; a dead indexer started again."""
        while True:
            with self._cv:
                if not self._queue and not self._stop.is_set():
                    self._cv.wait(0.2)        # then the indexer's tallies are read, and whether it is alive
                msg = self._queue.popleft() if self._queue else None
                if msg is not None:
                    self.queued -= len(msg[1])
            if msg is None and self._stop.is_set():
                return self._end()
            if msg is not None:
                if self.proc is None:         # started on first use: an agent that logs nothing runs none
                    self._spawn()
                self._send(msg)
            if self.proc is not None:
                self._read_tallies()

    def _send(self, msg: tuple) -> None:
        try:
            self.conn.send(msg)
            return
        except OSError:
            pass                              # the indexer went away: its lines are lost, it is started again
        if msg[0] is not None:
            with self._cv:
                self.dropped[msg[0]] += msg[1].count(b"\n")
        self._restart()

    def _read_tallies(self) -> None:
        try:
            while self.conn.poll(0):
                self.tally = self.conn.recv()
        except (EOFError, OSError):
            self._restart()
        if self.proc.poll() is not None:
            self._restart()

    def _restart(self) -> None:
        if self.conn.closed:                  # stopping: none was started again
            return
        code = self.proc.wait()
        self.conn.close()
        self.restarts += 1
        self._before, self.tally = self.counts(), Tally(0, 0, 0, 0)
        log.error("log indexer %d exited with %s; starting another", self.proc.pid, code)
        if not self._stop.wait(min(RESTART_S[0] * 2 ** (self.restarts - 1), RESTART_S[1])):
            self._spawn()

    def _end(self) -> None:
        if self.proc is None:
            return
        try:
            self.conn.send("stop")
            if self.conn.poll(STOP_S):
                self.tally = self.conn.recv()
            self.proc.wait(STOP_S)
        except (OSError, EOFError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self.conn.close()

    def stop(self) -> None:
        """What was given is written (the indexer waits for it), then the indexer ends."""
        self._stop.set()
        with self._cv:
            self._cv.notify()
        self._thread.join(STOP_S * 3)

    def counts(self) -> Tally:
        """Lines indexed, pruned from the index, and files pruned since the agent started."""
        a, b = self._before, self.tally
        return Tally(*(x + y for x, y in zip(dataclasses.astuple(a), dataclasses.astuple(b))))

    def losses(self) -> dict:
        with self._cv:
            out = {f"indexer:{kind}": n for kind, n in self.dropped.items() if n}
        if self.restarts:
            out["indexer_restarts"] = self.restarts
        if self.error:
            out["indexer_failed"] = 1
        return out

    def detail(self) -> dict:
        with self._cv:
            dropped = dict(self.dropped)
        return {"pid": self.proc.pid if self.proc else None, "restarts": self.restarts, "queued_bytes": self.queued,
                "dropped": dropped, "error": self.error}


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="capbox log indexer: %(levelname)s %(message)s")
    from agent.logs.indexer import work as _work     # its records unpickle as agent.logs.indexer's, not __main__'s
    sys.exit(_work(int(sys.argv[1])))
