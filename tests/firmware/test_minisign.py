"""minisign compatibility, with the real minisign binary as the oracle, both
ways: what minisign signs verifies in capbox; what capbox signs verifies with
`minisign -V`.  Plus a published known-answer vector."""
import pathlib

import pytest

from firmware import minisign, sign
from firmware.errors import FirmwareError, Reason
from firmware.keyring import Keyring, read_public_key
from firmware.verify import check_signature, verify
from tests.firmware.conftest import TARGET, capbox, make_image, run

# The verification example of py-minisign's README: a legacy ("Ed") signature of b"test".
KAT_PUBLIC = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3"
KAT_SIGNATURE = (
    "untrusted comment: signature from minisign secret key\n"
    "RWQf6LRCGA9i59SLOFxz6NxvASXDJeRtuZykwQepbDEGt87ig1BNpWaVWuNrm73YiIiJbq71Wi+dP9eKL8OC351vwIasSSbXxwA=\n"
    "trusted comment: timestamp:1555779966\tfile:test\n"
    "QtKMXWyYcwdpZAlPF7tE2ENJkRd1ujvKjlj1m9RtHTBnZPa5WKU5uWRs5GoP5M/VqE81QFuMKI5k/SfNQUaOAA==\n")


@pytest.mark.parametrize("data, ok", [(b"test", True), (b"tesT", False), (b"", False)])
def test_known_answer(data, ok):
    key = minisign.parse_public_key(KAT_PUBLIC)
    sig = minisign.parse_signature(KAT_SIGNATURE)
    assert key.id_hex == minisign.key_id_hex(sig.key_id) and not sig.prehashed
    assert sig.trusted_comment == "timestamp:1555779966\tfile:test"
    assert (check_signature(data, sig, key) is None) is ok


@pytest.fixture
def minisign_pair(minisign_bin, tmp_path):
    """A key pair made by `minisign -G -W` (unencrypted)."""
    run(minisign_bin, "-G", "-W", "-p", "ms.pub", "-s", "ms.key", cwd=tmp_path)
    return tmp_path / "ms.pub", tmp_path / "ms.key"


@pytest.mark.parametrize("legacy", [False, True], ids=["prehashed", "legacy"])
def test_minisign_signs_capbox_verifies(minisign_bin, minisign_pair, tmp_path, payload, legacy):
    pub, sec = minisign_pair
    img = tmp_path / "fw.img"
    img.write_bytes(make_image(payload))
    run(minisign_bin, "-S", *(["-l"] if legacy else []), "-s", str(sec), "-m", str(img), "-t", "vendor build 42")
    signature = (tmp_path / "fw.img.minisig").read_text()
    keys = Keyring.from_file(pub)             # the minisign public key file, as it is
    v = verify(img.read_bytes(), signature, keys, TARGET)
    assert v.ok, v.message
    assert v.prehashed is (not legacy)
    assert v.trusted_comment == "vendor build 42"
    assert v.key_id == read_public_key(pub).id_hex
    # the same through the CLI, with the key file given as it is
    p = capbox("fw", "verify", str(img), "--pubkey", str(pub), "--target", TARGET, "--data-dir", str(tmp_path / "var"))
    assert "trusted comment: vendor build 42" in p.stdout


@pytest.mark.parametrize("legacy", [False, True], ids=["prehashed", "legacy"])
def test_capbox_signs_minisign_verifies(minisign_bin, tmp_path, payload, key, legacy):
    img = tmp_path / "fw.img"
    img.write_bytes(make_image(payload))
    (tmp_path / "k.pub").write_text(key.public_key().to_text())
    sig = key.sign(img.read_bytes(), "capbox trusted comment", prehashed=not legacy)
    (tmp_path / "fw.img.minisig").write_text(sig.to_text())
    p = run(minisign_bin, "-V", "-p", str(tmp_path / "k.pub"), "-m", str(img))
    assert "Signature and comment signature verified" in p.stdout
    assert "Trusted comment: capbox trusted comment" in p.stdout
    if not legacy:  # -H: minisign insists on the prehashed form
        run(minisign_bin, "-V", "-H", "-p", str(tmp_path / "k.pub"), "-m", str(img))
    # and minisign refuses it for a changed byte
    data = bytearray(img.read_bytes())
    data[200] ^= 1
    img.write_bytes(bytes(data))
    assert run(minisign_bin, "-V", "-p", str(tmp_path / "k.pub"), "-m", str(img), check=False).returncode != 0


