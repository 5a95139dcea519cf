"""Recording and encryption at rest over REST against the real agent process:
recordings tshark and capinfos open, downloads (decrypted only for full
keys), key rotation, retention, bad keys and bad requests, and a kill -9 of
the agent mid-recording."""
import io
import os
import re
import subprocess

import pytest

from agent.client import ApiError, Client
from agent.recordings import crypt
from tests.agent.conftest import IDLE, wait_for
from tests.conftest import pcap
from tests.pcapfiles import read_packets, read_pcapng


def capinfos_count(path) -> int:
    p = subprocess.run(["capinfos", "-M", "-c", str(path)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return int(re.search(r"Number of packets:\s+(\d+)", p.stdout).group(1))


def make_key(agent, name="rec.key", mode=0o600, size=32) -> bytes:
    key = os.urandom(size)
    path = agent.data_dir / "keys" / name
    path.write_bytes(key)
    path.chmod(mode)
    return key


def run_file(agent, name, **kw) -> dict:
    agent.client.capture_start(file=name, **kw)
    return wait_for(lambda: agent.client.capture_status().get("last_run"), timeout=30)


def download(agent, name, client=None, **query) -> bytes:
    r = (client or agent.client).raw("GET", f"/v1/recordings/{name}", query=query or None)
    if r.status != 200:
        raise ApiError(r.status, r.json()["error"]["code"], r.json()["error"]["message"], r.json()["error"]["details"])
    assert int(r.headers["content-length"]) == len(r.body)
    return r.body


def test_record_encrypt_list_and_download(agent, tmp_path, tshark):
    src = pcap("ndpi__1kxun.pcap")
    name = agent.pcap(src)
    key = make_key(agent)
    st = agent.client.post("/v1/capture/recording", {"rotate_mb": 1})
    assert st["enabled"] and not st["recording"] and st["settings"]["rotate_mb"] == 1
    enc = agent.client.post("/v1/capture/encryption", {"cipher_suite": "AES-256-GCM", "key_file": "rec.key"})
    assert enc["enabled"] and enc["key_id"] == crypt.key_id(key)
    run_file(agent, name)
    listing = agent.client.get("/v1/recordings")
    items = listing["recordings"]
    assert len(items) == 3 and all(i["encrypted"] and i["complete"] and not i["active"] for i in items)
    assert {i["key_id"] for i in items} == {crypt.key_id(key)}
    assert listing["recording"]["stats"]["packets"] == 1723
    packets = []
    for i in items:
        raw = download(agent, i["name"])
        assert raw == (agent.data_dir / "recordings" / i["name"]).read_bytes()
        plain = download(agent, i["name"], decrypt="true")
        out = tmp_path / i["name"].replace(".enc", "")
        out.write_bytes(plain)
        assert subprocess.run([tshark, "-r", str(out)], capture_output=True, timeout=60).returncode == 0
        packets += read_pcapng(out)["packets"]
    assert packets == read_packets(src) and sum(capinfos_count(tmp_path / i["name"].replace(".enc", ""))
                                                for i in items) == 1723
    # a read-only key gets the file as stored, never decrypted
    reader = Client(agent.url, agent.client.post("/v1/keys", {"kind": "pk", "name": "r"})["key"])
    assert download(agent, items[0]["name"], reader)[:8] == crypt.MAGIC
    with pytest.raises(ApiError) as e:
        download(agent, items[0]["name"], reader, decrypt="true")
    assert (e.value.status, e.value.code) == (403, "FORBIDDEN")
    # deleting a recording
    assert agent.client.delete(f"/v1/recordings/{items[0]['name']}")["deleted"]
    assert agent.client.get("/v1/recordings")["count"] == 2
    for bad in ("nope-20260101T000000Z-000001.pcapng", "admin.key", "capbox.db"):
        with pytest.raises(ApiError) as e:
            download(agent, bad)
        assert e.value.code == "NOT_FOUND"


def test_recording_applies_to_the_running_capture_and_key_rotation_starts_a_new_file(agent):
    name = agent.pcap(pcap("ndpi__1kxun.pcap"))
    k1, k2 = make_key(agent, "one.key"), make_key(agent, "two.key")
    agent.client.capture_start(file=name, pace=10, loop=True)
    st = agent.client.post("/v1/capture/recording", {"action": "start"})
    assert st["recording"]
    # the file opens with its first buffer of packets
    st = wait_for(lambda: (x := agent.client.get("/v1/capture/recording"))["current_file"] and x)
    assert st["current_file"].endswith(".pcapng")
    assert agent.client.capture_status()["output_file"].endswith(st["current_file"])
    wait_for(lambda: agent.client.get("/v1/capture/recording")["stats"]["packets"] > 5)
    agent.client.post("/v1/capture/encryption", {"key_file": "one.key"})
    wait_for(lambda: (agent.client.get("/v1/capture/recording")["current_file"] or "").endswith(".enc"))
    wait_for(lambda: agent.client.get("/v1/capture/recording")["stats"]["chunks"] >= 1, timeout=20)
    agent.client.post("/v1/capture/encryption", {"key_file": "two.key"})
    current = wait_for(lambda: agent.client.get("/v1/capture/recording")["stats"]["key_id"] == crypt.key_id(k2))
    assert current
    wait_for(lambda: agent.client.get("/v1/capture/recording")["stats"]["files"] >= 3, timeout=20)
    st = agent.client.post("/v1/capture/recording", {"action": "stop"})
    assert st["recording"] is False and st["stats"]["files_closed"] == st["stats"]["files"] == 3
    assert agent.client.capture_status()["running"] and agent.client.capture_status()["output_file"] is None
    items = agent.client.get("/v1/recordings")["recordings"]
    assert [i["key_id"] for i in items] == [None, crypt.key_id(k1), crypt.key_id(k2)]
    assert capinfos_count(agent.data_dir / "recordings" / items[0]["name"]) > 0
    for i, key in ((items[1], k1), (items[2], k2)):
        r = crypt.decrypt_file(agent.data_dir / "recordings" / i["name"], io.BytesIO(), key)
        assert r.error is None and r.chunks >= 1
    agent.client.capture_stop()


def test_retention_and_the_recordings_own_filter(agent, synthetic_pcap):
    name = agent.pcap(synthetic_pcap[0])
    agent.client.post("/v1/capture/recording", {"rotate_mb": 1, "keep_mb": 2, "filter": "tcp or (vlan and tcp)"})
    run_file(agent, name)
    st = agent.client.get("/v1/capture/recording")
    items = agent.client.get("/v1/recordings")["recordings"]
    assert sum(i["size"] for i in items) <= 2 << 20 and st["stats"]["files_deleted"] > 0
    assert st["stats"]["filtered"] > 0
    for i in items:
        assert capinfos_count(agent.data_dir / "recordings" / i["name"]) > 0
        assert all(p[2][23 if p[2][12:14] == b"\x08\x00" else 27] == 6 or p[2][12:14] in (b"\x81\x00", b"\x86\xdd")
                   for p in read_pcapng(agent.data_dir / "recordings" / i["name"])["packets"])


def test_bad_recording_and_encryption_requests(agent):
    post = agent.client.post
    make_key(agent, "open.key", mode=0o644)
    make_key(agent, "short.key", size=16)
    cases = [
        ("/v1/capture/encryption", {"key_file": "open.key"}, 400, "VALIDATION_ERROR", "key_file"),
        ("/v1/capture/encryption", {"key_file": "short.key"}, 400, "VALIDATION_ERROR", "key_file"),
        ("/v1/capture/encryption", {"key_file": "missing.key"}, 400, "VALIDATION_ERROR", "key_file"),
        ("/v1/capture/encryption", {}, 400, "VALIDATION_ERROR", "key_file"),
        ("/v1/capture/encryption", {"key_file": "../admin.key"}, 403, "FORBIDDEN", "key_file"),
        ("/v1/capture/encryption", {"key_file": "/etc/passwd"}, 403, "FORBIDDEN", "key_file"),
        ("/v1/capture/encryption", {"key_file": "open.key", "cipher_suite": "ChaCha20-Poly1305"}, 400,
         "VALIDATION_ERROR", "cipher_suite"),
        ("/v1/capture/recording", {"action": "pause"}, 400, "VALIDATION_ERROR", "action"),
        ("/v1/capture/recording", {"bpf": "tcp and ("}, 400, "VALIDATION_ERROR", "bpf"),
        ("/v1/capture/recording", {"snaplen": 10}, 400, "VALIDATION_ERROR", "snaplen"),
        ("/v1/capture/recording", {"rotate_mb": -1}, 400, "VALIDATION_ERROR", "rotate_mb"),
    ]
    for path, body, status, code, field in cases:
        with pytest.raises(ApiError) as e:
            post(path, body)
        assert (e.value.status, e.value.code, e.value.details.get("field")) == (status, code, field), body
    assert agent.client.get("/v1/capture/encryption")["enabled"] is False
    assert agent.client.get("/v1/capture/recording")["enabled"] is False


def test_a_damaged_recording_is_refused_with_its_position(make_agent, tmp_path):
    """Also: recording and encryption from the configuration."""
    key = os.urandom(32)
    (tmp_path / "var" / "keys").mkdir(parents=True)
    (tmp_path / "var" / "keys" / "rec.key").write_bytes(key)
    (tmp_path / "var" / "keys" / "rec.key").chmod(0o600)
    agent = make_agent(IDLE + '[recording]\nenabled = true\nkey_file = "rec.key"\n')
    assert agent.client.get("/v1/capture/encryption")["key_id"] == crypt.key_id(key)
    run_file(agent, agent.pcap(pcap("zeek__wikipedia.pcap")))
    (item,) = agent.client.get("/v1/recordings")["recordings"]
    path = agent.data_dir / "recordings" / item["name"]
    data = bytearray(path.read_bytes())
    data[crypt.HEADER_SIZE + crypt.CHUNK_HEADER + 100] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ApiError) as e:
        download(agent, item["name"], decrypt="true")
    assert (e.value.status, e.value.code) == (422, "INTEGRITY_ERROR")
    assert e.value.details["chunk"] == 0 and e.value.details["reason"] == "damaged"
    assert e.value.details["offset"][0] <= crypt.HEADER_SIZE + crypt.CHUNK_HEADER + 100 < e.value.details["offset"][1]
    # the key goes from the key directory: no key, no decryption
    (agent.data_dir / "keys" / "rec.key").unlink()
    agent.client.post("/v1/capture/encryption", {"enable": False})
    with pytest.raises(ApiError) as e:
        download(agent, item["name"], decrypt="true")
    assert e.value.code == "CONFLICT" and e.value.details["key_id"] == crypt.key_id(key)


@pytest.mark.parametrize("encrypted", [False])  # encrypted files after a kill -9: tests/hwdrivers/test_record.py
def test_kill_9_of_the_agent_mid_recording(encrypted, make_agent, tmp_path, synthetic_pcap):
    """Completed files are whole; the interrupted one holds whole blocks (chunks)
    up to its last write; the agent started again trims a torn end and records on."""
    config = IDLE + "[recording]\nenabled = true\nrotate_mb = 1\nflush_ms = 100\n"
    key = os.urandom(32)
    if encrypted:
        config += 'key_file = "rec.key"\n'
        (tmp_path / "var" / "keys").mkdir(parents=True)
        (tmp_path / "var" / "keys" / "rec.key").write_bytes(key)
        (tmp_path / "var" / "keys" / "rec.key").chmod(0o600)
    a = make_agent(config)
    assert a.client.get("/v1/capture/recording")["enabled"]
    a.client.capture_start(file=a.pcap(synthetic_pcap[0]), pace=10)
    rec = a.data_dir / "recordings"
    wait_for(lambda: len(list(rec.iterdir())) >= 3, timeout=30)
    a.proc.kill()
    a.proc.wait()
    names = sorted(p.name for p in rec.iterdir())

    def packets_of(p, last):
        if not encrypted:
            return read_pcapng(p)["packets"]
        buf = io.BytesIO()
        r = crypt.decrypt_file(p, buf, key)
        assert r.error is None or (last and r.error.code == crypt.INCOMPLETE), r.error
        plain = p.with_suffix(".plain")
        plain.write_bytes(buf.getvalue())
        try:
            return read_pcapng(plain)["packets"]
        finally:
            plain.unlink()

    for n in names[:-1]:  # completed files open as they are
        if not encrypted:
            assert capinfos_count(rec / n) == len(read_pcapng(rec / n)["packets"]) > 0
    # the agent comes back, trims the interrupted file's torn end (if the kill cut a write) and records on
    b = make_agent(config, name="var")
    b.client.capture_start(file=b.pcap(pcap("zeek__wikipedia.pcap")))
    wait_for(lambda: b.client.capture_status().get("last_run"))
    items = b.client.get("/v1/recordings")["recordings"]
    assert [i["name"] for i in items][:len(names)] == names and len(items) == len(names) + 1
    packets = []
    for i, n in enumerate(names):
        packets += packets_of(rec / n, i == len(names) - 1)
        if not encrypted:
            assert capinfos_count(rec / n) == len(read_pcapng(rec / n)["packets"])
    assert 0 < len(packets) < 20000 and packets == read_packets(synthetic_pcap[0])[:len(packets)]
    assert len(packets_of(rec / items[-1]["name"], False)) == 136


def test_a_bad_key_file_in_the_configuration_stops_the_start(tmp_path):
    import sys
    from tests.conftest import ROOT
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "open.key").write_bytes(os.urandom(32))
    (tmp_path / "keys" / "open.key").chmod(0o644)
    cfg = tmp_path / "capbox.toml"
    cfg.write_text('[recording]\nkey_file = "open.key"\n')
    p = subprocess.run([sys.executable, "-m", "agent", "run", "--config", str(cfg), "--data-dir", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "recording.key_file" in p.stderr and "chmod 600" in p.stderr
