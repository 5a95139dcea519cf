"""Loading into the card (fpga-sim): only an image whose verdict is ok
reaches it; every refusal leaves the card and the slot state as they were.
Driven through `capbox fw load` / `fw status` and the agent's firmware service."""
import json
import os

import pytest

from agent import config
from agent.errors import AgentError
from agent.software.card import CardFirmware
from firmware import image
from firmware.errors import Reason
from firmware.keyring import Keyring
from hwdrivers import fpga
from tests.firmware.conftest import TARGET, capbox, make_image

@pytest.fixture
def box(tmp_path, card, key):
    """The data directory of a box whose keyring trusts `key`, and its firmware service."""
    data = tmp_path / "var"
    Keyring().add(key.public_key(), data / "firmware" / "keys")
    cfg = config.load(None, env={}, overrides={"agent": {"data_dir": str(data)}, "firmware": {"device": card}})
    return CardFirmware(cfg)


def write_signed(tmp_path, key, data: bytes, name: str = "fw.img"):
    (tmp_path / name).write_bytes(data)
    (tmp_path / f"{name}.minisig").write_text(key.sign(data, f"file:{name}").to_text())
    return tmp_path / name


def untouched(box):
    info = fpga.info(box.device)
    return info.firmware_loads == 0 and info.firmware_state == "none" and not box.state.snapshot()["slots"]


def test_tampered_foreign_and_old_images_never_reach_the_card(box, signed, key, other_key, payload):
    data, sig = signed
    header_flip = bytearray(data)
    header_flip[44] ^= 0xFF                                  # the patch version
    payload_flip = bytearray(data)
    payload_flip[-10] ^= 1
    foreign = make_image(payload, target="capbox-fpga2")
    cases = [
        (bytes(header_flip), sig, Reason.BAD_SIGNATURE),
        (bytes(payload_flip), sig, Reason.HASH_MISMATCH),
        (data[:-1], sig, Reason.TRUNCATED),
        (data[:100], sig, Reason.TRUNCATED),
        (b"MZ" + data[2:], sig, Reason.BAD_MAGIC),
        (data, other_key.sign(data, "x").to_text(), Reason.UNKNOWN_KEY),
        (data, "untrusted comment: x\n", Reason.MALFORMED_SIGNATURE),
        (foreign, key.sign(foreign, "x").to_text(), Reason.WRONG_TARGET),
    ]
    for img, signature, reason in cases:
        with pytest.raises(AgentError) as e:
            box.load(img, signature)
        assert e.value.code == "FIRMWARE_REJECTED" and e.value.details["reason"] == reason.code
        assert untouched(box), reason
    # the good one loads; an older one is then refused
    r = box.load(data, sig)
    assert r["loaded"] and r["running"]["version"] == "1.4.2"
    info = fpga.info(box.device)
    assert (info.firmware_state, info.firmware_version, info.firmware_rollback, info.firmware_loads) == \
        ("running", "1.4.2", 7, 1)
    older = make_image(payload, "1.3.0", 6)
    with pytest.raises(AgentError) as e:
        box.load(older, key.sign(older, "old").to_text())
    assert e.value.details["reason"] == "rollback"
    assert fpga.info(box.device).firmware_loads == 1
    with pytest.raises(AgentError) as e:                      # an override needs a reason
        box.load(older, key.sign(older, "old").to_text(), allow_rollback=True)
    assert e.value.code == "VALIDATION_ERROR"


