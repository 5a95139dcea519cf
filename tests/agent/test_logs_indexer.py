"""The log indexer process (agent.logs.indexer): the lines handed over reach
the files and the index; one that is killed is started again and the lines
after it are written; too much waiting drops whole buffers, counted; at
stop everything handed over is written."""
import json
import os
import signal
import stat

import pytest

from agent.logs import indexer as ix
from agent.logs.index import query
from tests.agent.conftest import wait_for


def _lines(first: int, n: int) -> bytes:
    return "".join(json.dumps({"ts": 1000.0 + i, "id.orig_h": "10.0.0.1", "id.resp_h": "10.0.0.2",
                               "query": f"name{i}.example", "answers": []}, separators=(",", ":")) + "\n"
                   for i in range(first, first + n)).encode()


def _searched(root, q: str = "") -> list:
    return [json.loads(x)["query"] for x in query(root / ix.INDEX_FILE, "dns", q=q, limit=100000)]


@pytest.fixture
def indexer(tmp_path):
    made = ix.Indexer(ix.Settings(str(tmp_path / "logs"), ("conn", "dns"), 1 << 20, 0, 0))
    yield made
    made.stop()


def test_lines_reach_files_and_index_in_a_process_of_their_own(indexer, tmp_path):
    root = tmp_path / "logs"
    assert indexer.proc is None                                # started with the first lines
    assert indexer.give("dns", _lines(0, 3000))
    indexer.tick()
    wait_for(lambda: indexer.counts().indexed == 3000, timeout=60)
    assert indexer.proc.pid != os.getpid() and indexer.proc.poll() is None
    assert _searched(root) == [f"name{i}.example" for i in range(3000)]
    assert _searched(root, "name2999.") == ["name2999.example"]
    assert len((root / "dns.log").read_text().splitlines()) == 3000
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in root.iterdir())
    assert indexer.losses() == {}


def test_a_killed_indexer_is_started_again(indexer, tmp_path):
    indexer.give("dns", _lines(0, 100))
    indexer.tick()
    wait_for(lambda: indexer.counts().indexed == 100, timeout=60)
    first = indexer.proc.pid
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: indexer.restarts == 1 and indexer.proc.pid != first, timeout=60)
    assert indexer.losses() == {"indexer_restarts": 1}
    indexer.give("dns", _lines(100, 100))
    indexer.tick()
    wait_for(lambda: indexer.counts().indexed == 200, timeout=60)      # counted over both indexers
    assert _searched(tmp_path / "logs") == [f"name{i}.example" for i in range(200)]


def test_too_much_waiting_is_dropped_and_counted(indexer, monkeypatch):
    monkeypatch.setattr(ix, "QUEUE_BYTES", 1000)
    assert not indexer.give("dns", _lines(0, 50))           # more than the bound at once: dropped whole
    assert indexer.dropped["dns"] == 50 and indexer.losses() == {"indexer:dns": 50}


def test_stop_writes_everything_given(tmp_path):
    made = ix.Indexer(ix.Settings(str(tmp_path / "logs"), ("dns",), 1 << 20, 0, 0))
    for k in range(20):
        assert made.give("dns", _lines(k * 500, 500))
    made.stop()                                            # no tick: the stop commits what was given
    assert made.proc.poll() == 0 and made.counts().indexed == 10000
    assert _searched(tmp_path / "logs") == [f"name{i}.example" for i in range(10000)]


def test_unreadable_lines_are_counted_not_fatal(indexer, tmp_path):
    indexer.give("dns", b'{"ts": 1, "query": "good.example"}\nnot json\n')
    indexer.tick()
    wait_for(lambda: indexer.counts().unreadable == 1, timeout=60)
    assert _searched(tmp_path / "logs") == ["good.example"] and indexer.restarts == 0


def test_an_indexer_that_cannot_start_is_told_in_losses(tmp_path, monkeypatch):
    made = ix.Indexer(ix.Settings(str(tmp_path / "logs"), ("dns",), 1 << 20, 0, 0))
    monkeypatch.setattr(made, "_spawn", lambda: (_ for _ in ()).throw(OSError(24, "Too many open files")))
    made.give("dns", _lines(0, 10))
    wait_for(lambda: made.error is not None, timeout=30)
    assert "Too many open files" in made.error and made.losses()["indexer_failed"] == 1
    assert not made.give("dns", _lines(10, 5)) and made.losses()["indexer:dns"] == 5
    made.stop()


def test_lines_orjson_refuses_are_read_as_json_reads_them(indexer, tmp_path):
    """The indexer reads with orjson; a NaN or a lone surrogate (json.dumps writes both) goes to json."""
    indexer.give("dns", b'{"ts": 1, "query": "a.example", "rtt": NaN}\n{"ts": 2, "query": "b\\ud800.example"}\n'
                        b'{"ts": 3, "query": "c.example"}\n')
    indexer.tick()
    wait_for(lambda: indexer.counts().indexed == 3, timeout=60)
    assert _searched(tmp_path / "logs") == ["a.example", "b\ud800.example", "c.example"]
    assert indexer.counts().unreadable == 0


def test_parse_equals_json_on_the_c_lines():
    """orjson's records equal json's on every C line of a capture (floats, escapes, addresses)."""
    from agent.logs.offline import log_text
    from tests.conftest import ALL_PCAPS
    lines = []
    for path in ALL_PCAPS[:40]:
        log_text(str(path), ("dns", "conn", "http", "tls"), lambda k, b: lines.extend(bytes(b).decode().splitlines()))
    assert len(lines) > 1000
    assert ix.parse(lines) == json.loads("[" + ",".join(lines) + "]")
