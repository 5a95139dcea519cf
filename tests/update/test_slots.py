"""The slot state machine alone: try once, commit on health, fall back."""
import pytest

from firmware import rootslots as slots
from firmware.rootslots import SlotError, State, StateFile

INFO = {"version": "2.0.0", "rollback_index": 2, "target": "capbox-x86_64", "bundle_sha256": "ab" * 32}
VERDICT = {"header": {"rollback_index": 2}}


def armed(booted="a") -> State:
    st = slots.initial(booted, {"version": "1.0.0", "rollback_index": 1, "target": "capbox-x86_64"})
    st.boot(booted, "boot-0")
    target = st.begin_write(booted)
    st.written(target, INFO, VERDICT)
    return st


def events(st: State) -> list:
    return [h["event"] for h in st.history]


def test_initial_state_trusts_the_running_slot():
    st = slots.initial("b", {"version": "1.0.0", "rollback_index": 1})
    assert st.committed == "b" and st.slots["b"].status == "good" and st.slots["b"].version == "1.0.0"
    assert st.slots["a"].status == "empty" and st.trial is None


def test_happy_path_try_once_then_commit():
    st = armed()
    assert st.trial.slot == "b" and st.slots["b"].status == "installed" and st.committed == "a"
    assert st.boot("b", "boot-1") is True                 # the trial boot
    assert st.slots["b"].status == "trying" and st.trial.boot_id == "boot-1"
    assert st.boot("b", "boot-1") is True                 # seen again in the same boot: still to judge
    assert st.healthy("b") == VERDICT
    assert st.committed == "b" and st.trial is None and st.slots["b"].status == "good"
    assert st.slots["a"].status == "good"                 # kept as the fallback
    assert events(st)[-4:] == ["write_started", "trial_armed", "trial_boot", "committed"]


def test_unhealthy_trial_falls_back_and_the_next_boot_is_plain():
    st = armed()
    st.boot("b", "boot-1")
    st.unhealthy("b", "not healthy in 90 s")
    assert st.slots["b"].status == "bad" and st.slots["b"].reason == "not healthy in 90 s"
    assert st.trial is None and st.committed == "a"
    assert st.boot("a", "boot-2") is False
    assert st.slots["b"].status == "bad" and events(st)[-1] == "fell_back"


def test_trial_that_never_came_up_is_found_on_the_committed_slot():
    st = armed()
    assert st.boot("a", "boot-1") is False                # the boot loader started a instead (panic, hang)
    assert st.slots["b"].status == "bad" and "did not come up" in st.slots["b"].reason
    assert st.trial is None and st.committed == "a"


def test_trial_that_booted_but_never_reached_a_verdict():
    st = armed()
    st.boot("b", "boot-1")
    st.boot("a", "boot-2")                                # the guard's deadline rebooted it
    assert st.slots["b"].status == "bad" and "not healthy in time" in st.slots["b"].reason


def test_second_boot_of_the_trial_slot_without_commit_is_a_failure():
    st = armed()
    st.boot("b", "boot-1")
    st.boot("b", "boot-2", loader_default="a")
    assert st.slots["b"].status == "bad" and st.trial is None


def test_commit_interrupted_after_the_boot_loader_was_switched():
    st = armed()
    st.boot("b", "boot-1")
    st.boot("b", "boot-2", loader_default="b")            # loader.conf said b, the state had not caught up
    assert st.committed == "b" and st.slots["b"].status == "good" and st.trial is None


def test_no_update_while_a_trial_is_pending_or_off_the_committed_slot():
    st = armed()
    with pytest.raises(SlotError) as e:
        st.begin_write("a")
    assert e.value.code == "trial_pending"
    st.boot("b", "boot-1")
    st.unhealthy("b", "x")
    st.boot("a", "boot-2")
    assert st.begin_write("a") == "b"                     # after the fallback, b may be written again
    st2 = slots.initial("a", None)
    st2.committed = "b"
    with pytest.raises(SlotError) as e:
        st2.begin_write("a")
    assert e.value.code == "not_committed"


def test_write_failure_marks_the_slot_bad_and_arms_nothing():
    st = slots.initial("a", None)
    st.boot("a", "boot-0")
    target = st.begin_write("a")
    st.write_failed(target, "disk error")
    assert st.slots["b"].status == "bad" and st.trial is None
    with pytest.raises(SlotError) as e:
        st.written("b", INFO)
    assert e.value.code == "not_writing"


def test_healthy_or_unhealthy_without_a_trial():
    st = slots.initial("a", None)
    assert st.healthy("a") is None
    with pytest.raises(SlotError) as e:
        st.unhealthy("a", "x")
    assert e.value.code == "no_trial"
    armed_st = armed()
    with pytest.raises(SlotError) as e:
        armed_st.healthy("b")                             # written but never booted
    assert e.value.code == "not_booted"


def test_boot_loader_default_changed_by_hand_is_followed():
    st = slots.initial("a", None)
    st.boot("b", "boot-1", loader_default="b")
    assert st.committed == "b" and events(st)[-1] == "committed_by_loader"


def test_state_file_round_trip_and_fail_closed(tmp_path):
    f = StateFile(tmp_path / "update" / "state.json")
    assert f.load() is None
    st = armed()
    st.boot("b", "boot-1")
    with f.locked():
        f.save(st)
    back = f.load()
    assert back.to_dict() == st.to_dict()
    f.path.write_text("{not json")
    with pytest.raises(SlotError) as e:
        f.load()
    assert e.value.code == "bad_state"
    f.path.write_text('{"format": 99}')
    with pytest.raises(SlotError):
        f.load()


def test_names():
    assert slots.other("a") == "b" and slots.entry("b") == "capbox-b.efi"
    with pytest.raises(SlotError):
        slots.other("c")


def test_seed_is_the_factory_state(tmp_path):
    for name in ("root.img", "capbox.efi"):
        (tmp_path / name).write_bytes(name.encode())
    assert slots.main(["seed", str(tmp_path / "u"), "--version", "1.0.0", "--rollback", "3", "--target", "t",
                       "--build-id", "B", "--rootfs", str(tmp_path / "root.img"),
                       "--uki", str(tmp_path / "capbox.efi")]) == 0
    st = StateFile(tmp_path / "u" / "state.json").load()
    assert st.committed == "a" and st.trial is None
    assert all(s.status == "good" and s.version == "1.0.0" and s.rollback_index == 3 for s in st.slots.values())
