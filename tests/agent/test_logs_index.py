"""The block index of the protocol logs answers every query as a filter over
all the records would: the same lines, oldest first, ties in the order
written, cut at the limit; with blocks being filled and updated between
commits, packet times out of order, and names whose lower case is ASCII only
once decoded."""
import json
import random
import sqlite3

from agent.logs.index import BLOCK_LINES, Index, query
from agent.logs.keys import hosts, key_text

HOSTS = ["10.0.0.1", "10.0.0.2", "192.0.2.7", "2001:db8::5", "198.51.100.9"]
NAMES = ["www.example.com", "mail.example.org", "\u0130stanbul.example", "\u212aelvin.example", "caf\u00e9.example",
         "x\"quote\\.example", "tls.example.net"]


def _records(n: int, rng: random.Random) -> list:
    out = []
    for i in range(n):
        kind = rng.choice(("dns", "dns", "http", "conn"))
        orig, resp = rng.sample(HOSTS, 2)
        rec = {"ts": 1000.0 + i + rng.choice((0, 0, -30.5, 400.25, 0.5)), "uid": f"C{i:017x}", "id.orig_h": orig,
               "id.orig_p": 1024 + i, "id.resp_h": resp, "id.resp_p": 53, "proto": "udp",
               "community_id": f"1:{rng.randrange(40)}"}
        if kind == "dns":
            rec.update(query=rng.choice(NAMES), answers=[rng.choice(HOSTS)])
        elif kind == "http":
            rec.update(host=rng.choice(NAMES), uri=f"/p{i % 7}")
        out.append((kind, rec))
    return out


def _want(records, kind, since=0.0, until=0.0, host="", q="", community_id="", limit=100) -> list:
    got = [(rec["ts"], i, json.dumps(rec, separators=(",", ":"))) for i, (k, rec) in enumerate(records)
           if k == kind and not (since and rec["ts"] < since) and not (until and rec["ts"] >= until)
           and not (host and host not in hosts(rec)) and not (community_id and rec["community_id"] != community_id)
           and not (q and q.lower() not in key_text(kind, rec))]
    return [line for _, _, line in sorted(got)[:limit]]


def test_block_queries_equal_a_filter_over_every_record(tmp_path):
    rng = random.Random(22)
    records = _records(5000, rng)
    idx = Index(tmp_path / "index.db")
    for i, (kind, rec) in enumerate(records):
        idx.add(kind, rec, json.dumps(rec, separators=(",", ":")), 5000.0 + i / 100)
        if rng.random() < 0.01:
            idx.commit()                     # the blocks being filled are written, then updated in place
            assert list(query(tmp_path / "index.db", kind, limit=10 ** 6)) == _want(records[:i + 1], kind,
                                                                                     limit=10 ** 6)
    idx.commit()
    assert idx.count() == len(records) == idx.added
    rows = idx.db.execute("SELECT COUNT(*) FROM blocks").fetchone()[0]
    assert rows < 3 * len(records) / BLOCK_LINES + 60      # blocks, not records (and a few partial ones)
    cases = [dict(), dict(limit=7), dict(since=2000.0, until=2500.0), dict(host="2001:db8::5", limit=1000),
             dict(q="EXAMPLE.ORG"), dict(q="istanbul"), dict(q="\u0130stanbul", limit=1000), dict(q="k"),
             dict(q="kelvin", limit=1000), dict(q='x"quote\\'), dict(q="caf\u00e9"), dict(community_id="1:7"),
             dict(host="10.0.0.1", q="example", since=1500.0, limit=50), dict(until=1010.0), dict(q="nothing")]
    for case in cases:
        for kind in ("dns", "http", "conn"):
            assert list(query(tmp_path / "index.db", kind, **case)) == _want(records, kind, **case), (kind, case)
    idx.close()


