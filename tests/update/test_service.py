"""Install, trial boot, commit and fallback on a box made of files
(tests/update/conftest.py): the update service and the boot loader's rules
together, boot after boot."""
import hashlib

import pytest

from agent.errors import AgentError
from firmware import rootslots as slots
from firmware.slots import SlotState


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.t += s


def guard(box, statuses, timeout=30, stable=6, poll=2):
    """The guard of a trial boot with a health probe answering `statuses` in turn."""
    it = iter(statuses)
    last = [None]

    def probe():
        last[0] = next(it, last[0])
        return last[0]
    clock = Clock()
    return box.service().guard(probe, timeout, stable, poll, clock=clock, sleep=clock.sleep)


def test_update_commit_then_broken_update_falls_back(box, make_bundle):
    svc = box.service()
    st = svc.status()
    assert st["image"] and st["booted_slot"] == "a" and st["committed_slot"] == "a" and st["trial"] is None
    good = make_bundle("2.0.0", 2)
    r = svc.install(good.path, good.signature)
    assert r["slot"] == "b" and r["version"] == "2.0.0"
    assert box.parts["b"].read_bytes()[:len(good.rootfs)] == good.rootfs
    assert (box.esp / "EFI/Linux/capbox-b.efi").read_bytes().startswith(b"MZ uki 2.0.0")
    assert box.oneshot() == "capbox-b.efi"
    assert (box.cfg.data_dir / "update" / "trial").read_text().strip() == "b"
    assert svc.status()["slots"]["b"]["status"] == "installed"

    assert box.boot() == "b" and box.running["version"] == "2.0.0"       # the one trial boot
    assert box.oneshot() is None                                         # spent
    assert guard(box, ["no answer", "starting", "healthy"]) is True
    st = box.service().status()
    assert st["committed_slot"] == "b" and st["slots"]["b"]["status"] == "good" and st["trial"] is None
    assert "default capbox-b.efi" in (box.esp / "loader/loader.conf").read_text()
    assert not (box.cfg.data_dir / "update" / "trial").exists()
    assert SlotState(box.cfg.firmware_dir / "state.json").floor("capbox-x86_64") == 2
    assert box.boot() == "b"                                             # and it stays

    broken = make_bundle("2.1.0", 3, broken=True)
    r = box.service().install(broken.path, broken.signature)
    assert r["slot"] == "a"
    assert box.boot() == "a" and box.running["broken"]
    assert guard(box, ["degraded", "unhealthy"], timeout=30) is False    # the unit's FailureAction reboots
    st = box.service().status()
    assert st["slots"]["a"]["status"] == "bad" and "not healthy" in st["slots"]["a"]["reason"]
    assert box.boot() == "b" and box.running["version"] == "2.0.0"       # fell back by itself
    st = box.service().status()
    assert st["booted_slot"] == "b" and st["committed_slot"] == "b" and st["trial"] is None
    assert [h["event"] for h in st["history"]][-3:] == ["trial_armed", "trial_boot", "fell_back"]
    assert SlotState(box.cfg.firmware_dir / "state.json").floor("capbox-x86_64") == 2   # never raised by 2.1.0


def test_trial_that_never_reaches_userspace(box, make_bundle):
    made = make_bundle("2.0.0", 2)
    box.service().install(made.path, made.signature)
    box.boot()                       # b: the kernel panics before the agent; panic=10 reboots
    assert box.boot() == "a"         # the one-shot entry is spent: the committed slot starts
    st = box.service().status()
    assert st["slots"]["b"]["status"] == "bad" and st["trial"] is None and st["committed_slot"] == "a"


def test_health_must_hold_for_the_stable_period(box, make_bundle):
    made = make_bundle("2.0.0", 2)
    box.service().install(made.path, made.signature)
    box.boot()
    # healthy, then a relapse, each time for less than 6 s: never committed within 20 s
    assert guard(box, ["healthy", "healthy", "unhealthy"] * 10, timeout=20, stable=6) is False
    assert box.service().status()["slots"]["b"]["status"] == "bad"


def test_guard_on_an_ordinary_boot_does_nothing(box):
    assert guard(box, []) is True
    assert box.service().status()["committed_slot"] == "a"


def test_unknown_key_writes_nothing(box, make_bundle, stranger):
    svc = box.service()
    svc.status()
    before = box.snapshot()
    made = make_bundle("2.0.0", 2, signer=stranger)
    with pytest.raises(AgentError) as e:
        svc.install(made.path, made.signature)
    assert e.value.code == "UPDATE_REJECTED" and e.value.details["reason"] == "unknown_key"
    assert box.snapshot() == before


