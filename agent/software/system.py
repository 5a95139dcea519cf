"""System updates, as the CLI (`capbox update`), the REST API (/v1/system)
and the boot guard use them: status, install, and the verdict of a trial boot.

Install: verify the bundle (signature against the keyring, the system's
target, the rollback floor) -- nothing is written before a verdict of ok --
then write the slot that is not running, its UKI on the ESP, clear that slot's
/var layer, and arm one trial boot of it.  The caller reboots.

Guard (the trial boot, capbox-update-guard.service): wait for the agent to be
healthy for a while within a time limit; healthy: commit (loader.conf default,
the rollback floor raised to the bundle's index); not: mark the slot bad and
fail, and the unit's FailureAction reboots into the committed slot.  A trial
that never reaches a verdict (kernel panic, hang, power loss) ends the same way:
the one-shot entry is spent, the boot loader starts the committed slot, and the
next look at the state records the fallback."""
import dataclasses
import logging
import os
import pathlib
import shutil
import time
from typing import Callable, Optional

from agent.config import Config
from agent.errors import AgentError
from firmware import bundle, rootslots as slots
from firmware.boot import Platform, PlatformError
from firmware import image
from firmware.errors import FirmwareError, Reason
from firmware.keyring import Keyring
from firmware.slots import SlotState
from firmware.verify import Verdict

log = logging.getLogger(__name__)
UNITS = ["capbox.service", "capbox-console.service", "capbox-tui.service", "capbox-update-guard.service",
         "capbox-coldplug.service"]     # the devices the agent's start did not need, replayed to udev after it
TRIAL_MARKER = "trial"
VERITY_MARKER = "verity-failed"      # the initramfs refused the slot it names (image/initramfs, capbox/slot)


def rejected(verdict: Verdict) -> AgentError:
    return AgentError("UPDATE_REJECTED", f"update refused: {verdict.reason.code}: {verdict.message}",
                      {"reason": verdict.reason.code, "verdict": verdict.as_dict()})


def _verdict_from(d: dict) -> Verdict:
    """The ok verdict of a bundle installed earlier (kept with the trial), for the floor."""
    h = d["header"]
    header = image.Header(h["target"], image.parse_version(h["version"]), h["rollback_index"], h["build_time"],
                          h["payload_length"], bytes.fromhex(h["payload_sha256"]), h["format_version"])
    return Verdict(Reason.OK, d["message"], header, d.get("key_id"), d.get("trusted_comment"),
                   d.get("signature_algorithm") == "ED", d.get("image_sha256"), bool(d.get("rollback_override")))


