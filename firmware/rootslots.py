"""The A/B root slots: what each holds, which one the boot loader starts by
default (committed), which one is being tried, and what happened.

A state machine over one JSON file on the data partition; the boot loader
side (the default entry, the one-shot entry) is platform.py's.  A slot is

    good       holds a system that came up healthy (the committed one, or the one before)
    writing    an update is being written into it (a crash leaves it here: unusable)
    installed  written and verified, waiting for its one trial boot
    trying     booted once on trial, not yet healthy
    bad        failed: its write, its trial boot, or its health check
    empty      never written

and the transitions are

    begin_write(booted)   -> the other slot `writing`; refused while a trial is pending
    written(slot, info)   -> `installed`, trial armed (try once)
    write_failed(slot)    -> `bad`
    boot(booted, boot_id) -> on the trial slot: `trying`; on the other one: the trial
                             slot did not come up (boot loader fell back): `bad`
    healthy(booted)       -> the slot on trial is committed (`good`), the old one kept as fallback
    unhealthy(booted)     -> the slot on trial is `bad`; the next boot starts the committed one
    refused(slot, booted) -> the initramfs found `slot` changed on disk (dm-verity) and
                             booted the other: `bad`, and the booted slot is committed

Every transition appends to the history.  Nothing here touches a disk other
than the state file; tests drive it as the boots of a box would."""
import argparse
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import pathlib
import sys
import time
from typing import Optional

SLOTS = ("a", "b")
STATUSES = ("good", "writing", "installed", "trying", "bad", "empty")
HISTORY_MAX = 100
FORMAT = 1


class SlotError(Exception):
    """A transition the state does not allow; `code` for callers and tests."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def other(slot: str) -> str:
    if slot not in SLOTS:
        raise SlotError("unknown_slot", f"{slot!r} is not a slot ({', '.join(SLOTS)})")
    return "b" if slot == "a" else "a"


def entry(slot: str) -> str:
    """The boot loader entry (UKI file name on the ESP, EFI/Linux/) of a slot."""
    other(slot)
    return f"capbox-{slot}.efi"


@dataclasses.dataclass
class Slot:
    status: str = "empty"
    version: Optional[str] = None
    rollback_index: Optional[int] = None
    target: Optional[str] = None
    build_id: Optional[str] = None
    bundle_sha256: Optional[str] = None
    rootfs_sha256: Optional[str] = None
    uki_sha256: Optional[str] = None
    key_id: Optional[str] = None
    written_at: Optional[float] = None
    committed_at: Optional[float] = None
    reason: Optional[str] = None        # why it is bad


@dataclasses.dataclass
class Trial:
    slot: str
    from_slot: str
    version: Optional[str]
    armed_at: float
    boot_id: Optional[str] = None       # the boot that tried it, once seen
    booted_at: Optional[float] = None
    verdict: Optional[dict] = None      # the bundle's verdict (for the rollback floor at commit)


@dataclasses.dataclass
class State:
    committed: str = "a"
    slots: dict = dataclasses.field(default_factory=lambda: {s: Slot() for s in SLOTS})
    trial: Optional[Trial] = None
    last_boot: Optional[dict] = None    # {"slot", "boot_id", "at"}
    history: list = dataclasses.field(default_factory=list)

    # ---- (de)serialisation -------------------------------------------------------

    def to_dict(self) -> dict:
        return {"format": FORMAT, "committed": self.committed,
                "slots": {k: dataclasses.asdict(v) for k, v in self.slots.items()},
                "trial": dataclasses.asdict(self.trial) if self.trial else None,
                "last_boot": self.last_boot, "history": self.history[-HISTORY_MAX:]}

    @classmethod
    def from_dict(cls, d: dict) -> "State":
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise SlotError("bad_state", "not a slot state of format 1")
        names = {f.name for f in dataclasses.fields(Slot)}
        slots = {s: Slot(**{k: v for k, v in (d.get("slots") or {}).get(s, {}).items() if k in names})
                 for s in SLOTS}
        tnames = {f.name for f in dataclasses.fields(Trial)}
        trial = Trial(**{k: v for k, v in d["trial"].items() if k in tnames}) if d.get("trial") else None
        committed = d.get("committed", "a")
        other(committed)
        return cls(committed, slots, trial, d.get("last_boot"), list(d.get("history") or []))

    # ---- transitions -------------------------------------------------------------

    def _log(self, event: str, slot: str, **facts) -> None:
        self.history.append({"at": time.time(), "event": event, "slot": slot, **facts})
        del self.history[:-HISTORY_MAX]

    def begin_write(self, booted: str) -> str:
        """The slot an update goes to (the one not running), now `writing`."""
        target = other(booted)
        if self.trial is not None:
            raise SlotError("trial_pending", f"slot {self.trial.slot} is on trial: an update may follow only "
                                             "once it is committed or has fallen back")
        if booted != self.committed:
            # running the fallback by hand (or a half-done commit): the other slot is the committed one
            raise SlotError("not_committed", f"slot {booted} runs but slot {self.committed} is the committed one; "
                                             "writing it would leave no slot to fall back to")
        self.slots[target] = Slot(status="writing")
        self._log("write_started", target)
        return target

    def written(self, slot: str, info: dict, verdict: Optional[dict] = None) -> None:
        """Written and verified: armed for one trial boot."""
        s = self.slots[slot]
        if s.status != "writing":
            raise SlotError("not_writing", f"slot {slot} is {s.status}, not being written")
        names = {f.name for f in dataclasses.fields(Slot)}
        self.slots[slot] = Slot(**{k: v for k, v in info.items() if k in names and k != "status"},
                                status="installed", written_at=time.time())
        self.trial = Trial(slot, other(slot), info.get("version"), time.time(), verdict=verdict)
        self._log("trial_armed", slot, version=info.get("version"))

    def write_failed(self, slot: str, reason: str) -> None:
        self.slots[slot] = Slot(status="bad", reason=reason)
        if self.trial and self.trial.slot == slot:
            self.trial = None
        self._log("write_failed", slot, reason=reason)

    def boot(self, booted: str, boot_id: str, loader_default: Optional[str] = None) -> bool:
        """A boot seen (idempotent per boot_id).  `loader_default`: the slot the
        boot loader starts by default, when known.  True when this boot is a
        trial the guard must judge."""
        other(booted)
        if self.last_boot and self.last_boot.get("boot_id") == boot_id:
            return bool(self.trial and self.trial.slot == booted and self.trial.boot_id == boot_id)
        self.last_boot = {"slot": booted, "boot_id": boot_id, "at": time.time()}
        t = self.trial
        if t is None:
            if booted != self.committed and loader_default == booted:
                # the boot loader's default changed under us (by hand): follow it
                self.committed = booted
                self._log("committed_by_loader", booted)
            return False
        if booted != t.slot:
            why = ("it did not come up: the boot loader started the committed slot instead"
                   if t.boot_id is None else "it was not healthy in time")
            self._fall_back(t.slot, why)
            return False
        if t.boot_id is None:
            t.boot_id, t.booted_at = boot_id, time.time()
            self.slots[booted].status = "trying"
            self._log("trial_boot", booted, version=t.version)
            return True
        if loader_default == booted:
            # committed in the boot loader, then the box went down before the state said so
            self._commit(booted)
            return False
        self._fall_back(booted, "it booted a second time without being found healthy")
        return False

    def healthy(self, booted: str) -> Optional[dict]:
        """The slot on trial came up healthy: commit it.  Returns the trial's
        verdict (its rollback index goes to the floor), None if nothing was on trial."""
        t = self.trial
        if t is None or t.slot != booted:
            return None
        if t.boot_id is None:
            raise SlotError("not_booted", f"slot {booted} has not been seen booting on trial")
        return self._commit(booted)

    def unhealthy(self, booted: str, reason: str) -> None:
        t = self.trial
        if t is None or t.slot != booted:
            raise SlotError("no_trial", f"slot {booted} is not on trial")
        self._fall_back(booted, reason)

    def refused(self, slot: str, booted: str) -> None:
        """The initramfs refused `slot` (a block did not match its dm-verity hash) and started
        `booted` instead: that slot is bad, and the boot loader's default is the booted one."""
        if slot == booted:
            return
        s = self.slots[slot]
        s.status, s.reason = "bad", "its root filesystem failed dm-verity verification (changed on disk)"
        if self.trial and self.trial.slot == slot:
            self.trial = None
        previous, self.committed = self.committed, booted
        self._log("verity_refused", slot, to=booted, previous=previous)

    def _commit(self, slot: str) -> Optional[dict]:
        t = self.trial
        previous = self.committed
        self.committed = slot
        s = self.slots[slot]
        s.status, s.committed_at, s.reason = "good", time.time(), None
        self.trial = None
        self._log("committed", slot, version=s.version, previous=previous)
        return t.verdict if t else None

    def _fall_back(self, slot: str, reason: str) -> None:
        s = self.slots[slot]
        s.status, s.reason = "bad", reason
        self.trial = None
        self._log("fell_back", slot, reason=reason, to=self.committed)

    # ---- views -------------------------------------------------------------------

    def trial_pending(self) -> bool:
        return self.trial is not None