def test_capbox_secret_key_works_in_minisign(minisign_bin, tmp_path, key):
    """capbox's unencrypted secret key file is one minisign -W signs with."""
    (tmp_path / "c.key").write_text(key.to_text())
    (tmp_path / "c.pub").write_text(key.public_key().to_text())
    (tmp_path / "f").write_bytes(b"firmware")
    run(minisign_bin, "-S", "-W", "-s", "c.key", "-m", "f", cwd=tmp_path)
    sig = minisign.parse_signature((tmp_path / "f.minisig").read_text())
    assert check_signature(b"firmware", sig, key.public_key()) is None
    # minisign -R recreates the very public key capbox wrote
    run(minisign_bin, "-R", "-W", "-s", "c.key", "-p", "r.pub", cwd=tmp_path)
    # (the comment may differ: minisign prints the key id without its leading zeros)
    remade, written = read_public_key(tmp_path / "r.pub"), read_public_key(tmp_path / "c.pub")
    assert (remade.key_id, remade.key) == (written.key_id, written.key)


def test_encrypted_minisign_key_signs_in_capbox(minisign_bin, tmp_path, payload):
    """A vendor's password-protected minisign key (scrypt) signs in capbox;
    minisign verifies the result.  A wrong password is refused."""
    run(minisign_bin, "-G", "-p", "e.pub", "-s", "e.key", input="vendor pw\nvendor pw\n", cwd=tmp_path)
    with pytest.raises(FirmwareError, match="wrong password"):
        sign.read_secret_key(tmp_path / "e.key", "not it")
    key = sign.read_secret_key(tmp_path / "e.key", "vendor pw")
    assert key.public_key().key == read_public_key(tmp_path / "e.pub").key
    img = tmp_path / "fw.img"
    img.write_bytes(make_image(payload))
    (tmp_path / "fw.img.minisig").write_text(key.sign(img.read_bytes(), "signed with the vendor key").to_text())
    run(minisign_bin, "-V", "-p", "e.pub", "-m", "fw.img", cwd=tmp_path)


@pytest.mark.parametrize("text", [
    "", "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GF",
    "untrusted comment: x\nnot base64!\n", "untrusted comment: x\nRWQf\nRWQf\n",
    "untrusted comment: x\nU2MAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",  # algorithm "Sc"
])
def test_bad_public_keys(text, tmp_path):
    path = tmp_path / "bad.pub"
    path.write_text(text)
    with pytest.raises(FirmwareError):
        read_public_key(path)
    (tmp_path / "ring").mkdir()
    path.rename(tmp_path / "ring" / "bad.pub")
    with pytest.raises(FirmwareError, match="bad.pub"):
        Keyring.from_dir(tmp_path / "ring")


def test_keyring_dir_finds_keys_by_id(tmp_path, key, other_key):
    ring = Keyring()
    for k in (key, other_key):
        ring.add(k.public_key(), tmp_path / "keys")
    loaded = Keyring.from_dir(tmp_path / "keys")
    assert len(loaded) == 2 and sorted(loaded.ids()) == sorted([key.public_key().id_hex, other_key.public_key().id_hex])
    assert loaded.find(key.key_id).key == key.public_key().key
    assert Keyring.from_dir(tmp_path / "none").find(key.key_id) is None


def test_malformed_signatures_are_refused_with_their_reason(signed, key):
    data, text = signed
    keys = Keyring([key.public_key()])
    lines = text.splitlines()
    cases = ["", "garbage", "\n".join(lines[:2]), "\n".join([lines[0], "!!", *lines[2:]]),
             "\n".join([lines[0], lines[1], "comment: x", lines[3]]), "\n".join([lines[0], lines[1][:-8], *lines[2:]]),
             text.replace("untrusted comment: ", "untrusted: "), text + "extra line\n", "x" * 20000]
    for bad in cases:
        assert verify(data, bad, keys, TARGET).reason is Reason.MALFORMED_SIGNATURE, bad[:60]


