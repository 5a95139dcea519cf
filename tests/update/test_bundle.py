"""Update bundles: built, signed, verified streaming; every refusal with its
reason; the manifest must agree with the signed header; the real minisign
signs and verifies them too."""
import hashlib
import io
import json
import tarfile

import pytest

from firmware import bundle
from firmware import image
from firmware.errors import Reason
from firmware.keyring import Keyring
from tests.firmware.conftest import run
from tests.update.conftest import TARGET


def verify(made, keys, target=TARGET, floor=0, allow=False, signature=None):
    with open(made.path, "rb") as f:
        return bundle.verify(f, signature or made.signature, keys, target, floor, allow)


@pytest.fixture
def keys(key):
    return Keyring([key.public_key()])


def test_good_bundle_verifies_and_its_members_copy_out(make_bundle, keys):
    made = make_bundle("2.1.0", 4)
    verdict, contents = verify(made, keys)
    assert verdict.ok and verdict.header.version_str == "2.1.0" and verdict.header.rollback == 4
    m = contents.manifest
    assert (m["target"], m["version"], m["rollback_index"], m["build_id"]) == (TARGET, "2.1.0", 4, "test-2.1.0")
    assert m["rootfs"]["sha256"] == hashlib.sha256(made.rootfs).hexdigest()
    out = io.BytesIO()
    with open(made.path, "rb") as f:
        bundle.copy_member(f, contents.rootfs, out)
    assert out.getvalue() == made.rootfs
    # the payload is a plain tar after the 128-byte header
    with tarfile.open(fileobj=io.BytesIO(made.path.read_bytes()[image.HEADER_LEN:])) as t:
        assert t.getnames() == ["manifest.json", "rootfs.img", "capbox.efi"]


@pytest.mark.parametrize("case, reason", [
    ("unknown_key", Reason.UNKNOWN_KEY), ("tampered", Reason.HASH_MISMATCH), ("truncated", Reason.TRUNCATED),
    ("wrong_target", Reason.WRONG_TARGET), ("rollback", Reason.ROLLBACK), ("legacy", Reason.BAD_SIGNATURE),
    ("garbage_signature", Reason.MALFORMED_SIGNATURE), ("other_signature", Reason.BAD_SIGNATURE),
    ("not_an_image", Reason.BAD_MAGIC)])
def test_refusals(case, reason, make_bundle, keys, stranger, key):
    made = make_bundle("2.0.0", 3, signer=stranger if case == "unknown_key" else None,
                       target="other-box" if case == "wrong_target" else TARGET, legacy=case == "legacy")
    sig = None
    if case == "tampered":
        data = bytearray(made.path.read_bytes())
        data[-20000] ^= 0x40
        made.path.write_bytes(bytes(data))
    elif case == "truncated":
        made.path.write_bytes(made.path.read_bytes()[:-1000])
    elif case == "garbage_signature":
        sig = "untrusted comment: x\nnot base64\n"
    elif case == "other_signature":
        sig = key.sign(b"another file", "x").to_text()
    elif case == "not_an_image":
        made.path.write_bytes(b"PK\x03\x04" + made.path.read_bytes()[4:])
    verdict, contents = verify(made, keys, floor=5 if case == "rollback" else 0, signature=sig)
    assert verdict.reason is reason and contents is None


def test_rollback_override(make_bundle, keys):
    verdict, contents = verify(make_bundle("1.0.0", 2), keys, floor=3, allow=True)
    assert verdict.ok and verdict.rollback_override and contents is not None


def _repack(made, key, edit):
    """Rebuild a signed bundle whose manifest `edit` changed (the header stays honest)."""
    data = made.path.read_bytes()
    header = image.parse_header(data)
    src = tarfile.open(fileobj=io.BytesIO(data[image.HEADER_LEN:]))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as dst:
        for m in src.getmembers():
            body = src.extractfile(m).read()
            if m.name == "manifest.json":
                manifest = json.loads(body)
                edit(manifest)
                body = json.dumps(manifest).encode()
                m.size = len(body)
            dst.addfile(m, io.BytesIO(body))
    new = image.build(out.getvalue(), header.target, header.version_str, header.rollback, header.build_time)
    made.path.write_bytes(new)
    made.signature = key.sign(new, "repacked").to_text()
    return made


@pytest.mark.parametrize("edit", [
    lambda m: m.update(version="9.9.9"),                  # the manifest claims another version than the header
    lambda m: m.update(rollback_index=99),
    lambda m: m["rootfs"].update(size=5),
    lambda m: m["uki"].update(file="missing.efi"),
    lambda m: m.pop("rootfs"),
    lambda m: m.update(format=2),
])
def test_signed_but_inconsistent_manifest_is_refused(edit, make_bundle, keys, key):
    made = _repack(make_bundle("2.0.0", 3), key, edit)
    verdict, contents = verify(made, keys)
    assert not verdict.ok and contents is None
    assert verdict.reason in (Reason.MALFORMED, Reason.UNSUPPORTED_FORMAT)


def test_member_changed_after_verification_is_caught(make_bundle, keys):
    made = make_bundle("2.0.0", 3)
    verdict, contents = verify(made, keys)
    data = bytearray(made.path.read_bytes())
    data[contents.rootfs.offset + 10] ^= 1
    made.path.write_bytes(bytes(data))
    with open(made.path, "rb") as f, pytest.raises(bundle.BundleError) as e:
        bundle.copy_member(f, contents.rootfs, io.BytesIO())
    assert e.value.reason is Reason.HASH_MISMATCH


def test_minisign_signs_and_verifies_bundles(make_bundle, minisign_bin, key, tmp_path):
    """A vendor may sign with the stock minisign; minisign -V checks what capbox signs."""
    made = make_bundle("2.0.0", 3)
    run(minisign_bin, "-Vm", str(made.path), "-x", f"{made.path}.minisig", "-P", key.public_key().blob())
    run(minisign_bin, "-G", "-W", "-p", str(tmp_path / "v.pub"), "-s", str(tmp_path / "v.key"))
    run(minisign_bin, "-S", "-s", str(tmp_path / "v.key"), "-m", str(made.path), "-x", str(tmp_path / "v.sig"))
    keys = Keyring.from_file(tmp_path / "v.pub")
    verdict, contents = verify(made, keys, signature=(tmp_path / "v.sig").read_text())
    assert verdict.ok and contents.version == "2.0.0"
