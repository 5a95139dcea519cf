"""What the log index keeps of a line, read in C (hwdrivers.logs.IndexKeys),
equals what Python reads from the parsed record (agent.logs.records: "ts",
hosts(), community_id, key_text()) on every line C answers: the C and Python
loggers' lines of the shared captures (all answered in C) and lines made to
be awkward (escapes, non-ASCII, nested values, numbers where names go,
repeated keys, broken JSON), whose lines C cannot read exactly are left to
Python; and the indexer's blocks are the same either way."""
import json
import random
import sqlite3

import pytest

from agent.logs import indexer as ix
from agent.logs.index import BLOCK_LINES, query
from agent.logs.keys import KEY_FIELDS, hosts, key_text
from hwdrivers import CaptureError
from hwdrivers.logs import IndexKeys
from tests.conftest import ALL_PCAPS

TYPES = ("dns", "conn", "http", "tls", "arp", "ndp", "dhcp")


_record = ix._one               # a line's record as Python reads it (orjson, then json), None when no JSON


def _check(kind: str, lines: list) -> int:
    """Every line C answers equals Python's reading; the lines C answered."""
    buf = ("\n".join(lines) + "\n").encode()
    got = IndexKeys(KEY_FIELDS.get(kind, ())).read(buf, len(lines))
    assert got is not None
    ts, python, keys, hs, cids = got
    assert len(ts) == len(keys) == len(cids) == len(lines) == len(hs) // 2
    left = set(python)
    for i, line in enumerate(lines):
        if i in left:
            continue
        rec = _record(line)
        assert isinstance(rec, dict), line
        want_hosts = list(hosts(rec))
        assert all(h is None or isinstance(h, str) for h in want_hosts), line
        assert ts[i] == rec.get("ts", 0.0), line
        assert keys[i] == key_text(kind, rec), line
        assert hs[2 * i:2 * i + 2] == [h or "" for h in want_hosts], line
        assert cids[i] == (rec.get("community_id") or ""), line
    return len(lines) - len(left)


def test_every_line_of_the_captures_is_read_in_c_as_python_reads_it():
    from agent.logs.offline import log_text
    lines = {t: [] for t in TYPES}
    for path in ALL_PCAPS:
        try:
            log_text(str(path), TYPES, lambda k, b: lines[k].extend(bytes(b).decode().splitlines()))
        except CaptureError:    # a capture offline logs refuse is not this test's
            continue
    assert sum(map(len, lines.values())) > 1000 and all(lines[t] for t in ("dns", "conn", "http", "tls", "arp"))
    for kind, some in lines.items():
        assert _check(kind, some) == len(some), kind


AWKWARD = ["Caf\u00e9.example", "\u0130stanbul", "\u212aelvin", "a\\b", 'q"uote', "tab\there", "new\nline",
           "cr\rhere", "NUL\x00", "", "MiXeD.Example", "\ud800lone", "\u2028sep", "x" * 300]


def _awkward_record(rng: random.Random, kind: str) -> dict:
    pick = lambda: rng.choice(AWKWARD + ["plain.example", "10.0.0.1", "2001:db8::1"])   # noqa: E731
    value = lambda: rng.choice([pick(), pick(), None, 5, 1.5, True, [], [pick(), pick()], [pick(), 3],  # noqa: E731
                                [None], {"n": 1}, [[pick()]]])
    rec = {}
    if rng.random() < 0.9:
        rec["ts"] = rng.choice([1700000000.123456, 5, 0.1, -2.5e-07, 1e22, 12345678901234567, "x", None])
    for field in ("id.orig_h", "id.resp_h", "ip", "client_addr", "assigned_addr", "server_addr", "community_id",
                  *KEY_FIELDS.get(kind, ()), "other"):
        if rng.random() < 0.4:
            rec[field] = value() if rng.random() < 0.4 else pick()
    return rec


def _mangle(rng: random.Random, line: str) -> str:
    """The line as JSON allows it written otherwise, repeated keys, or broken."""
    k = rng.randrange(8)
    if k == 0 and len(line) > 2:
        at = rng.randrange(len(line))
        return line[:at] + rng.choice('{}[]",:\\ \t0e-.ntf\x01\x7f') + line[at + 1:]
    if k == 1:
        return line.replace(",", " , ").replace(":", "\t:")
    if k == 2 and line.endswith("}") and len(line) > 2:
        return line[:-1] + ',"query":"AGAIN.example","id.orig_h":"10.9.9.9"}'
    if k == 3:
        return line[:rng.randrange(len(line) + 1)]
    return line


@pytest.mark.parametrize("kind", TYPES + ("sip",))
def test_awkward_lines_are_read_in_c_exactly_or_left_to_python(kind):
    rng = random.Random(kind)
    lines = []
    for _ in range(3000):
        rec = _awkward_record(rng, kind)
        text = json.dumps(rec, separators=(",", ":"), ensure_ascii=rng.random() < 0.8)
        lines.append(_mangle(rng, text).replace("\n", " "))
    answered = _check(kind, [x for x in lines if "\r" not in x and "\u2028" not in x and x.isascii()])
    assert answered > 50             # C answers some of them (most are past what a logger writes)
    every = "\n".join(lines).encode("utf-8", "surrogatepass")
    assert IndexKeys(KEY_FIELDS.get(kind, ())).read(every, len(lines)) is None   # bytes past ASCII: all Python's


