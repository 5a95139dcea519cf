"""Recording (hwdrivers/src/record.c) and encryption at rest, as the operator
uses them (`capbox record`, `capbox decrypt`) and through the Python face:
files that tshark and capinfos open with every packet, byte for byte the
source's; rotation and retention; the recording's own filter; decryption
that restores the exact bytes and says where a file is damaged; a kill -9
that leaves readable files."""
import json
import os
import stat
import re
import signal
import subprocess
import sys
import time

import pytest

from agent.recordings import crypt, files, keys
from hwdrivers import CaptureConfig, CaptureError, ErrorCode, RecordConfig, RunResult, Session
from tests.conftest import ROOT, pcap
from tests.pcapfiles import read_packets, read_pcapng

CAPBOX = [sys.executable, "-m", "agent"]


def capbox(*args, check=True) -> subprocess.CompletedProcess:
    p = subprocess.run([*CAPBOX, *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def record(source, directory, *args) -> dict:
    return json.loads(capbox("record", source, "--dir", directory, "--json", *args).stdout)


def capinfos_count(path) -> int:
    p = subprocess.run(["capinfos", "-M", "-c", str(path)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return int(re.search(r"Number of packets:\s+(\d+)", p.stdout).group(1))


def recordings(directory, prefix="capbox") -> list:
    return [directory / r["name"] for r in files.list_dir(directory) if r["name"].startswith(prefix + "-")]


@pytest.fixture
def key_file(tmp_path):
    def make(name="k.key", data=None, mode=0o600):
        p = tmp_path / name
        p.write_bytes(os.urandom(32) if data is None else data)
        p.chmod(mode)
        return p
    return make


@pytest.mark.parametrize("name", ["zeek__wikipedia.pcap", "chrissanders__http_ip4and6.pcapng",
                                  "zeek__mixed-vlan-mpls.pcap", "ndpi__1kxun.pcap"])
def test_a_recording_holds_every_packet_byte_for_byte(name, tmp_path, tshark):
    src = pcap(name)
    r = record(src, tmp_path)
    (f,) = recordings(tmp_path)
    want = read_packets(src)
    assert r["recording"]["packets"] == r["packets_captured"] == len(want) == capinfos_count(f)
    t = subprocess.run([tshark, "-r", str(f)], capture_output=True, text=True, timeout=60)
    assert t.returncode == 0 and len(t.stdout.splitlines()) == len(want), t.stderr
    got = read_pcapng(f)
    assert got["packets"] == want
    (iface,) = got["interfaces"]
    assert iface["name"] == name and iface["tsresol"] == 9 and iface["snaplen"] == 0
    assert oct(f.stat().st_mode & 0o777) == "0o600"


def test_rotation_by_size(tmp_path, synthetic_pcap):
    path, truth = synthetic_pcap
    r = record(path, tmp_path, "--rotate-mb", 1)
    fs = recordings(tmp_path)
    assert len(fs) == r["recording"]["files"] == r["recording"]["files_closed"] >= 5
    assert all(f.stat().st_size <= 1 << 20 for f in fs)
    counts = [capinfos_count(f) for f in fs]
    assert sum(counts) == truth["packets"] and all(counts)
    assert [p for f in fs for p in read_pcapng(f)["packets"]] == read_packets(path)


def test_rotation_by_packet_time(tmp_path, synthetic_pcap):
    path, truth = synthetic_pcap
    record(path, tmp_path, "--rotate-s", 10, "--rotate-mb", 0)
    fs = recordings(tmp_path)
    assert len(fs) == 6  # a minute of packets
    starts = []
    for f in fs:
        ts = [p[0] for p in read_pcapng(f)["packets"]]
        assert ts[-1] - ts[0] < 10 * 10**9
        starts.append(ts[0])
    assert all(b - a >= 10 * 10**9 for a, b in zip(starts, starts[1:]))
    assert sum(capinfos_count(f) for f in fs) == truth["packets"]


def test_retention_by_total_size_keeps_the_newest(tmp_path, synthetic_pcap):
    path, _ = synthetic_pcap
    r = record(path, tmp_path, "--rotate-mb", 1, "--keep-mb", 2)
    fs = recordings(tmp_path)
    assert sum(f.stat().st_size for f in fs) <= 2 << 20
    assert r["recording"]["files_deleted"] == r["recording"]["files"] - len(fs) > 0
    seqs = [int(f.name.split("-")[-1].split(".")[0]) for f in fs]
    assert seqs == list(range(r["recording"]["files"] - len(fs) + 1, r["recording"]["files"] + 1))
    # what is left is the end of the capture, whole
    assert [p for f in fs for p in read_pcapng(f)["packets"]] == read_packets(path)[-sum(map(capinfos_count, fs)):]


def test_retention_by_age_touches_only_its_prefix(tmp_path):
    old = tmp_path / "capbox-20200101T000000Z-000001.pcapng"
    other = tmp_path / "other-20200101T000000Z-000001.pcapng"
    for f in (old, other):
        f.write_bytes(b"")
        os.utime(f, (time.time() - 7200, time.time() - 7200))
    r = record(pcap("zeek__wikipedia.pcap"), tmp_path, "--keep-s", 3600)
    assert not old.exists() and other.exists()
    assert r["recording"]["files_deleted"] == 1 and len(recordings(tmp_path)) == 1


def test_the_filter_chooses_what_is_recorded(tmp_path):
    src = pcap("ndpi__1kxun.pcap")
    r = record(src, tmp_path, "--bpf", "udp")
    (f,) = recordings(tmp_path)
    matched = subprocess.run(["tcpdump", "-r", src, "-w", str(tmp_path / "udp.pcap"), "udp"],
                             capture_output=True, timeout=60)
    assert matched.returncode == 0
    want = read_packets(tmp_path / "udp.pcap")
    assert read_pcapng(f)["packets"] == want
    assert r["recording"]["packets"] == len(want) == r["packets_captured"]


@pytest.mark.parametrize("expr,outer,want", [
    ("tcp and host 157.240.224.35", False, 119),   # inside the VXLAN (MANIFEST v37): the TLS flows
    ("tcp and host 157.240.224.35", True, 0),      # outside it: UDP 4789 between the VTEPs
    ("vlan and udp port 4789", True, 127),         # the outer frame carries an 802.1Q tag
    ("udp port 53", False, 8),
])
def test_the_recordings_filter_sees_the_packet_inside_a_tunnel(expr, outer, want, tmp_path):
    """The recording's own filter (REST's recording bpf, bpf_outer) on a VXLAN mirror."""
    with Session(CaptureConfig(pcap("ndpi__vxlan.pcap"))) as s:
        s.start_recording(RecordConfig(str(tmp_path), bpf=expr, bpf_outer=outer, lossless=True))
        while s.run() != RunResult.EOF:
            pass
        st = s.stop_recording()
    assert st.packets == want and st.filtered == 127 - want
    if want:  # whole packets, tunnel and all, are what is recorded
        packets = [p for f in recordings(tmp_path) for p in read_pcapng(f)["packets"]]
        assert len(packets) == want and all(p[2][12:14] == b"\x81\x00" for p in packets)


def test_snaplen_keeps_the_wire_length(tmp_path):
    src = pcap("ndpi__1kxun.pcap")
    record(src, tmp_path, "--snaplen", 96)
    (f,) = recordings(tmp_path)
    got = read_pcapng(f)
    assert got["interfaces"][0]["snaplen"] == 96
    assert [(t, w, d) for t, w, d in got["packets"]] == [(t, w, d[:96]) for t, w, d in read_packets(src)]


def test_bad_recording_requests(tmp_path, key_file):
    src = pcap("zeek__wikipedia.pcap")
    for args, words in [
        (["--dir", tmp_path / "missing"], "no directory"),
        (["--dir", tmp_path, "--bpf", "not a filter ("], "bad filter"),
        (["--dir", tmp_path, "--snaplen", 10], "snaplen"),
        (["--dir", tmp_path, "--key-file", key_file("open.key", mode=0o644)], "chmod 600"),
        (["--dir", tmp_path, "--key-file", key_file("group.key", mode=0o640)], "group or others"),
        (["--dir", tmp_path, "--key-file", key_file("short.key", data=b"x" * 31)], "32 raw bytes"),
        (["--dir", tmp_path, "--key-file", tmp_path], "not a regular file"),
        (["--dir", tmp_path, "--key-file", tmp_path / "none.key"], "no key file"),
    ]:
        p = capbox("record", src, *args, check=False)
        assert p.returncode == 1 and words in p.stderr and "Traceback" not in p.stderr, (args, p.stderr)
    link = tmp_path / "link.key"
    link.symlink_to(key_file("real.key"))
    with pytest.raises(keys.KeyFileError) as e:
        keys.load(link)
    assert e.value.code == keys.NOT_A_FILE
    assert recordings(tmp_path) == []


# ---- encryption ------------------------------------------------------------------

def test_decrypt_restores_the_exact_bytes(tmp_path, key_file, synthetic_pcap):
    path, truth = synthetic_pcap
    k = key_file()
    plain = record(path, tmp_path, "--prefix", "plain", "--rotate-mb", 2)
    enc = record(path, tmp_path, "--key-file", k, "--rotate-mb", 2)
    assert enc["recording"]["encrypted"] and enc["recording"]["key_id"] == crypt.key_id(k.read_bytes())
    pf, ef = recordings(tmp_path, "plain"), recordings(tmp_path)
    assert len(pf) == len(ef) == plain["recording"]["files"] > 1
    for p, e in zip(pf, ef):
        assert e.name.endswith(".pcapng.enc") and e.read_bytes()[:8] == crypt.MAGIC
        out = tmp_path / (e.name + ".out")
        d = capbox("decrypt", e, out, "--key-file", k)
        assert "decrypted" in d.stderr
        assert out.read_bytes() == p.read_bytes()
    assert sum(capinfos_count(tmp_path / (e.name + ".out")) for e in ef) == truth["packets"]


def test_decrypt_finds_the_key_in_the_key_directory(tmp_path):
    data = tmp_path / "var"
    kdir = keys.ensure_key_dir(data)
    (kdir / "other.key").write_bytes(os.urandom(32))
    (kdir / "other.key").chmod(0o600)
    k = kdir / "rec.key"
    k.write_bytes(os.urandom(32))
    k.chmod(0o600)
    record(pcap("zeek__wikipedia.pcap"), tmp_path, "--key-file", k)
    (e,) = recordings(tmp_path)
    capbox("decrypt", e, tmp_path / "out.pcapng", "--data-dir", data)
    assert capinfos_count(tmp_path / "out.pcapng") == len(read_packets(pcap("zeek__wikipedia.pcap")))
    assert stat.S_IMODE((tmp_path / "out.pcapng").stat().st_mode) == 0o600   # decrypted traffic is private
    (kdir / "rec.key").unlink()
    p = capbox("decrypt", e, tmp_path / "out2.pcapng", "--data-dir", data, check=False)
    assert p.returncode == 1 and "no key with id" in p.stderr


@pytest.fixture
def chunked(tmp_path, key_file, synthetic_pcap):
    """An encrypted recording of several 64 kB chunks, its key and its plaintext."""
    k = key_file()
    with Session(CaptureConfig(source=synthetic_pcap[0])) as s:
        s.start_recording(RecordConfig(str(tmp_path), buffer_kb=64, rotate_bytes=0, lossless=True), k.read_bytes())
        while s.run() != RunResult.EOF:
            pass
        st = s.stop_recording()
    (f,) = recordings(tmp_path)
    assert st.chunks >= 10
    return f, k, _decrypt(f, k.read_bytes())


def _decrypt(f, key):
    import io
    buf = io.BytesIO()
    r = crypt.decrypt_file(f, buf, key)
    assert r.error is None, r.error
    return buf.getvalue()


def _chunk_offsets(f) -> list:
    """(start, end) of each chunk in the file."""
    import struct
    data = f.read_bytes()
    out, off = [], crypt.HEADER_SIZE
    while off < len(data):
        n, _ = struct.unpack("!II", data[off:off + 8])
        out.append((off, off + crypt.CHUNK_HEADER + n + crypt.TAG))
        off = out[-1][1]
    return out


@pytest.mark.parametrize("where", ["ciphertext", "tag", "nonce", "flags", "length"])
def test_a_flipped_bit_is_reported_with_its_chunk_and_position(where, chunked, tmp_path):
    f, k, plain = chunked
    extents = _chunk_offsets(f)
    victim = 3
    start, end = extents[victim]
    pos = {"ciphertext": start + crypt.CHUNK_HEADER + 1000, "tag": end - 5, "nonce": start + 10,
           "flags": start + 7, "length": start + 3}[where]
    data = bytearray(f.read_bytes())
    data[pos] ^= 0x04
    f.write_bytes(bytes(data))
    out = tmp_path / "out.pcapng"
    p = capbox("decrypt", f, out, "--key-file", k, check=False)
    assert p.returncode == 1 and f"chunk {victim}" in p.stderr and "Traceback" not in p.stderr
    with open(f, "rb") as fh:
        with pytest.raises(crypt.FormatError) as e:
            for _ in crypt.chunks(fh, k.read_bytes()):
                pass
    assert e.value.code in (crypt.DAMAGED, crypt.BAD_CHUNK) and e.value.chunk == victim
    assert e.value.offset[0] <= pos < e.value.offset[1]
    # what comes before the damage is authentic and kept
    before = extents[victim][0] - crypt.HEADER_SIZE - victim * (crypt.CHUNK_HEADER + crypt.TAG)
    assert out.read_bytes() == plain[:before]


def test_reordered_truncated_and_extended_files_are_refused(chunked):
    f, k, _ = chunked
    key = k.read_bytes()
    good = f.read_bytes()
    ext = _chunk_offsets(f)

    def code_of(data: bytes):
        f.write_bytes(data)
        with open(f, "rb") as fh:
            try:
                for _ in crypt.chunks(fh, key):
                    pass
            except crypt.FormatError as e:
                return e.code, e.chunk
        return None, None

    (a0, a1), (b0, b1) = ext[1], ext[2]
    assert code_of(good[:a0] + good[b0:b1] + good[a0:a1] + good[b1:]) == (crypt.DAMAGED, 1)
    assert code_of(good[:ext[4][0] + 100]) == (crypt.TRUNCATED, 4)
    assert code_of(good[:ext[4][0]]) == (crypt.INCOMPLETE, 4)
    assert code_of(good[:ext[4][0]] + good[ext[5][0]:]) == (crypt.DAMAGED, 4)   # a chunk left out
    assert code_of(good + b"\0") == (crypt.TRAILING, len(ext))
    assert code_of(good[:24] + bytes([good[24] ^ 1]) + good[25:]) == (crypt.DAMAGED, 0)  # the file id
    assert code_of(good[:16] + bytes([good[16] ^ 1]) + good[17:])[0] == crypt.WRONG_KEY  # the key id
    assert code_of(b"x" + good[1:])[0] == crypt.NOT_ENCRYPTED
    assert code_of(good[:8] + b"\x02" + good[9:])[0] == crypt.UNSUPPORTED
    assert code_of(good) == (None, None)


def test_a_wrong_key_fails_cleanly(chunked, key_file, tmp_path):
    f, _, _ = chunked
    out = tmp_path / "out.pcapng"
    p = capbox("decrypt", f, out, "--key-file", key_file("wrong.key"), check=False)
    assert p.returncode == 1 and "wrong key" in p.stderr and "Traceback" not in p.stderr
    assert not out.exists()
    p = capbox("decrypt", pcap("zeek__wikipedia.pcap"), out, "--key-file", key_file("w2.key"), check=False)
    assert p.returncode == 1 and "not a capbox encrypted recording" in p.stderr


def test_key_rotation_starts_a_new_file(tmp_path, synthetic_pcap):
    k1, k2 = os.urandom(32), os.urandom(32)
    with Session(CaptureConfig(source=synthetic_pcap[0])) as s:
        s.start_recording(RecordConfig(str(tmp_path), rotate_bytes=0, lossless=True), k1)
        s.run(max_packets=5000)
        s.set_recording_key(k2)
        assert s.recording().key_id == crypt.key_id(k2)
        s.run(max_packets=5000)
        s.set_recording_key(None)
        s.run(max_packets=5000)
        s.rotate_recording()
        s.run()
        st = s.stop_recording()
        with pytest.raises(CaptureError) as e:
            s.stop_recording()
        assert e.value.code == ErrorCode.STATE
    fs = recordings(tmp_path)
    assert [f.name.endswith(".enc") for f in fs] == [True, True, False, False] and st.files == 4
    p1 = read_pcapng_bytes(_decrypt(fs[0], k1))
    p2 = read_pcapng_bytes(_decrypt(fs[1], k2))
    with open(fs[0], "rb") as fh, pytest.raises(crypt.FormatError):
        list(crypt.chunks(fh, k2))
    got = p1 + p2 + read_pcapng(fs[2])["packets"] + read_pcapng(fs[3])["packets"]
    assert got == read_packets(synthetic_pcap[0])


def read_pcapng_bytes(data: bytes) -> list:
    import tempfile
    with tempfile.NamedTemporaryFile(suffix=".pcapng") as t:
        t.write(data)
        t.flush()
        return read_pcapng(t.name)["packets"]


# ---- kill -9 ---------------------------------------------------------------------

RECORDER = """
import sys, time
from hwdrivers import Session, CaptureConfig, RecordConfig
src, out, key = sys.argv[1], sys.argv[2], sys.argv[3]
with Session(CaptureConfig(source=src, pace=20)) as s:
    s.start_recording(RecordConfig(out, rotate_bytes=1 << 20, flush_ms=50, buffer_kb=256),
                      bytes.fromhex(key) if key else None)
    print("recording", flush=True)
    while True:
        s.run(timeout_ms=100)
"""


@pytest.mark.parametrize("encrypted", [False, True])
def test_kill_9_mid_recording_leaves_readable_files(encrypted, tmp_path, synthetic_pcap):
    """Every completed file is whole; the interrupted one holds whole blocks (or
    chunks) up to its last write, trimmed of a torn end if the kill cut a write."""
    src = synthetic_pcap[0]
    key = os.urandom(32) if encrypted else None
    script = tmp_path / "recorder.py"
    script.write_text(RECORDER)
    out = tmp_path / "rec"
    out.mkdir()
    p = subprocess.Popen([sys.executable, str(script), src, str(out), key.hex() if key else ""], cwd=ROOT,
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "recording"
    deadline = time.monotonic() + 20
    while len(recordings(out)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    p.send_signal(signal.SIGKILL)
    p.wait()
    fs = recordings(out)
    assert len(fs) >= 3
    files.trim_torn_end(fs[-1])
    packets = []
    for i, f in enumerate(fs):
        if encrypted:
            with open(f, "rb") as fh:
                plain = b""
                try:
                    for chunk in crypt.chunks(fh, key):
                        plain += chunk
                    complete = True
                except crypt.FormatError as e:
                    assert e.code == crypt.INCOMPLETE and i == len(fs) - 1, (f, e.message)
                    complete = False
            assert complete or i == len(fs) - 1
            packets += read_pcapng_bytes(plain)
        else:
            assert capinfos_count(f) == len(read_pcapng(f)["packets"])
            packets += read_pcapng(f)["packets"]
    # the files hold the start of the capture, in order, nothing missing in between
    assert 0 < len(packets) < 20000
    assert packets == read_packets(src)[:len(packets)]


@pytest.mark.parametrize("encrypted", [False, True])
def test_a_torn_end_is_trimmed_to_the_last_whole_block(encrypted, tmp_path, key_file):
    """What a kill -9 during a write(2) leaves: part of a block (or chunk) at the end."""
    k = key_file()
    record(pcap("ndpi__1kxun.pcap"), tmp_path, *(["--key-file", k] if encrypted else []))
    (f,) = recordings(tmp_path)
    whole = f.read_bytes()
    second = tmp_path / ("copy" + f.name[6:])
    second.write_bytes(whole)
    record(pcap("zeek__wikipedia.pcap"), tmp_path, "--prefix", "more", *(["--key-file", k] if encrypted else []))
    (g,) = recordings(tmp_path, "more")
    torn = g.read_bytes()[:-3] if not encrypted else g.read_bytes()[:crypt.HEADER_SIZE + 100]
    f.write_bytes(whole + (torn[-77:] if not encrypted else torn[crypt.HEADER_SIZE:]))
    assert files.trim_torn_end(second) == 0          # an intact file is left alone
    cut = files.trim_torn_end(f)
    assert cut > 0 and f.read_bytes() == whole
    if not encrypted:
        assert capinfos_count(f) == len(read_packets(pcap("ndpi__1kxun.pcap")))
    else:
        assert crypt.verify(f, k.read_bytes()).error is None