class UpdateService:
    """The system's part of agent.software.Software: the A/B root slots and signed update bundles."""

    def __init__(self, cfg: Config, platform: Optional[Platform] = None, floors: Optional[SlotState] = None):
        """floors: the rollback floors, shared with the card's firmware (Software makes one)."""
        self.cfg = cfg
        self.dir = cfg.data_dir / "update"
        self.platform = platform or Platform.from_env()
        self.state_file = slots.StateFile(self.dir / "state.json")
        self.floors = floors or SlotState(cfg.firmware_dir.resolve() / "state.json")
        self.upload_dir = self.dir / "incoming"

    # ---- state ----------------------------------------------------------------------

    def _require_image(self) -> str:
        try:
            return self.platform.booted_slot()
        except PlatformError as e:
            raise AgentError("SERVICE_UNAVAILABLE", str(e), {"image": False}) from None

    def _load(self) -> slots.State:
        try:
            st = self.state_file.load()
        except slots.SlotError as e:
            raise AgentError("CONFLICT", e.message) from None
        return st or slots.initial(self.platform.booted_slot(), self.platform.release())

    def reconcile(self) -> slots.State:
        """Record this boot (once per boot): a trial that did not come up is a fallback."""
        booted = self._require_image()
        with self.state_file.locked():
            st = self._load()
            boot_id = self.platform.boot_id()
            if not (st.last_boot and st.last_boot.get("boot_id") == boot_id):
                self._take_refusal(st, booted)
                default = None
                if st.trial is not None:
                    try:
                        default = self.platform.loader_default()
                    except PlatformError as e:
                        log.warning("loader.conf unreadable: %s", e)
                st.boot(booted, boot_id, default)
                self.state_file.save(st)
                self._sync_marker(st)
            return st

    def _take_refusal(self, st: slots.State, booted: str) -> None:
        """The initramfs's word that it refused a slot (dm-verity) and reset into this one."""
        marker = self.dir / VERITY_MARKER
        try:
            refused = marker.read_text().strip()
        except OSError:
            return
        if refused in slots.SLOTS and refused != booted:
            log.error("slot %s failed dm-verity verification at boot: running slot %s, now the default",
                      refused, booted)
            st.refused(refused, booted)
            try:
                with self.platform.esp() as esp:
                    self.platform.set_loader_default(esp, booted)
            except PlatformError as e:
                log.warning("cannot make slot %s the boot loader's default: %s", booted, e)
        marker.unlink(missing_ok=True)

    def _sync_marker(self, st: slots.State) -> None:
        """The file the guard unit's condition reads (no Python needed to decide)."""
        marker = self.dir / TRIAL_MARKER
        if st.trial is not None:
            tmp = marker.with_suffix(".tmp")
            tmp.write_text(st.trial.slot + "\n")
            os.replace(tmp, marker)
        else:
            marker.unlink(missing_ok=True)

    def status(self) -> dict:
        if not self.platform.is_image:
            return {"image": False, "booted_slot": None, "committed_slot": None, "trial": None, "slots": {},
                    "release": self.platform.release(), "history": [],
                    "note": "not running from a capbox disk image: no slots to update"}
        st = self.reconcile()
        booted = self.platform.booted_slot()
        out_slots = {}
        for name, s in st.slots.items():
            out_slots[name] = {**dataclasses.asdict(s), "booted": name == booted,
                               "committed": name == st.committed, "partition": self._partition(name),
                               "rootfs": self.platform.rootfs_fingerprint(name)}
        return {"image": True, "release": self.platform.release(), "booted_slot": booted,
                "committed_slot": st.committed, "trial": dataclasses.asdict(st.trial) if st.trial else None,
                "slots": out_slots, "data_persistent": self.platform.data_persistent(),
                "machine_id": self.platform.machine_id(), "boot_id": self.platform.boot_id(),
                "oneshot_entry": self.platform.oneshot(), "units": self.platform.units(UNITS),
                "history": st.history[-20:]}

    def _partition(self, slot: str) -> Optional[str]:
        try:
            return self.platform.partition(slot)
        except PlatformError:
            return None

    # ---- verification ---------------------------------------------------------------

    def target(self) -> str:
        release = self.platform.release() or {}
        target = release.get("target")
        if not target:
            raise AgentError("SERVICE_UNAVAILABLE", f"no system target: {self.platform.release_path} is missing")
        return target

    def keyring(self) -> Keyring:
        try:
            return Keyring.from_dir(self.cfg.keyring_dir)
        except FirmwareError as e:
            raise AgentError("CONFLICT", f"keyring: {e.message}") from None

    def verify(self, path, signature, allow_rollback: bool = False, target: Optional[str] = None) -> tuple:
        target = target or self.target()
        try:
            floor = self.floors.floor(target)
        except FirmwareError as e:
            raise AgentError("CONFLICT", e.message) from None
        with open(path, "rb") as f:
            return bundle.verify(f, signature, self.keyring(), target, floor, allow_rollback)

    # ---- install --------------------------------------------------------------------

    def install(self, path, signature, allow_rollback: bool = False, reason: str = "", who: str = "") -> dict:
        """Verify, write the other slot, arm its trial.  The caller reboots."""
        if allow_rollback and not reason.strip():
            raise AgentError("VALIDATION_ERROR", "a rollback override needs a reason", {"field": "reason"})
        booted = self._require_image()
        self.reconcile()
        with self.state_file.locked():
            st = self._load()
            if st.trial is not None:
                raise AgentError("CONFLICT", f"slot {st.trial.slot} is on trial: wait for its commit or fallback",
                                 {"trial": dataclasses.asdict(st.trial)})
            with open(path, "rb") as f:
                target_name = self.target()
                try:
                    floor = self.floors.floor(target_name)
                except FirmwareError as e:
                    raise AgentError("CONFLICT", e.message) from None
                verdict, contents = bundle.verify(f, signature, self.keyring(), target_name, floor, allow_rollback)
                if not verdict.ok:
                    log.warning("update refused (%s): %s", verdict.reason.code, verdict.message)
                    raise rejected(verdict)
                slot = slots.other(booted)
                try:
                    size = self.platform.partition_size(slot)
                except (OSError, PlatformError) as e:
                    raise AgentError("UPDATE_FAILED", f"slot {slot}'s partition cannot be read: {e}") from None
                if contents.rootfs.size > size:
                    raise AgentError("PAYLOAD_TOO_LARGE", f"the root filesystem ({contents.rootfs.size} bytes) "
                                     f"does not fit slot {slot} ({size} bytes)")
                try:
                    slot = st.begin_write(booted)
                except slots.SlotError as e:
                    raise AgentError("CONFLICT", e.message, {"reason": e.code}) from None
                self.state_file.save(st)
                log.info("update %s (key %s) verified: writing slot %s", contents.version, verdict.key_id, slot)
                try:
                    self._write(f, contents, slot)
                    info = {"version": contents.version, "rollback_index": verdict.header.rollback,
                            "target": verdict.header.target, "build_id": contents.manifest.get("build_id"),
                            "bundle_sha256": verdict.image_sha256, "rootfs_sha256": contents.rootfs.sha256,
                            "uki_sha256": contents.uki.sha256, "key_id": verdict.key_id}
                    st.written(slot, info, verdict.as_dict())
                    self.state_file.save(st)
                    self._sync_marker(st)
                    self.platform.arm_trial(slot)
                except (OSError, PlatformError, bundle.BundleError) as e:
                    why = getattr(e, "message", None) or str(e)
                    st.write_failed(slot, why)
                    self.state_file.save(st)
                    self._sync_marker(st)
                    log.error("update of slot %s failed: %s", slot, why)
                    raise AgentError("UPDATE_FAILED", f"writing slot {slot} failed: {why}", {"slot": slot}) from None
        if verdict.rollback_override:
            log.warning("update rollback override by %s: %s (rollback index %d, floor %d): %s", who or "operator",
                        contents.version, verdict.header.rollback, floor, reason)
        log.info("slot %s holds %s, armed for one trial boot", slot, contents.version)
        return {"installed": True, "slot": slot, "version": contents.version, "entry": slots.entry(slot),
                "verdict": verdict.as_dict(), "manifest": contents.manifest, "reboot_required": True}

    def _write(self, f, contents: bundle.Contents, slot: str) -> None:
        dev = self.platform.partition(slot)
        with open(dev, "r+b") as out:
            bundle.copy_member(f, contents.rootfs, out)
            out.flush()
            os.fsync(out.fileno())
        with self.platform.esp() as esp:
            uki = self.platform.uki_path(esp, slot)
            uki.parent.mkdir(parents=True, exist_ok=True)
            tmp = uki.with_name(uki.name + ".new")
            with open(tmp, "wb") as out:
                bundle.copy_member(f, contents.uki, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, uki)
        shutil.rmtree(self.platform.var_upper(slot), ignore_errors=True)

    # ---- the trial boot ---------------------------------------------------------------

    def commit(self) -> dict:
        booted = self._require_image()
        with self.state_file.locked():
            st = self._load()
            if st.trial is None or st.trial.slot != booted:
                raise AgentError("CONFLICT", f"slot {booted} is not on trial")
            with self.platform.esp() as esp:
                self.platform.set_loader_default(esp, booted)
            verdict = st.healthy(booted)
            self.state_file.save(st)
            self._sync_marker(st)
        if verdict:
            try:
                self.floors.record(f"root-{booted}", _verdict_from(verdict), self.platform.partition(booted),
                                   "committed after a healthy trial boot")
            except (FirmwareError, KeyError, ValueError) as e:
                log.error("slot %s committed, but the rollback floor was not raised: %s", booted, e)
        log.info("slot %s committed (%s)", booted, st.slots[booted].version)
        return {"committed": booted, "version": st.slots[booted].version}

    def fail(self, reason: str) -> None:
        booted = self._require_image()
        with self.state_file.locked():
            st = self._load()
            if st.trial is None or st.trial.slot != booted:
                return
            st.unhealthy(booted, reason)
            self.state_file.save(st)
            self._sync_marker(st)
        log.error("slot %s failed its trial: %s; the next boot starts slot %s", booted, reason, st.committed)

    def guard(self, health: Callable[[], Optional[str]], timeout_s: float = 90, stable_s: float = 10,
              poll_s: float = 2, clock=time.monotonic, sleep=time.sleep) -> bool:
        """The trial boot's verdict: True when there was nothing to judge or the
        slot was committed; False when it failed (the caller reboots)."""
        st = self.reconcile()
        booted = self.platform.booted_slot()
        if st.trial is None or st.trial.slot != booted:
            return True
        log.info("slot %s on trial: waiting up to %.0f s for %.0f s of health", booted, timeout_s, stable_s)
        deadline = clock() + timeout_s
        since, last = None, None
        while True:
            now = clock()
            try:
                last = health()
            except Exception as e:    # the guard must reach a verdict whatever the probe does
                last = f"probe failed: {e}"
            if last == "healthy":
                since = now if since is None else since
                if now - since >= stable_s:
                    self.commit()
                    return True
            else:
                since = None
            if now >= deadline:
                break
            sleep(poll_s)
        self.fail(f"the agent was not healthy for {stable_s:.0f} s within {timeout_s:.0f} s (last: {last})")
        return False


def spool(stream, length: int, directory: pathlib.Path, limit: int, chunk: int = 1 << 20) -> pathlib.Path:
    """An uploaded bundle, copied to a file on the data partition (never held in memory)."""
    if length <= 0:
        raise AgentError("VALIDATION_ERROR", "the body is the bundle: it is empty", {"field": "body"})
    if length > limit:
        raise AgentError("PAYLOAD_TOO_LARGE", f"the bundle is larger than {limit} bytes", {"max_bytes": limit})
    directory.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(directory).free
    if length > free - (16 << 20):
        raise AgentError("PAYLOAD_TOO_LARGE", f"{length} bytes do not fit in {directory} ({free} free)",
                         {"free_bytes": free})
    path = directory / f"upload-{os.getpid()}-{time.monotonic_ns()}.bundle"
    left = length
    try:
        with open(path, "wb") as f:
            while left:
                block = stream.read(min(chunk, left))
                if not block:
                    raise AgentError("VALIDATION_ERROR", f"the body ended after {length - left} of {length} bytes")
                f.write(block)
                left -= len(block)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path