def initial(booted: str, release: Optional[dict]) -> State:
    """No state yet on a box: the running slot is good and committed, the other unknown."""
    st = State(committed=booted)
    if release:
        st.slots[booted] = Slot(status="good", version=release.get("version"),
                                rollback_index=release.get("rollback_index"), target=release.get("target"),
                                build_id=release.get("build_id"))
    else:
        st.slots[booted] = Slot(status="good")
    st._log("first_seen", booted)
    return st


class StateFile:
    """The state on disk: read and written whole (write, fsync, rename) under
    an flock, so the agent, the CLI and the boot guard never interleave."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self.lock_path = self.path.with_name("lock")

    @contextlib.contextmanager
    def locked(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> Optional[State]:
        try:
            return State.from_dict(json.loads(self.path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise SlotError("bad_state", f"{self.path}: unreadable slot state ({e})") from None

    def save(self, state: State) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(state.to_dict(), f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def seed(directory, version: str, rollback: int, target: str, build_id: str, rootfs: str, uki: str) -> State:
    """The state a freshly built image starts with: both slots hold this build, a is committed."""
    now = time.time()
    info = dict(status="good", version=version, rollback_index=rollback, target=target, build_id=build_id,
                rootfs_sha256=_sha256(rootfs), uki_sha256=_sha256(uki), written_at=now, committed_at=now)
    st = State(committed="a", slots={s: Slot(**info) for s in SLOTS})
    st._log("image_built", "a", version=version, build_id=build_id)
    StateFile(pathlib.Path(directory) / "state.json").save(st)
    return st


def main(argv=None) -> int:
    """`python -m firmware.rootslots seed DIR ...`: the image build's initial state."""
    p = argparse.ArgumentParser(prog="python -m firmware.rootslots")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("seed")
    s.add_argument("directory")
    for name in ("--version", "--target", "--build-id", "--rootfs", "--uki"):
        s.add_argument(name, required=True)
    s.add_argument("--rollback", type=int, required=True)
    a = p.parse_args(argv)
    seed(a.directory, a.version, a.rollback, a.target, a.build_id, a.rootfs, a.uki)
    return 0


if __name__ == "__main__":
    sys.exit(main())
