"""Everything set over REST outlives a restart of the agent: encryption at
rest, the capture filter, exporters, recording and its settings, the flow
meter.  Set each, restart the agent subprocess on the same data directory,
read each back, and check that the next recording is really encrypted."""
import os

from tests.agent.conftest import AgentProcess, wait_for

CONFIG = '[capture]\nsource = "demo"\npace = 1.0\nloop = true\n'
BPF = "udp or tcp port 443"


def _key(data_dir, name: str) -> None:
    path = data_dir / "keys" / name
    path.write_bytes(os.urandom(32))
    path.chmod(0o600)


def test_settings_set_over_rest_survive_a_restart(tmp_path):
    data = tmp_path / "var"
    a = AgentProcess(data, CONFIG)
    try:
        wait_for(lambda: a.client.capture_status()["running"])
        c = a.client
        _key(data, "rec.key")
        c.post("/v1/capture/encryption", {"key_file": "rec.key"})
        c.post("/v1/capture/filter", {"bpf": BPF})
        c.post("/v1/capture/export", {"collector_ip": "127.0.0.1", "collector_port": 2055, "version": "v9"})
        c.post("/v1/capture/recording", {"action": "start", "rotate_mb": 7, "keep_s": 3600, "snaplen": 128,
                                          "bpf": "tcp"})
        c.post("/v1/capture/flow-meter", {"enable": False, "idle_timeout_s": 42, "active_timeout_s": 600,
                                           "sampling_rate": 4})
        before = {"encryption": c.get("/v1/capture/encryption"), "recording": c.get("/v1/capture/recording")}
    finally:
        assert a.stop() == 0
    b = AgentProcess(data, CONFIG)
    try:
        c = b.client
        wait_for(lambda: c.capture_status()["running"])
        st = c.capture_status()
        assert st["bpf"] == BPF
        assert st["flow_meter"] == {"enabled": False, "idle_timeout_s": 42, "active_timeout_s": 600,
                                    "sampling_rate": 4}
        enc = c.get("/v1/capture/encryption")
        assert enc["enabled"] is True and enc["key_file"] == "rec.key"
        assert enc["key_id"] == before["encryption"]["key_id"]
        rec = c.get("/v1/capture/recording")
        assert rec["enabled"] is True and rec["settings"] == before["recording"]["settings"]
        assert rec["settings"]["rotate_mb"] == 7 and rec["settings"]["bpf"] == "tcp"
        exporters = c.get("/v1/capture/export")
        exporters = exporters.get("exporters", exporters)
        assert [(e["collector_ip"], e["collector_port"], e["version"]) for e in exporters] == \
            [("127.0.0.1", 2055, "v9")]
        # the recording after the restart is encrypted, not plaintext pcapng
        current = wait_for(lambda: c.get("/v1/capture/recording")["current_file"])
        assert current.endswith(".pcapng.enc")
        wait_for(lambda: (data / "recordings" / current).stat().st_size > 64, timeout=30)
        head = (data / "recordings" / current).read_bytes()[:4]
        assert head != b"\x0a\x0d\x0d\x0a", "the recording after a restart is plaintext pcapng"
    finally:
        b.stop()


def test_lost_encryption_key_means_no_recording_not_plaintext(tmp_path):
    data = tmp_path / "var"
    a = AgentProcess(data, CONFIG)
    try:
        _key(data, "rec.key")
        a.client.post("/v1/capture/encryption", {"key_file": "rec.key"})
        a.client.post("/v1/capture/recording", {"action": "start"})
        wait_for(lambda: a.client.get("/v1/capture/recording")["current_file"])
    finally:
        a.stop()
    (data / "keys" / "rec.key").unlink()
    b = AgentProcess(data, CONFIG)
    try:
        wait_for(lambda: b.client.capture_status()["running"])
        rec = b.client.get("/v1/capture/recording")
        assert rec["recording"] is False and "rec.key" in (rec["error"] or "")
        assert rec["encryption"]["key_lost"] == "rec.key"
        before = {p.name for p in (data / "recordings").iterdir()}
        wait_for(lambda: b.client.capture_status()["stats"]["packets"] > 0)
        assert {p.name for p in (data / "recordings").iterdir()} == before   # nothing new, plaintext or not
    finally:
        b.stop()
