"""Log retention: stamped rotation, files and index rows removed by age and
by size, the files being written kept, everything private."""
import json
import os
import stat
import time

from agent.logs.index import Index, query
from agent.logs.indexer import LogFiles
from agent.outputs.evefile import EveFile, prune


def _record(i: int) -> dict:
    return {"ts": 1000.0 + i, "uid": f"C{i:017x}", "id.orig_h": "10.0.0.1", "id.orig_p": 1000 + i,
            "id.resp_h": "10.0.0.2", "id.resp_p": 53, "proto": "udp", "query": f"name{i}.example", "answers": []}


def test_stamped_rotation_and_prune_by_size_and_age(tmp_path):
    f = EveFile(tmp_path / "logs" / "dns.log", 2000, 0, stamped=True)
    for i in range(200):
        f.write(_record(i))
    f.flush()
    rotated = f.rotated()
    assert len(rotated) >= 5 and f.rotations == len(rotated)
    assert rotated == sorted(rotated, key=lambda p: p.name)          # stamped names sort by time
    lines = [json.loads(x) for p in [*rotated, f.path] for x in p.read_text().splitlines()]
    assert [r["id.orig_p"] for r in lines] == [1000 + i for i in range(200)]   # nothing lost, in order
    assert stat.S_IMODE((tmp_path / "logs").stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in [*rotated, f.path])
    # age: the two oldest are an hour old
    for p in rotated[:2]:
        os.utime(p, (time.time() - 3600, time.time() - 3600))
    assert prune(rotated, 0, 1800) == rotated[:2]
    left = f.rotated()
    # size: the oldest go until the rest fit
    budget = sum(p.stat().st_size for p in left[-2:])
    removed = prune(left, budget, 0)
    assert removed == left[:-2] and f.rotated() == left[-2:]
    f.close()


def test_log_files_keep_the_files_being_written(tmp_path):
    files = LogFiles(tmp_path, ["dns", "conn"], 1000)
    for i in range(100):
        files.write("dns", [json.dumps(_record(i))])
        files.write("conn", [json.dumps(_record(i))])
    files.flush()
    assert files.prune(1, 0) > 0
    assert all(not f.rotated() and f.path.exists() for f in files.files.values())
    files.close()


def test_index_prunes_by_write_time_and_size(tmp_path):
    idx = Index(tmp_path / "index.db")
    assert stat.S_IMODE((tmp_path / "index.db").stat().st_mode) == 0o600
    now = time.time()
    for i in range(3000):
        rec = _record(i)
        idx.add("dns", rec, json.dumps(rec), now - 7200 if i < 1000 else now)
    idx.commit()
    assert idx.count() == 3000
    assert idx.prune(0, 3600, now) == 1000                       # written two hours ago: gone
    got = [json.loads(x) for x in query(tmp_path / "index.db", "dns", limit=10)]
    assert got[0]["id.orig_p"] == 2000 and len(got) == 10          # oldest left first
    size = idx.size()
    idx.prune(size // 2, 0, now)
    assert idx.size() <= size // 2 and 0 < idx.count() < 2000
    # the newest survive a size cut
    assert list(query(tmp_path / "index.db", "dns", since=1000.0 + 2999))
    idx.close()


def test_lines_written_at_once_rotate_after_them(tmp_path):
    """The log indexer writes a buffer's lines at once: a file rotates after a batch that passes its size, and
    every line is kept, in order, each file ending with a whole line."""
    f = EveFile(tmp_path / "logs" / "dns.log", 3000, 0, stamped=True)
    lines = [json.dumps(_record(i)) for i in range(300)]
    for at in range(0, 300, 40):
        f.write_lines(lines[at:at + 40])
    f.close()
    files = [*f.rotated(), f.path]
    assert len(files) > 3 and f.written == 300
    assert [x for p in files for x in p.read_text().splitlines()] == lines
    assert all(p.read_text()[-1:] in ("", "\n") and p.stat().st_size < 3000 + 40 * 200 for p in files)
