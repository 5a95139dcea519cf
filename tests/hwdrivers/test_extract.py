"""The recordings' block index and extraction in C (hwdrivers.extract): real
recordings of the synthetic capture, rotated and encrypted in small chunks,
held to tcpdump over the source with the same filter and window; a window
reads only its ranges; torn files, wrong keys and bad filters."""
import os
import subprocess

import pytest

from hwdrivers import CaptureConfig, CaptureError, ErrorCode, RecordConfig, RunResult, Session
from hwdrivers.extract import Source, extract, index_file
from tests.hwdrivers.test_record import recordings
from tests.pcapfiles import read_packets, read_pcapng


def record(source, directory, key=None, **cfg):
    with Session(CaptureConfig(source=source)) as s:
        s.start_recording(RecordConfig(str(directory), lossless=True, **cfg), key)
        while s.run() != RunResult.EOF:
            pass
        return s.stop_recording()


def tcpdump(src, bpf, tmp_path, since=0, until=1 << 64) -> list:
    out = tmp_path / "td.pcap"
    subprocess.run(["tcpdump", "-r", str(src), "-w", str(out), bpf], check=True, capture_output=True, timeout=120)
    return [p for p in read_packets(out) if since <= p[0] <= until]


def pick(indexes, since, until) -> list:
    return [Source(str(f), [m for m in ix.marks if m.first_ns <= until and m.last_ns >= since], key)
            for f, ix, key in indexes if ix.first_ns <= until and ix.last_ns >= since]


def run(sources, since, until, bpf, out):
    with open(out, "wb") as f:
        return extract(sources, since, until, bpf, f.fileno())


@pytest.mark.parametrize("encrypted", [False, True])
def test_a_window_reads_only_its_ranges_and_equals_tcpdump(encrypted, tmp_path, synthetic_pcap):
    src, truth = synthetic_pcap
    key = os.urandom(32) if encrypted else None
    record(src, tmp_path, key, rotate_bytes=1 << 20, buffer_kb=64)
    files = recordings(tmp_path)
    assert len(files) >= 5
    indexes = [(f, index_file(str(f), key, span=64 << 10), key) for f in files]
    assert sum(ix.packets for _, ix, _ in indexes) == truth["packets"]
    assert all(ix.complete and ix.marks for _, ix, _ in indexes)
    every = read_packets(src)
    for (_, a, _), (_, b, _) in zip(indexes, indexes[1:]):
        assert a.last_ns <= b.first_ns                      # rotation keeps time order
    since, until = every[len(every) // 3][0], every[len(every) // 3 + 2000][0]
    sources = pick(indexes, since, until)
    st = run(sources, since, until, "tcp and port 80", tmp_path / "w.pcapng")
    got = read_pcapng(tmp_path / "w.pcapng")["packets"]
    assert got == tcpdump(src, "tcp and port 80", tmp_path, since, until) and st.packets == len(got) > 0
    total = sum(f.stat().st_size for f in files)
    assert st.files <= 2 and st.bytes_read < total / 4     # the window's ranges, not every file
    # every range of every file: all that tcpdump finds
    st = run(pick(indexes, 0, 1 << 63), 0, (1 << 64) - 1, "udp", tmp_path / "all.pcapng")
    assert read_pcapng(tmp_path / "all.pcapng")["packets"] == tcpdump(src, "udp", tmp_path)
    assert st.examined == truth["packets"]


def test_a_torn_file_is_indexed_to_its_last_whole_block(tmp_path, synthetic_pcap):
    src, _ = synthetic_pcap
    record(src, tmp_path, rotate_bytes=0)
    (f,) = recordings(tmp_path)
    whole = index_file(str(f))
    torn = tmp_path / "torn.pcapng"
    torn.write_bytes(f.read_bytes()[:f.stat().st_size // 2 + 7])
    ix = index_file(str(torn))
    assert not ix.complete and 0 < ix.packets < whole.packets and ix.size <= torn.stat().st_size
    run([Source(str(torn), ix.marks)], 0, (1 << 64) - 1, "", tmp_path / "t.pcapng")
    assert read_pcapng(tmp_path / "t.pcapng")["packets"] == read_packets(src)[:ix.packets]


def test_wrong_keys_bad_filters_and_missing_files(tmp_path, synthetic_pcap):
    src, _ = synthetic_pcap
    key = os.urandom(32)
    record(src, tmp_path, key, rotate_bytes=0)
    (f,) = recordings(tmp_path)
    with pytest.raises(CaptureError) as e:
        index_file(str(f), os.urandom(32))
    assert e.value.code == ErrorCode.ARG and "key" in e.value.message
    ix = index_file(str(f), key)
    with pytest.raises(CaptureError) as e:
        run([Source(str(f), ix.marks, key)], 0, (1 << 64) - 1, "tcp and (", tmp_path / "bad.pcapng")
    assert e.value.code == ErrorCode.FILTER and (tmp_path / "bad.pcapng").stat().st_size == 0
    # a file retention took after the index was read is skipped
    st = run([Source(str(tmp_path / "gone.pcapng"), ix.marks)], 0, (1 << 64) - 1, "", tmp_path / "g.pcapng")
    assert st.files == 0 and read_pcapng(tmp_path / "g.pcapng")["packets"] == []
    # a damaged chunk stops the read with its reason
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 1
    (tmp_path / "bent.pcapng.enc").write_bytes(data)
    with pytest.raises(CaptureError) as e:
        index_file(str(tmp_path / "bent.pcapng.enc"), key)
    assert e.value.code == ErrorCode.FORMAT and "authentication" in e.value.message
