"""Verification refuses every damaged, foreign or older image with the right
reason: every header byte flipped, a sample of payload bytes flipped,
truncations, wrong keys, wrong target, rollback."""
import base64
import random
import struct

import pytest

from firmware import image, minisign
from firmware.errors import FirmwareError, Reason
from firmware.keyring import Keyring
from firmware.slots import SlotState
from firmware.verify import verify
from tests.firmware.conftest import TARGET, make_image


def expected_for_header_flip(data: bytes, offset: int) -> Reason:
    """What a flip (XOR 0xFF) of header byte `offset` must be refused for."""
    if offset < 4:
        return Reason.BAD_MAGIC
    if offset < 6:
        return Reason.UNSUPPORTED_FORMAT
    if offset < 8:
        return Reason.MALFORMED                          # header length
    if offset < 40:
        return Reason.MALFORMED                          # the target byte is no longer a name character / NUL
    if 46 <= offset < 48 or 52 <= offset < 56 or offset >= 104:
        return Reason.MALFORMED                          # reserved and flags: must be zero
    if 64 <= offset < 72:
        flipped = bytearray(data)
        flipped[offset] ^= 0xFF
        n = struct.unpack_from("<Q", flipped, 64)[0]
        if n > image.PAYLOAD_MAX:
            return Reason.MALFORMED
        return Reason.TRUNCATED if n > len(data) - 128 else Reason.MALFORMED
    if 72 <= offset < 104:
        return Reason.HASH_MISMATCH                      # the header names another payload
    return Reason.BAD_SIGNATURE                          # version, rollback, build time: not what was signed


@pytest.fixture(scope="module")
def keys(key):
    return Keyring([key.public_key()])


def test_the_untouched_image_verifies(signed, keys):
    data, sig = signed
    v = verify(data, sig, keys, TARGET, min_rollback=7)
    assert v.ok and v.reason is Reason.OK and v.header.version_str == "1.4.2"
    assert "target:capbox-fpga1" in v.trusted_comment


def test_every_header_byte_flipped(signed, keys):
    data, sig = signed
    seen = set()
    for offset in range(image.HEADER_LEN):
        bad = bytearray(data)
        bad[offset] ^= 0xFF
        want = expected_for_header_flip(data, offset)
        v = verify(bytes(bad), sig, keys, TARGET)
        assert v.reason is want, f"byte {offset}: {v.reason} ({v.message}), wanted {want}"
        seen.add(want)
    assert seen == {Reason.BAD_MAGIC, Reason.UNSUPPORTED_FORMAT, Reason.MALFORMED, Reason.TRUNCATED,
                    Reason.HASH_MISMATCH, Reason.BAD_SIGNATURE}


def test_a_sample_of_payload_bytes_flipped(signed, keys):
    data, sig = signed
    rng = random.Random(8)
    offsets = {128, len(data) - 1, *rng.sample(range(129, len(data) - 1), 62)}
    for offset in sorted(offsets):
        for mask in (0x01, 0x80):
            bad = bytearray(data)
            bad[offset] ^= mask
            assert verify(bytes(bad), sig, keys, TARGET).reason is Reason.HASH_MISMATCH, offset


@pytest.mark.parametrize("keep", [0, 1, 4, 8, 64, 127, 128, 129, -1000, -1])
def test_truncated_images(signed, keys, keep):
    data, sig = signed
    v = verify(data[:keep], sig, keys, TARGET)
    assert v.reason is Reason.TRUNCATED and not v.ok


def test_bytes_after_the_payload(signed, keys):
    data, sig = signed
    assert verify(data + b"\0", sig, keys, TARGET).reason is Reason.MALFORMED


def test_a_signed_image_whose_payload_is_not_the_header_s(payload, key, keys):
    """A vendor signed an inconsistent image: the hash check catches it even though the signature holds."""
    data = bytearray(make_image(payload))
    data[72] ^= 1
    sig = key.sign(bytes(data), "inconsistent").to_text()
    assert verify(bytes(data), sig, keys, TARGET).reason is Reason.HASH_MISMATCH


