"""/v1/firmware against the real agent process and fpga-sim: card and slots,
verification of files in the firmware directory (read-only keys may) and of
uploads, loading (full keys only; refusals load nothing), and capture on the
card once firmware runs."""
import base64
import os

import pytest

from agent.client import ApiError, Client
from firmware import sign
from firmware.keyring import Keyring
from hwdrivers.fpgasim import Simulator
from tests.agent.conftest import wait_for
from tests.conftest import card_path, pcap
from tests.firmware.conftest import TARGET, make_image

@pytest.fixture(scope="module")
def vendor_key():
    return sign.generate()


@pytest.fixture
def box(make_agent, tmp_path, card, vendor_key):
    """An agent whose keyring trusts the vendor key, with signed images in its firmware directory."""
    fw_dir = tmp_path / "var" / "firmware"
    Keyring().add(vendor_key.public_key(), fw_dir / "keys")
    payload = os.urandom(20000)
    for name, version, rollback in (("v2.img", "2.0.0", 5), ("v1.img", "1.0.0", 4)):
        data = make_image(payload, version, rollback)
        (fw_dir / name).write_bytes(data)
        (fw_dir / f"{name}.minisig").write_text(vendor_key.sign(data, f"release {version}").to_text())
    bad = bytearray((fw_dir / "v2.img").read_bytes())
    bad[-1] ^= 1
    (fw_dir / "damaged.img").write_bytes(bytes(bad))
    (tmp_path / "outside.img").write_bytes(b"x")
    a = make_agent(f'[capture]\nautostart = false\n[firmware]\ndevice = "{card}"\n')
    token = a.client.post("/v1/keys", {"kind": "pk", "name": "viewer"})["key"]
    a.viewer = Client(a.url, token)
    a.fw_dir = fw_dir
    return a


def test_card_slots_and_verification_by_path(box, tmp_path):
    st = box.viewer.get("/v1/firmware")
    assert st["card"]["present"] and st["card"]["firmware_state"] == "none" and st["target"] == TARGET
    assert st["slots"] == {} and len(st["keyring"]["key_ids"]) == 1
    # the seeds' query, with a read-only key; relative and absolute paths inside the firmware directory
    v = box.viewer.get("/v1/firmware/verify", firmware_path="v2.img", signature_path="v2.img.minisig")
    assert v["valid"] and v["reason"] == "ok" and v["header"]["version"] == "2.0.0"
    assert v["trusted_comment"] == "release 2.0.0" and v["key_id"] == st["keyring"]["key_ids"][0]
    assert box.viewer.get("/v1/firmware/verify", firmware_path=str(box.fw_dir / "v1.img"))["valid"]
    v = box.viewer.get("/v1/firmware/verify", firmware_path="damaged.img", signature_path="v2.img.minisig")
    assert not v["valid"] and v["reason"] == "hash_mismatch"
    for path, status, code in ((str(tmp_path / "outside.img"), 403, "FORBIDDEN"), ("../outside.img", 403, "FORBIDDEN"),
                               ("missing.img", 404, "NOT_FOUND"), ("", 400, "VALIDATION_ERROR")):
        with pytest.raises(ApiError) as e:
            box.viewer.get("/v1/firmware/verify", firmware_path=path)
        assert (e.value.status, e.value.code) == (status, code), path
    with pytest.raises(ApiError) as e:
        box.viewer.get("/v1/firmware/verify")
    assert e.value.details["field"] == "firmware_path"


