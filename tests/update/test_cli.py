"""`capbox update build|verify|install|status|guard` as a person runs them,
against a box made of files (CAPBOX_SYSTEM_ROOT): the vendor builds and signs
with keys made by `capbox fw keygen`, the box installs, and every refusal
leaves every byte as it was."""
import json
import os
import subprocess
import sys

import pytest

from firmware.errors import Reason
from tests.conftest import ROOT
from tests.update.conftest import TARGET, rootfs_image


def capbox(box, *args, check=True) -> subprocess.CompletedProcess:
    env = dict(os.environ, CAPBOX_SYSTEM_ROOT=str(box.root))
    r = subprocess.run([sys.executable, "-m", "agent", *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=60)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def on_box(box, *args, check=True) -> subprocess.CompletedProcess:
    """An `update` command against the box's data directory."""
    action, *rest = args
    return capbox(box, "update", action, "--data-dir", box.data_dir, *rest, check=check)


@pytest.fixture
def vendor(box, tmp_path):
    """A signing key made with the CLI and trusted on the box, and a way to build signed bundles."""
    secret, public = tmp_path / "vendor.key", tmp_path / "vendor.pub"
    capbox(box, "fw", "keygen", "-s", secret, "-p", public)
    capbox(box, "fw", "trust", public, "--data-dir", box.data_dir)

    def build(version: str, rollback: int, key=secret, name=None):
        d = tmp_path / (name or version)
        d.mkdir()
        (d / "rootfs.img").write_bytes(rootfs_image(version, rollback))
        (d / "capbox.efi").write_bytes(b"MZ uki " + version.encode())
        out = d / f"capbox-{version}.bundle"
        r = capbox(box, "update", "build", "--rootfs", d / "rootfs.img", "--uki", d / "capbox.efi", "--version",
                   version, "--rollback", rollback, "--target", TARGET, "--build-id", f"cli-{version}", "--key",
                   key, "-o", out)
        assert f"{TARGET} {version}, rollback index {rollback}" in r.stdout and "signed" in r.stdout
        return out
    build.secret = secret
    return build


def test_build_verify_install_then_status_shows_the_trial(box, vendor):
    bundle = vendor("2.0.0", 2)
    r = on_box(box, "verify", bundle, "--json")
    v = json.loads(r.stdout)
    assert v["valid"] and v["reason"] == "ok" and v["manifest"]["version"] == "2.0.0"

    r = on_box(box, "install", bundle)
    assert "slot b now holds 2.0.0" in r.stdout and "rebooting" in r.stdout
    assert box.platform.reboot_request.exists()                 # the reboot, on a box made of files
    assert box.oneshot() == "capbox-b.efi"
    assert box.parts["b"].read_bytes().startswith(rootfs_image("2.0.0", 2))

    r = on_box(box, "status")
    assert "from slot a; committed slot a" in r.stdout and "trial      slot b 2.0.0" in r.stdout
    assert box.boot() == "b"
    st = json.loads(on_box(box, "status", "--json").stdout)
    assert st["booted_slot"] == "b" and st["committed_slot"] == "a" and st["slots"]["b"]["status"] == "trying"
    assert st["release"]["version"] == "2.0.0"


def test_install_without_reboot(box, vendor):
    r = on_box(box, "install", vendor("2.0.0", 2), "--no-reboot", "--json")
    assert json.loads(r.stdout)["slot"] == "b" and "rebooting" not in r.stdout
    assert not box.platform.reboot_request.exists()


@pytest.mark.parametrize("case", ["unknown_key", "tampered", "unsigned", "rollback"])
def test_refused_installs_write_nothing(case, box, vendor, tmp_path):
    if case == "rollback":                       # a committed update at index 5 raises the floor
        on_box(box, "install", vendor("2.0.0", 5), "--no-reboot")
        box.boot()
        box.service().reconcile()                # the trial boot, seen
        box.service().commit()
        box.boot()
    if case == "unknown_key":
        stranger = tmp_path / "stranger.key"
        capbox(box, "fw", "keygen", "-s", stranger, "-p", tmp_path / "stranger.pub")
        bundle = vendor("3.0.0", 6, key=stranger)
    else:
        bundle = vendor("3.0.0", 4 if case == "rollback" else 6, name=f"new-{case}")
    if case == "tampered":
        data = bytearray(bundle.read_bytes())
        data[len(data) // 2] ^= 1
        bundle.write_bytes(bytes(data))
    if case == "unsigned":
        os.unlink(f"{bundle}.minisig")
    box.service().reconcile()                    # this boot recorded: bookkeeping, not the update
    before = box.snapshot()
    r = on_box(box, "install", bundle, check=False)
    if case == "unsigned":
        assert r.returncode == 1 and "minisig" in r.stderr
    else:
        reason = {"tampered": "hash_mismatch"}.get(case, case)
        assert r.returncode == Reason[reason.upper()].value, r.stderr
        assert f"REFUSED ({reason})" in r.stderr and "nothing was written" in r.stderr
        assert on_box(box, "verify", bundle, check=False).returncode == r.returncode
    assert box.snapshot() == before and not box.platform.reboot_request.exists()


def test_guard_records_a_slot_whose_configuration_does_not_load(box, vendor, tmp_path):
    on_box(box, "install", vendor("2.0.0", 2), "--no-reboot")
    box.boot()
    broken = tmp_path / "broken.toml"
    broken.write_text('[api]\nlisten = "no port here"\n')
    r = on_box(box, "guard", "--config", broken, check=False)
    assert r.returncode == 1                     # the unit's FailureAction reboots
    st = box.service().status()
    assert st["slots"]["b"]["status"] == "bad" and "configuration does not load" in st["slots"]["b"]["reason"]
    assert st["trial"] is None and box.boot() == "a"


def test_status_off_the_image(tmp_path):
    r = subprocess.run([sys.executable, "-m", "agent", "update", "status", "--data-dir", str(tmp_path)], cwd=ROOT,
                       env=dict(os.environ, CAPBOX_SYSTEM_ROOT=str(tmp_path / "nothing")), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "not running from a capbox disk image" in r.stdout
