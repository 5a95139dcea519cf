"""The image format: layout, round trip, and what build refuses."""
import hashlib
import struct

import pytest

from firmware import image
from firmware.errors import FirmwareError, Reason
from tests.firmware.conftest import TARGET, make_image


def test_header_layout_is_the_documented_one(payload):
    data = make_image(payload, "1.4.2", 7)
    assert len(data) == 128 + len(payload)
    assert data[:4] == b"CBFW"
    assert struct.unpack_from("<HH", data, 4) == (1, 128)
    assert data[8:40] == TARGET.encode().ljust(32, b"\0")
    assert struct.unpack_from("<HHHH", data, 40) == (1, 4, 2, 0)
    assert struct.unpack_from("<IIQQ", data, 48) == (7, 0, 1_790_000_000, len(payload))
    assert data[72:104] == hashlib.sha256(payload).digest()
    assert data[104:128] == bytes(24)
    assert data[128:] == payload


def test_round_trip(payload):
    header, body = image.split(make_image(payload, "65535.0.12", 4294967295))
    assert (header.target, header.version, header.rollback, header.payload_len) == \
        (TARGET, (65535, 0, 12), 4294967295, len(payload))
    assert header.version_str == "65535.0.12"
    assert body == payload and image.payload_matches(header, body)
    assert header.as_dict()["build_time_iso"] == "2026-09-21T14:13:20Z"


@pytest.mark.parametrize("kwargs, text", [
    ({"version": "1.2"}, "X.Y.Z"), ({"version": "1.2.65536"}, "X.Y.Z"), ({"version": "a.b.c"}, "X.Y.Z"),
    ({"target": ""}, "target"), ({"target": "x" * 33}, "target"), ({"target": "bad name"}, "target"),
    ({"rollback": -1}, "rollback"), ({"rollback": 1 << 32}, "rollback"),
])
def test_build_refuses_bad_fields(payload, kwargs, text):
    args = {"payload": payload, "target": TARGET, "version": "1.0.0", "rollback": 0, **kwargs}
    with pytest.raises(FirmwareError, match=text):
        image.build(**args)


def test_build_refuses_an_empty_payload():
    with pytest.raises(FirmwareError, match="empty"):
        image.build(b"", TARGET, "1.0.0", 0)


@pytest.mark.parametrize("cut, reason", [(0, Reason.TRUNCATED), (3, Reason.TRUNCATED), (7, Reason.TRUNCATED),
                                         (100, Reason.TRUNCATED), (127, Reason.TRUNCATED)])
def test_short_headers(payload, cut, reason):
    with pytest.raises(FirmwareError) as e:
        image.parse_header(make_image(payload)[:cut])
    assert e.value.reason is reason