def test_an_index_of_the_row_per_record_form_becomes_blocks_and_forgets_nothing(tmp_path, monkeypatch):
    """An update from the one-row-per-record index: every record is still found, with the time it was written
    (retention goes on from there), and the old table is gone."""
    import sqlite3
    path = tmp_path / "index.db"
    records = _records(1300, random.Random(7))
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE logs (id INTEGER PRIMARY KEY, added REAL NOT NULL, ts REAL NOT NULL,"
                     " type TEXT NOT NULL, orig_h TEXT, resp_h TEXT, cid TEXT, key TEXT NOT NULL, line TEXT NOT NULL);"
                     "CREATE INDEX logs_type_ts ON logs (type, ts);")
    db.executemany("INSERT INTO logs (added, ts, type, orig_h, resp_h, cid, key, line) VALUES (?,?,?,?,?,?,?,?)",
                   [(100.0 + i, rec["ts"], kind, *hosts(rec), rec["community_id"], key_text(kind, rec),
                     json.dumps(rec, separators=(",", ":"))) for i, (kind, rec) in enumerate(records)])
    db.commit()
    db.close()
    monkeypatch.setattr("agent.logs.index.MIGRATE_BATCH", 500)     # three batches
    index = Index(path)
    assert index.count() == len(records)
    assert not index.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'logs'").fetchone()
    for kind in ("dns", "http", "conn"):
        assert list(query(path, kind, limit=5000)) == _want(records, kind, limit=5000)
        assert list(query(path, kind, host="192.0.2.7", q="example")) == _want(records, kind, host="192.0.2.7",
                                                                               q="example")
    index.prune(0, 500.0, now=1000.0)   # written at 100 + i: those before 500 go, but a block's tail
    assert 900 <= index.count() <= 960    # (a block spans at most 60 s of writing)
    index.close()


def test_many_records_at_once_make_the_blocks_one_at_a_time_make(tmp_path):
    """add_many (the log indexer's: a buffer's records at once) cuts blocks where add would, at BLOCK_LINES
    lines of a type, and answers the same."""
    rng = random.Random(7)
    records = _records(3 * BLOCK_LINES + 100, rng)
    one, many = Index(tmp_path / "one.db"), Index(tmp_path / "many.db")
    for kind, rec in records:
        one.add(kind, rec, json.dumps(rec, separators=(",", ":")), 100.0)
    for kind in ("dns", "http", "conn"):
        mine = [rec for k, rec in records if k == kind]
        many.add_many(kind, mine[:50], [json.dumps(r, separators=(",", ":")) for r in mine[:50]], 100.0)
        many.add_many(kind, mine[50:], [json.dumps(r, separators=(",", ":")) for r in mine[50:]], 100.0)
    one.close(), many.close()
    rows = "SELECT type, n, ts_min, ts_max, hosts, cids, keys FROM blocks ORDER BY type, ts_min, n"
    a, b = (sorted(sqlite3.connect(tmp_path / f).execute(rows).fetchall()) for f in ("one.db", "many.db"))
    assert [r[:2] for r in a] == [r[:2] for r in b] and max(r[1] for r in a) == BLOCK_LINES
    assert [r[2:4] + (r[6],) for r in a] == [r[2:4] + (r[6],) for r in b]
    assert [(set(r[4].split()), set(r[5].split())) for r in a] == [(set(r[4].split()), set(r[5].split())) for r in b]
    for kind in ("dns", "http", "conn"):
        assert list(query(tmp_path / "many.db", kind, limit=10 ** 6)) == _want(records, kind, limit=10 ** 6)


def test_an_index_being_made_answers_nothing_yet_not_an_error(tmp_path):
    """The log indexer (its own process) makes the index while the REST API may already read it: a file with
    no tables yet (touched for its mode, then the schema) reads as no lines (a 500 in the schema test)."""
    path = tmp_path / "index.db"
    path.touch(mode=0o600)
    assert list(query(path, "dns")) == []
    ix = Index(path)
    ix.add("dns", {"ts": 1.0, "query": "a.example"}, '{"ts":1.0,"query":"a.example"}', 1.0)
    ix.commit()
    assert list(query(path, "dns")) == ['{"ts":1.0,"query":"a.example"}']
    ix.close()