def test_a_line_break_splitlines_knows_leaves_the_whole_piece_to_python():
    keys = IndexKeys(KEY_FIELDS["dns"])
    for odd in (b"\r", b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e", b"\xc2\x85"):
        assert keys.read(b'{"ts":1,"query":"a"}\n{"ts":2' + odd + b',"query":"b"}\n', 3) is None
    assert keys.read(b'{"ts":1,"query":"A"}\n\n{"ts":2}', 3)[:3] == ([1.0, 0.0, 2.0], [1], ["a", "", ""])


def _indexable(rec) -> bool:
    """What the index takes without failing (as much in C as in Python): a record with a numeric time and
    addresses and a community ID that are text or nothing."""
    return isinstance(rec, dict) and isinstance(rec.get("ts", 0.0), (int, float)) \
        and all(not h or isinstance(h, str) for h in [*hosts(rec), rec.get("community_id")])


def _blocks(root) -> list:
    db = sqlite3.connect(root / ix.INDEX_FILE)
    try:
        return db.execute("SELECT b.type, ts_min, ts_max, n, hosts, cids, keys, lines FROM blocks b "
                          "JOIN block_lines l ON l.id = b.id ORDER BY b.id").fetchall()
    finally:
        db.close()


def test_the_indexers_blocks_are_those_python_made(tmp_path, monkeypatch):
    """Lines through the indexer's Writer with C reading them, and with Python parsing every one: the same
    blocks (times, hosts, community IDs, search text, lines) and the same lines counted unreadable."""
    rng = random.Random(7)
    bufs = []
    for i in range(6):
        kind = ("dns", "http", "dhcp")[i % 3]
        lines = [_mangle(rng, json.dumps(_awkward_record(rng, kind), separators=(",", ":"))).replace("\n", " ")
                 for _ in range(BLOCK_LINES + 100)]
        lines = [x for x in lines if _record(x) is None or _indexable(_record(x))]
        bufs.append((kind, ("\n".join(lines) + "\n").encode()))

    def write(root):
        w = ix.Writer(ix.Settings(str(root), ("dns", "http", "dhcp"), 1 << 30, 0, 0))
        for kind, buf in bufs:
            w.lines(kind, buf, 1000.0)
        w.tick(1000.0, commit=True)
        unreadable = w.unreadable
        w.close()
        return _blocks(root), unreadable

    in_c = write(tmp_path / "c")
    monkeypatch.setattr(IndexKeys, "read", lambda self, buf, lines: None)
    in_python = write(tmp_path / "python")
    assert in_c == in_python and in_c[1] > 0 and len(in_c[0]) >= 3


def test_packet_times_are_read_as_float_reads_them():
    """The times as the loggers write them (six decimals, repr) and numbers near the fast path's edges."""
    rng = random.Random(3)
    texts = [repr(round(rng.uniform(0, 2e9), 6)) for _ in range(20000)] + [repr(rng.uniform(-1e6, 1e6))
                                                                           for _ in range(5000)]
    texts += ["0", "-0", "-0.0", "9007199254740993", "9007199254740992.5", "0.1", "1e22", "1E-5", "123456789012345",
              "1234567890123456", "0.0000000000000000000001", "0.00000000000000000000001", "17e-1"]
    lines = [f'{{"ts":{t}}}' for t in texts]
    got = IndexKeys(()).read("\n".join(lines).encode(), len(lines))
    big = {i for i, t in enumerate(texts) if t.lstrip("-").isdigit() and abs(int(t)) > 2 ** 53}  # Python's: a
    assert set(got[1]) == big and len(big) == 1                                         # double may not hold them
    assert [x for i, x in enumerate(got[0]) if i not in big] == [json.loads(t) for i, t in enumerate(texts)
                                                                  if i not in big]


@pytest.mark.parametrize("in_c", [True, False])
def test_json_that_is_no_record_is_counted_not_fatal(tmp_path, monkeypatch, in_c):
    """A line that is JSON but no object (or two objects on one line) failed the index (the indexer died and
    was started again, losing what it held): it is counted unreadable, whether C or Python reads the piece."""
    if not in_c:
        monkeypatch.setattr(IndexKeys, "read", lambda self, buf, lines: None)
    w = ix.Writer(ix.Settings(str(tmp_path), ("dns",), 1 << 20, 0, 0))
    w.lines("dns", b'{"ts":1,"query":"a.example"}\n[1]\n5\n{"ts":2,"query":"b"},{"ts":3}\n"x"\nnull\n'
                   b'{"ts":4,"query":"c.example"}\n', 1000.0)
    assert w.tick(1000.0, commit=True).unreadable == 5
    w.close()
    assert [json.loads(x)["query"] for x in query(tmp_path / ix.INDEX_FILE, "dns")] == ["a.example", "c.example"]