def test_upload_verify_and_load(box, vendor_key):
    image = (box.fw_dir / "v2.img").read_bytes()
    sig = (box.fw_dir / "v2.img.minisig").read_text()
    body = {"image": base64.b64encode(image).decode(), "signature": sig}
    assert box.client.post("/v1/firmware/verify", body)["valid"]
    other = sign.generate().sign(image, "someone else").to_text()
    v = box.client.post("/v1/firmware/verify", {**body, "signature": other})
    assert (v["valid"], v["reason"]) == (False, "unknown_key")
    with pytest.raises(ApiError) as e:
        box.client.post("/v1/firmware/verify", {**body, "image": "not base64!"})
    assert e.value.code == "VALIDATION_ERROR"
    # loading: read-only keys may not; a refused image loads nothing
    with pytest.raises(ApiError) as e:
        box.viewer.post("/v1/firmware/load", {"firmware_path": "v2.img"})
    assert e.value.status == 403
    with pytest.raises(ApiError) as e:
        box.client.post("/v1/firmware/load", {**body, "signature": other})
    assert (e.value.status, e.value.code, e.value.details["reason"]) == (422, "FIRMWARE_REJECTED", "unknown_key")
    assert box.viewer.get("/v1/firmware")["card"]["firmware_loads"] == 0
    r = box.client.post("/v1/firmware/load", body)
    assert r["loaded"] and r["running"]["version"] == "2.0.0"
    st = box.viewer.get("/v1/firmware")
    slot = st["slots"]["fpga"]
    assert st["card"]["firmware_state"] == "running" and st["card"]["firmware_version"] == "2.0.0"
    assert (slot["version"], slot["rollback_index"], slot["key_id"]) == ("2.0.0", 5, vendor_key.public_key().id_hex)
    assert slot["verified_at"] > 0 and st["rollback_floor"] == {TARGET: 5}
    # an older image: refused, then loaded with a logged override
    with pytest.raises(ApiError) as e:
        box.client.post("/v1/firmware/load", {"firmware_path": "v1.img"})
    assert e.value.details["reason"] == "rollback"
    with pytest.raises(ApiError) as e:
        box.client.post("/v1/firmware/load", {"firmware_path": "v1.img", "allow_rollback": True})
    assert e.value.details["field"] == "reason"
    r = box.client.post("/v1/firmware/load", {"firmware_path": "v1.img", "allow_rollback": True,
                                               "reason": "regression in 2.0.0"})
    assert r["verdict"]["rollback_override"] and box.viewer.get("/v1/firmware")["rollback_floor"] == {TARGET: 5}
    logs = box.client.get("/v1/logs", level="warning")["logs"]
    assert any("rollback override" in rec["message"] and "regression in 2.0.0" in rec["message"] for rec in logs)


def test_capture_on_the_card_needs_firmware(box):
    with pytest.raises(ApiError) as e:
        box.client.capture_start(backend="fpga")
    assert (e.value.status, e.value.code) == (409, "CONFLICT") and "firmware" in e.value.message
    with pytest.raises(ApiError) as e:              # only the configured card
        box.client.capture_start(backend="fpga", interface="/etc/passwd")
    assert (e.value.status, e.value.code) == (403, "FORBIDDEN")
    box.client.post("/v1/firmware/load", {"firmware_path": "v2.img"})
    st = box.client.capture_start(backend="fpga")
    assert st["running"] and st["backend"] == "fpga"
    wait_for(lambda: not box.client.capture_status()["running"])
    last = box.client.capture_status()["last_run"]
    assert last["reason"] == "eof" and last["stats"]["packets"] == 136 and last["stats"]["flows_created"] == 34
    names = {b["name"]: b for b in box.viewer.get("/v1/capture/backends")["backends"]}
    assert "hwtstamp" in names["fpga"]["capabilities"]


def test_a_card_that_lost_power_gets_its_firmware_again(make_agent, tmp_path, vendor_key):
    """Load through REST, cut the power (a new, empty card; the agent restarted): the agent loads the same
    image again before anything captures on the card.  A kept image changed on disk is not loaded."""
    device = card_path()
    fw_dir = tmp_path / "var" / "firmware"
    Keyring().add(vendor_key.public_key(), fw_dir / "keys")
    data = make_image(os.urandom(20000), "2.0.0", 5)
    (fw_dir / "v2.img").write_bytes(data)
    (fw_dir / "v2.img.minisig").write_text(vendor_key.sign(data, "release 2.0.0").to_text())
    config = f'[capture]\nautostart = false\n[firmware]\ndevice = "{device}"\n'

    def power_on():
        return Simulator(pcap("zeek__wikipedia.pcap"), device=device, target=TARGET, desc_count=1024, data_mb=1,
                         flow_entries=1024)

    with power_on():
        a = make_agent(config)
        a.client.post("/v1/firmware/load", {"firmware_path": "v2.img"})
        a.stop()
    with power_on():
        a = make_agent(config)
        wait_for(lambda: a.client.get("/v1/firmware")["card"]["firmware_state"] == "running")
        st = a.client.get("/v1/firmware")
        assert st["card"]["firmware_version"] == "2.0.0" and st["card"]["firmware_loads"] == 1
        assert st["history"][-1]["note"] == "reloaded at start: the card had no firmware"
        assert a.client.capture_start(backend="fpga")["running"]
        wait_for(lambda: not a.client.capture_status()["running"])
        assert a.client.capture_status()["last_run"]["stats"]["packets"] == 136
        a.stop()
    kept = fw_dir / "running" / "fpga.img"
    assert kept.read_bytes() == data
    kept.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with power_on():
        a = make_agent(config)
        wait_for(lambda: any("not reloaded" in r["message"] for r in a.client.get("/v1/logs", level="error")["logs"]))
        assert a.client.get("/v1/firmware")["card"]["firmware_state"] == "none"
        assert a.client.get("/v1/health")["status"] != "unhealthy"
