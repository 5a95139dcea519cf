"""What the box has accepted, kept on the data partition: the image running
in each slot (the card's firmware is slot "fpga") and, per hardware target,
the highest rollback index ever accepted: the anti-rollback floor.

One JSON file, replaced atomically (write, fsync, rename); separate from the
image format, as slot state is in RAUC and MCUboot."""
import json
import os
import pathlib
import threading
import time

from firmware.errors import FirmwareError
from firmware.verify import Verdict

HISTORY_MAX = 50


class SlotState:
    def __init__(self, path):
        self.path = pathlib.Path(path)
        self._lock = threading.Lock()

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {"rollback_floor": {}, "slots": {}, "history": []}
        except (OSError, ValueError) as e:
            # fail closed: an unreadable floor must not become a floor of 0
            raise FirmwareError(f"{self.path}: firmware state unreadable ({e}); refusing to guess it") from None
        if not isinstance(data, dict):
            raise FirmwareError(f"{self.path}: firmware state is not a JSON object")
        for k, empty in (("rollback_floor", {}), ("slots", {}), ("history", [])):
            data.setdefault(k, empty)
        return data

    def _write(self, data: dict) -> None:
        write_durably(self.path, json.dumps(data, indent=2, sort_keys=True).encode())

    def floor(self, target: str) -> int:
        """The highest rollback index accepted for a target (0 when none)."""
        with self._lock:
            return int(self._read()["rollback_floor"].get(target, 0))

    def snapshot(self) -> dict:
        with self._lock:
            return self._read()

    def record(self, slot: str, verdict: Verdict, device: str = "", note: str = "") -> dict:
        """An ok verdict's image now runs in `slot`: remember it and raise the
        floor (an override never lowers it)."""
        if not verdict.ok or verdict.header is None:
            raise FirmwareError("only an image whose verdict is ok is recorded")
        h = verdict.header
        now = time.time()
        entry = {"target": h.target, "version": h.version_str, "rollback_index": h.rollback,
                 "key_id": verdict.key_id, "image_sha256": verdict.image_sha256,
                 "payload_sha256": h.sha256.hex(), "trusted_comment": verdict.trusted_comment,
                 "build_time": h.build_time, "verified_at": now, "loaded_at": now, "device": device,
                 "rollback_override": verdict.rollback_override}
        with self._lock:
            data = self._read()
            floor = int(data["rollback_floor"].get(h.target, 0))
            data["rollback_floor"][h.target] = max(floor, h.rollback)
            data["slots"][slot] = entry
            data["history"] = (data["history"] + [{"slot": slot, "event": "loaded", "note": note, **entry}])[-HISTORY_MAX:]
            self._write(data)
        return entry


def write_durably(path, data: bytes) -> None:
    """Replace path with data whole: written to a temporary file, synced, renamed, the directory synced;
    a power cut leaves the old file or the new one, never half of one."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
