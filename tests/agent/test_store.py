"""The store: WAL, versioned migrations, one writer thread, bounded queue."""
import os
import sqlite3
import threading
import time

import pytest

from agent import store as store_mod
from agent.store import Store, StoreError


def test_wal_and_schema_version(tmp_path):
    s = Store(tmp_path / "a.db")
    s.start()
    try:
        assert s.query("PRAGMA journal_mode")[0]["journal_mode"] == "wal"
        assert s.version == max(v for v, _ in store_mod.schema.MIGRATIONS)
        assert {r["name"] for r in s.query("SELECT name FROM sqlite_master WHERE type='table'")} >= {
            "api_keys", "capture_runs", "stats_samples", "logs", "schema_version"}
    finally:
        s.close()


def test_migrations_run_once_and_a_failed_one_rolls_back(tmp_path, monkeypatch):
    path = tmp_path / "m.db"
    Store(path).close()
    extra = store_mod.schema.MIGRATIONS + [(99, "CREATE TABLE extra (x INTEGER); INSERT INTO extra VALUES (1)")]
    monkeypatch.setattr(store_mod, "MIGRATIONS", extra)
    s = Store(path)
    assert s.version == 99 and s.query("SELECT x FROM extra") == [{"x": 1}]
    s.close()
    s = Store(path)  # already at 99: nothing runs again
    assert s.query("SELECT COUNT(*) AS n FROM extra")[0]["n"] == 1
    s.close()
    broken = extra + [(100, "CREATE TABLE half (x INTEGER); INSERT INTO nosuchtable VALUES (1)")]
    monkeypatch.setattr(store_mod, "MIGRATIONS", broken)
    with pytest.raises(sqlite3.Error):
        Store(path)
    db = sqlite3.connect(path)
    assert db.execute("SELECT version FROM schema_version").fetchone()[0] == 99
    assert not db.execute("SELECT name FROM sqlite_master WHERE name='half'").fetchall()


def test_one_writer_many_readers_and_a_bad_write_loses_nothing_else(tmp_path):
    s = Store(tmp_path / "w.db")
    s.start()
    try:
        futures = [s.submit(lambda c, i=i: c.execute("INSERT INTO logs (ts, level, logger, message) VALUES (?,?,?,?)",
                                                       (i, "info", "t", f"m{i}"))) for i in range(200)]
        bad = s.submit(lambda c: c.execute("INSERT INTO nosuch VALUES (1)"))
        for f in futures:
            f.result(10)
        with pytest.raises(StoreError):
            bad.result(10)
        counts = []
        readers = [threading.Thread(target=lambda: counts.append(s.query("SELECT COUNT(*) AS n FROM logs")[0]["n"]))
                   for _ in range(8)]
        for t in readers:
            t.start()
        for t in readers:
            t.join()
        assert counts == [200] * 8
    finally:
        s.close()


def test_fire_and_forget_writes_count_drops_when_the_queue_is_full(tmp_path):
    s = Store(tmp_path / "q.db", queue_size=3)  # not started: nothing drains the queue
    assert all(s.submit_nowait(lambda c: None) for _ in range(3))
    assert s.submit_nowait(lambda c: None) is False and s.dropped == 1


def _open_db_fds(path) -> int:
    fds = os.listdir("/proc/self/fd")
    names = []
    for fd in fds:
        try:
            names.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return sum(n == str(path) for n in names)


def test_reads_share_a_bounded_pool_of_connections(tmp_path):
    """64 threads reading at once (the API's workers) open at most READERS
    read connections, not one each: each keeps its own caches."""
    path = tmp_path / "p.db"
    s = Store(path)
    s.start()
    try:
        before = _open_db_fds(path)
        barrier, done = threading.Barrier(64), threading.Event()
        answers = []

        def reader():
            barrier.wait()
            for _ in range(20):
                answers.append(s.query("SELECT COUNT(*) AS n FROM sqlite_master")[0]["n"] > 0)
            done.wait(60)        # alive while the descriptors are counted
        threads = [threading.Thread(target=reader) for _ in range(64)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(answers) < 64 * 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        opened = _open_db_fds(path) - before
        done.set()
        for t in threads:
            t.join(60)
        assert len(answers) == 64 * 20 and all(answers)
        assert 1 <= opened <= store_mod.READERS, opened
    finally:
        s.close()
    assert _open_db_fds(path) == 0