def test_unknown_key(signed, other_key):
    data, sig = signed
    v = verify(data, sig, Keyring([other_key.public_key()]), TARGET)
    assert v.reason is Reason.UNKNOWN_KEY and v.key_id in v.message
    assert verify(data, sig, Keyring(), TARGET).reason is Reason.UNKNOWN_KEY


def test_a_key_with_the_trusted_id_but_another_secret(signed, key, other_key):
    data, sig = signed
    impostor = minisign.PublicKey(key.key_id, other_key.public_key().key)
    assert verify(data, sig, Keyring([impostor]), TARGET).reason is Reason.BAD_SIGNATURE


def test_signature_bytes_and_trusted_comment_tampered(signed, keys):
    data, sig = signed
    lines = sig.splitlines()
    raw = bytearray(base64.b64decode(lines[1]))
    for i in (10, 40, 73):                              # inside the 64-byte signature
        bad = bytearray(raw)
        bad[i] ^= 4
        text = "\n".join([lines[0], base64.b64encode(bytes(bad)).decode(), *lines[2:]])
        assert verify(data, text, keys, TARGET).reason is Reason.BAD_SIGNATURE
    text = "\n".join([*lines[:2], lines[2].replace("rollback:7", "rollback:9"), lines[3]])
    assert verify(data, text, keys, TARGET).reason is Reason.BAD_SIGNATURE
    # the untrusted comment is free to change
    assert verify(data, "\n".join(["untrusted comment: anything", *lines[1:]]), keys, TARGET).ok
    # a prehashed signature passed off as legacy (the algorithm bytes are not signed) fails
    raw[:2] = b"Ed"
    text = "\n".join([lines[0], base64.b64encode(bytes(raw)).decode(), *lines[2:]])
    assert verify(data, text, keys, TARGET).reason is Reason.BAD_SIGNATURE


def test_wrong_target(payload, key, keys):
    data = make_image(payload, target="capbox-fpga2")
    sig = key.sign(data, "for another board").to_text()
    v = verify(data, sig, keys, TARGET)
    assert v.reason is Reason.WRONG_TARGET
    assert verify(data, sig, keys, "capbox-fpga2").ok
    assert verify(data, sig, keys, None).ok             # no target asked: any


def test_rollback_and_its_override(signed, keys):
    data, sig = signed                                  # rollback index 7
    assert verify(data, sig, keys, TARGET, min_rollback=7).ok
    v = verify(data, sig, keys, TARGET, min_rollback=8)
    assert v.reason is Reason.ROLLBACK and "7" in v.message
    v = verify(data, sig, keys, TARGET, min_rollback=8, allow_rollback=True)
    assert v.ok and v.rollback_override
    # the cheaper refusals still come first under an override
    assert verify(data[:-1], sig, keys, TARGET, 8, True).reason is Reason.TRUNCATED


def test_slot_state_keeps_the_floor(tmp_path, signed, keys, payload, key):
    state = SlotState(tmp_path / "fw" / "state.json")
    assert state.floor(TARGET) == 0
    data, sig = signed
    state.record("fpga", verify(data, sig, keys, TARGET), "/dev/shm/x")
    assert state.floor(TARGET) == 7
    older = make_image(payload, "1.0.0", 3)
    v = verify(older, key.sign(older, "old").to_text(), keys, TARGET, state.floor(TARGET), allow_rollback=True)
    state.record("fpga", v, "/dev/shm/x", "rollback override: field test")
    snap = SlotState(tmp_path / "fw" / "state.json").snapshot()
    assert snap["rollback_floor"] == {TARGET: 7}        # an override never lowers the floor
    assert snap["slots"]["fpga"]["version"] == "1.0.0" and snap["slots"]["fpga"]["rollback_override"]
    assert [h["note"] for h in snap["history"]] == ["", "rollback override: field test"]
    with pytest.raises(FirmwareError, match="ok"):
        state.record("fpga", verify(data[:-1], sig, keys, TARGET))


def test_an_unreadable_state_fails_closed(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("{not json")
    with pytest.raises(FirmwareError, match="refusing to guess"):
        SlotState(path).floor(TARGET)