@pytest.mark.parametrize("case", ["tampered", "rollback", "wrong_target"])
def test_other_refusals_write_nothing(case, box, make_bundle):
    svc = box.service()
    first = make_bundle("2.0.0", 5)
    svc.install(first.path, first.signature)
    box.boot()
    guard(box, ["healthy"] * 10)                       # floor 5 now
    before = box.snapshot()
    made = make_bundle("3.0.0", 4 if case == "rollback" else 6, target="x" if case == "wrong_target" else "capbox-x86_64")
    if case == "tampered":
        data = bytearray(made.path.read_bytes())
        data[300] ^= 1
        made.path.write_bytes(bytes(data))
    with pytest.raises(AgentError) as e:
        box.service().install(made.path, made.signature)
    assert e.value.details["reason"] == {"tampered": "hash_mismatch", "rollback": "rollback",
                                         "wrong_target": "wrong_target"}[case]
    assert box.snapshot() == before


def test_rollback_override_needs_a_reason(box, make_bundle):
    svc = box.service()
    older = make_bundle("0.9.0", 0)
    with pytest.raises(AgentError) as e:
        svc.install(older.path, older.signature, allow_rollback=True)
    assert e.value.code == "VALIDATION_ERROR"
    SlotState(box.cfg.firmware_dir / "state.json")      # floor 0 here: an index-0 bundle passes as it is
    assert svc.install(older.path, older.signature)["slot"] == "b"


def test_no_second_install_during_a_trial(box, make_bundle):
    svc = box.service()
    made = make_bundle("2.0.0", 2)
    svc.install(made.path, made.signature)
    with pytest.raises(AgentError) as e:
        svc.install(made.path, made.signature)
    assert e.value.code == "CONFLICT"
    box.boot()
    with pytest.raises(AgentError) as e:                # on the trial boot itself
        box.service().install(made.path, made.signature)
    assert e.value.code == "CONFLICT"


def test_write_failure_leaves_the_slot_bad_and_unarmed(box, make_bundle):
    made = make_bundle("2.0.0", 2)
    (box.esp / "EFI" / "Linux" / "capbox-b.efi").rename(box.root / "old-b.efi")
    (box.esp / "EFI" / "Linux" / "capbox-b.efi").mkdir()     # the UKI cannot be replaced: fails mid-way
    with pytest.raises(AgentError) as e:
        box.service().install(made.path, made.signature)
    assert e.value.code == "UPDATE_FAILED"
    st = box.service().status()
    assert st["slots"]["b"]["status"] == "bad" and st["trial"] is None and box.oneshot() is None
    assert box.boot() == "a"
    box.parts["b"].rename(box.root / "gone")                   # and a partition that is not there
    with pytest.raises(AgentError) as e:
        box.service().install(made.path, made.signature)
    assert e.value.code == "UPDATE_FAILED"


def test_status_reports_the_partitions(box, make_bundle):
    st = box.service().status()
    fp = st["slots"]["b"]["rootfs"]
    assert fp["filesystem"] == "squashfs" and st["slots"]["a"]["partition"] == str(box.parts["a"])
    made = make_bundle("2.0.0", 2)
    box.service().install(made.path, made.signature)
    assert box.service().status()["slots"]["b"]["rootfs"] != fp
    assert box.service().status()["slots"]["b"]["rootfs_sha256"] == hashlib.sha256(made.rootfs).hexdigest()


def test_not_an_image(tmp_path, key):
    from agent import config
    from firmware.boot import Platform
    from agent.software.system import UpdateService
    cfg = config.load(None, env={}, overrides={"agent": {"data_dir": str(tmp_path)}})
    svc = UpdateService(cfg, Platform(boot_env=tmp_path / "none", release=tmp_path / "none.json"))
    st = svc.status()
    assert st["image"] is False and st["slots"] == {}
    with pytest.raises(AgentError) as e:
        svc.install(tmp_path / "x", "sig")
    assert e.value.code == "SERVICE_UNAVAILABLE"


def test_efi_variable_encoding(box):
    box.platform.set_efivar("LoaderEntryOneShot", slots.entry("b"))
    raw = (box.efivars / "LoaderEntryOneShot-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f").read_bytes()
    assert raw == b"\x07\x00\x00\x00" + "capbox-b.efi\0".encode("utf-16-le")
    box.platform.disarm_trial()
    assert box.oneshot() is None


def test_slot_refused_by_the_initramfs_is_bad_and_the_other_committed(box):
    """What image/initramfs's capbox/slot does when slot a fails dm-verity: the slot's name
    in update/verity-failed on the data partition, the one-shot entry on b, a reset."""
    box.service().status()
    (box.data_dir / "update" / "verity-failed").write_text("a\n")
    box.platform.arm_trial("b")
    assert box.boot() == "b"
    st = box.service().status()
    assert st["booted_slot"] == "b" and st["committed_slot"] == "b" and st["trial"] is None
    assert st["slots"]["a"]["status"] == "bad" and "dm-verity" in st["slots"]["a"]["reason"]
    assert st["history"][-1]["event"] == "verity_refused"
    assert not (box.data_dir / "update" / "verity-failed").exists()
    assert box.boot() == "b"                    # the boot loader's default is the good slot now
    assert box.service().status()["slots"]["a"]["status"] == "bad"