def test_cli_keygen_sign_verify_round_trip(minisign_bin, tmp_path, payload):
    """capbox fw build / keygen --trust / sign / verify / inspect, as a vendor and an operator run them."""
    (tmp_path / "payload.bin").write_bytes(payload)
    capbox("fw", "build", "payload.bin", "--target", TARGET, "--version", "2.0.1", "--rollback", "9",
           "-o", "fw.img", cwd=tmp_path)
    capbox("fw", "keygen", "--trust", "--data-dir", "var", cwd=tmp_path)
    assert (tmp_path / "capbox-fw.key").stat().st_mode & 0o777 == 0o600
    capbox("fw", "sign", "fw.img", "-t", "release 2.0.1", cwd=tmp_path)
    run(minisign_bin, "-V", "-p", "capbox-fw.pub", "-m", "fw.img", cwd=tmp_path)
    p = capbox("fw", "verify", "fw.img", "--data-dir", "var", cwd=tmp_path)
    assert "OK (ok)" in p.stdout and "trusted comment: release 2.0.1" in p.stdout
    p = capbox("fw", "verify", "fw.img", "--pubkey", "capbox-fw.pub", "--target", "other-board", "--data-dir",
               "var", cwd=tmp_path, status=Reason.WRONG_TARGET.value)
    assert "wrong_target" in p.stdout
    p = capbox("fw", "inspect", "fw.img", "--json", cwd=tmp_path)
    assert '"version": "2.0.1"' in p.stdout and '"payload_matches_header": true' in p.stdout
    pathlib.Path(tmp_path / "capbox-fw.pub").unlink()
    capbox("fw", "keygen", "--data-dir", "var", cwd=tmp_path, status=1)   # refuses to overwrite the secret key


def test_keygen_with_a_password_writes_a_key_minisign_can_use(minisign_bin, tmp_path, payload):
    """CAPBOX_FW_PASSWORD encrypts the secret key as `minisign -G` does (scrypt, 1 GiB):
    the real minisign signs with it given the password, and refuses a wrong one."""
    (tmp_path / "payload.bin").write_bytes(payload)
    capbox("fw", "build", "payload.bin", "--target", TARGET, "--version", "1.0.0", "--rollback", "1",
           "-o", "fw.img", cwd=tmp_path)
    p = capbox("fw", "keygen", cwd=tmp_path, env={"CAPBOX_FW_PASSWORD": "correct horse"})
    assert "encrypted" in p.stdout and "unencrypted" not in p.stdout
    f = minisign.parse_secret_key((tmp_path / "capbox-fw.key").read_text())
    assert f.encrypted and f.opslimit == sign.SCRYPT_OPSLIMIT and f.memlimit == sign.SCRYPT_MEMLIMIT
    run(minisign_bin, "-S", "-s", "capbox-fw.key", "-m", "fw.img", "-x", "by-minisign.sig",
        input="correct horse\n", cwd=tmp_path)
    run(minisign_bin, "-V", "-p", "capbox-fw.pub", "-m", "fw.img", "-x", "by-minisign.sig", cwd=tmp_path)
    wrong = run(minisign_bin, "-S", "-s", "capbox-fw.key", "-m", "fw.img", "-x", "wrong.sig",
                input="wrong\n", cwd=tmp_path, check=False)
    assert wrong.returncode != 0 and not (tmp_path / "wrong.sig").exists()
    # capbox signs with it too, and refuses without the password
    capbox("fw", "sign", "fw.img", cwd=tmp_path, env={"CAPBOX_FW_PASSWORD": "correct horse"})
    run(minisign_bin, "-V", "-p", "capbox-fw.pub", "-m", "fw.img", cwd=tmp_path)
    capbox("fw", "sign", "fw.img", cwd=tmp_path, env={"CAPBOX_FW_PASSWORD": "wrong"}, status=1)