def test_cli_load_status_and_logged_rollback_override(tmp_path, box, key, payload):
    data_dir = str(box.cfg.data_dir)
    new = write_signed(tmp_path, key, make_image(payload, "2.0.0", 12), "new.img")
    old = write_signed(tmp_path, key, make_image(payload, "1.9.9", 11), "old.img")
    dev = ["--data-dir", data_dir, "--device", box.device]
    p = capbox("fw", "status", *dev)
    assert "firmware   none" in p.stdout and "floor: none yet" in p.stdout
    p = capbox("fw", "load", str(new), *dev)
    assert "loaded capbox-fpga1 2.0.0 (rollback index 12" in p.stdout
    p = capbox("fw", "load", str(old), *dev, status=Reason.ROLLBACK.value)
    assert "REFUSED (rollback)" in p.stderr and "nothing was loaded" in p.stderr
    p = capbox("fw", "load", str(old), *dev, "--allow-rollback", "--reason", "field test of 1.9.9", "--json")
    assert json.loads(p.stdout)["verdict"]["rollback_override"] is True
    assert "rollback override" in p.stderr and "field test of 1.9.9" in p.stderr     # logged
    st = json.loads(capbox("fw", "status", *dev, "--json").stdout)
    assert st["card"]["firmware_version"] == "1.9.9" and st["card"]["firmware_loads"] == 2
    assert st["rollback_floor"] == {TARGET: 12}
    slot = st["slots"]["fpga"]
    assert (slot["version"], slot["rollback_index"], slot["key_id"]) == ("1.9.9", 11, key.public_key().id_hex)
    assert slot["verified_at"] > 0 and slot["rollback_override"]
    # verify against the box's own state: the floor is 12 now
    capbox("fw", "verify", str(old), "--data-dir", data_dir, "--device", box.device, status=Reason.ROLLBACK.value)


def test_a_load_damaged_on_its_way_is_refused_by_the_card(box, signed):
    """The card checks the CRC of what it received: a damaged transfer does not run."""
    data, sig = signed
    fpga.inject_fault(box.device, "fw_crc")
    with pytest.raises(AgentError) as e:
        box.load(data, sig)
    assert e.value.details["card_error"] == "IO" and "CRC" in e.value.message
    info = fpga.info(box.device)
    assert info.firmware_state == "failed" and info.last_load_error == "crc" and info.firmware_loads == 0
    assert not box.state.snapshot()["slots"]                   # nothing recorded
    box.load(data, sig)
    info = fpga.info(box.device)
    assert info.firmware_state == "running" and info.firmware_length == len(data) - image.HEADER_LEN


def test_no_card(tmp_path, signed, key):
    cfg = config.load(None, env={}, overrides={"agent": {"data_dir": str(tmp_path)},
                                               "firmware": {"device": str(tmp_path / "nothing")}})
    with pytest.raises(AgentError) as e:
        CardFirmware(cfg).load(*signed)
    assert e.value.code == "CARD_UNAVAILABLE"


def test_fpga_sim_command_with_a_fault(tmp_path, key, signed):
    """`capbox fpga-sim` as its own process (the card), firmware loaded with
    `capbox fw load`, a capture through the driver meets the armed link fault."""
    import signal
    import subprocess
    import sys
    import time

    from hwdrivers import CaptureConfig, CaptureError, RunResult, Session
    from tests.conftest import ROOT, card_path, pcap
    device = card_path()
    sim = subprocess.Popen([sys.executable, "-m", "agent", "fpga-sim", "--source", pcap("ndpi__1kxun.pcap"),
                            "--device", device, "--ring", "1024", "--data-mb", "1", "--flow-entries", "1024",
                            "--fault", "link@100:100"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    try:
        assert "no firmware yet" in sim.stdout.readline()
        data_dir = tmp_path / "var"
        Keyring().add(key.public_key(), data_dir / "firmware" / "keys")
        write_signed(tmp_path, key, signed[0])
        capbox("fw", "load", str(tmp_path / "fw.img"), "--data-dir", str(data_dir), "--device", device)
        errors = []
        with Session(CaptureConfig(source=device, backend="fpga")) as s:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    if s.run(timeout_ms=500) == RunResult.EOF:
                        break
                except CaptureError as e:
                    errors.append(e.message)
            assert s.counters().packets == 1723
        assert len(errors) == 1 and "link down" in errors[0]
    finally:
        sim.send_signal(signal.SIGTERM)
        assert sim.wait(10) == 0
    assert not os.path.exists(device)
    capbox("fpga-sim", "--source", pcap("ndpi__1kxun.pcap"), "--device", device, "--fault", "melt@1", status=1)
