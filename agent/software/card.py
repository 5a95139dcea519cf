"""Card firmware: verify images against the keyring and the anti-rollback
floor, load verified payloads into the capture card, and report card and
slots: the card's part of agent.software.Software.  The REST routes, the CLI
(`capbox fw`) and the consoles all go through it.

Order of a load: read, verify (firmware.verify), and only on a verdict of ok
hand the payload to the driver; the slot state and the rollback floor are
written after the card accepted it, and the image itself is kept on the data
partition: a card comes up empty after a power cut, and the agent loads that
image again at start (verified again; only those exact bytes).  An older
image passes only with an explicit override, which is logged with its
reason."""
import hashlib
import logging
import pathlib
from typing import Optional

from agent import confine as confinement
from agent.config import Config
from agent.errors import AgentError
from firmware.errors import FirmwareError
from firmware.keyring import Keyring
from firmware.minisign import SIGNATURE_MAX
from firmware.slots import SlotState, write_durably
from firmware.verify import Verdict, verify
from hwdrivers import CaptureError, ErrorCode, fpga

log = logging.getLogger(__name__)
SLOT = "fpga"


def rejected(verdict: Verdict) -> AgentError:
    return AgentError("FIRMWARE_REJECTED", f"firmware refused: {verdict.reason.code}: {verdict.message}",
                      {"reason": verdict.reason.code, "verdict": verdict.as_dict()})


def verdict_body(verdict: Verdict) -> dict:
    """A verification's answer to a face: valid, and the verdict's fields."""
    return {"valid": verdict.ok, **verdict.as_dict()}


class CardFirmware:
    def __init__(self, cfg: Config, state: Optional[SlotState] = None):
        """state: the slots and rollback floors, shared with the system's slots (Software makes one)."""
        self.cfg = cfg
        self.dir = cfg.firmware_dir.resolve()
        self.device = cfg.firmware.device
        self.state = state or SlotState(self.dir / "state.json")
        self.max_image = cfg.firmware.max_upload_mb << 20

    # ---- what is trusted, what is there --------------------------------------------

    def keyring(self, pubkey: Optional[str] = None, keyring_dir: Optional[str] = None) -> Keyring:
        try:
            if pubkey:
                return Keyring.from_file(pubkey)
            return Keyring.from_dir(keyring_dir or self.cfg.keyring_dir)
        except FirmwareError as e:
            raise AgentError("CONFLICT" if not pubkey else "VALIDATION_ERROR", f"keyring: {e.message}") from None

    def card(self) -> Optional[fpga.CardInfo]:
        try:
            return fpga.info(self.device)
        except CaptureError:
            return None

    def target(self) -> str:
        """The hardware target images must be built for: the card's, or the configured one."""
        card = self.card()
        return card.target if card else self.cfg.firmware.target

    def status(self) -> dict:
        card = self.card()
        try:
            state = self.state.snapshot()
        except FirmwareError as e:
            state = {"error": e.message, "slots": {}, "rollback_floor": {}, "history": []}
        try:
            keys = self.keyring().ids()
        except AgentError as e:
            keys = {"error": e.message}
        card_view = {"present": False, "device": self.device}
        if card:
            card_view = {"present": True, **card.as_dict()}
        return {"card": card_view, "target": card.target if card else self.cfg.firmware.target,
                "slots": state["slots"], "rollback_floor": state["rollback_floor"],
                "history": state["history"][-10:], "firmware_dir": str(self.dir),
                "keyring": {"dir": str(self.cfg.keyring_dir), "key_ids": keys}}

    # ---- verification --------------------------------------------------------------

    def confine(self, name: str, field: str) -> pathlib.Path:
        """A file the API names must lie in the firmware directory (symlinks resolved)."""
        if not name:
            raise AgentError("VALIDATION_ERROR", f"{field} is required", {"field": field})
        path = pathlib.Path(name)
        real = confinement.resolve(path if path.is_absolute() else self.dir / path, field)
        if not real.is_relative_to(self.dir):
            raise AgentError("FORBIDDEN", f"{name!r} is outside the firmware directory",
                             {"field": field, "allowed_dir": str(self.dir)})
        if not confinement.is_file(real):
            raise AgentError("NOT_FOUND", f"no file {name!r} in the firmware directory", {"field": field})
        return real

    def read(self, path, limit: int, field: str) -> bytes:
        path = pathlib.Path(path)
        try:
            if path.stat().st_size > limit:
                raise AgentError("PAYLOAD_TOO_LARGE", f"{path.name} is larger than {limit} bytes",
                                 {"field": field, "max_bytes": limit})
            return path.read_bytes()
        except OSError as e:
            raise AgentError("NOT_FOUND", f"{path}: {e.strerror}", {"field": field}) from None

    def verify(self, image: bytes, signature, allow_rollback: bool = False, keys: Optional[Keyring] = None,
               target: Optional[str] = None) -> Verdict:
        target = target or self.target()
        try:
            floor = self.state.floor(target)
        except FirmwareError as e:
            raise AgentError("CONFLICT", e.message) from None
        return verify(image, signature, keys if keys is not None else self.keyring(), target, floor, allow_rollback)

    def verify_files(self, firmware_path: str, signature_path: str = "") -> Verdict:
        """GET /v1/firmware/verify: files in the firmware directory (signature: IMAGE.minisig by default)."""
        image_path = self.confine(firmware_path, "firmware_path")
        sig_path = self.confine(signature_path or f"{firmware_path}.minisig", "signature_path")
        return self.verify(self.read(image_path, self.max_image, "firmware_path"),
                           self.read(sig_path, SIGNATURE_MAX, "signature_path"))

    # ---- loading ---------------------------------------------------------------------

    def load(self, image: bytes, signature, allow_rollback: bool = False, reason: str = "",
             who: str = "") -> dict:
        """Verify, then load into the card; nothing reaches the card or the slot
        state unless the verdict is ok."""
        if allow_rollback and not reason.strip():
            raise AgentError("VALIDATION_ERROR", "a rollback override needs a reason", {"field": "reason"})
        card = self.card()
        if card is None:
            raise AgentError("CARD_UNAVAILABLE", f"no capture card answers at {self.device}",
                             {"device": self.device})
        verdict = self.verify(image, signature, allow_rollback, target=card.target)
        if not verdict.ok:
            log.warning("firmware refused (%s): %s", verdict.reason.code, verdict.message)
            raise rejected(verdict)
        h = verdict.header
        if verdict.rollback_override:
            log.warning("firmware rollback override by %s: %s %s (rollback index %d, floor %d): %s",
                        who or "operator", h.target, h.version_str, h.rollback, self.state.floor(h.target), reason)
        payload = image[len(image) - h.payload_len:]
        try:
            fpga.load(self.device, payload, h.target, h.version, h.rollback)
        except CaptureError as e:
            code = "CONFLICT" if e.code == ErrorCode.STATE else "CARD_UNAVAILABLE" \
                if e.code in (ErrorCode.NODEV, ErrorCode.IO) else "FIRMWARE_REJECTED"
            raise AgentError(code, e.message, {"device": self.device, "card_error": e.code.name}) from None
        note = f"rollback override: {reason}" if verdict.rollback_override else reason
        slot = self.state.record(SLOT, verdict, self.device, note)
        self._keep(image, signature)
        log.info("firmware %s %s (rollback index %d, key %s) loaded into %s", h.target, h.version_str,
                 h.rollback, verdict.key_id, self.device)
        return {"loaded": True, "slot": SLOT, "verdict": verdict.as_dict(), "running": slot}

    # ---- after a power cut ----------------------------------------------------------------

    def kept(self) -> tuple:
        """Where the image the card runs is kept, with its signature."""
        image_path = self.dir / "running" / f"{SLOT}.img"
        return image_path, image_path.with_name(image_path.name + ".minisig")

    def _keep(self, image: bytes, signature) -> None:
        image_path, sig_path = self.kept()
        try:
            write_durably(image_path, image)
            write_durably(sig_path, signature.encode() if isinstance(signature, str) else bytes(signature))
        except OSError as e:  # the card runs it; only a later reload is lost
            log.error("the loaded firmware could not be kept in %s: %s", image_path.parent, e)

    def reload(self) -> Optional[dict]:
        """At start: a card that came up without firmware gets the image it ran before, verified again
        like any other (the same bytes, a trusted key, the override it was loaded with); a kept image that
        is not exactly the recorded one, or fails verification, is not loaded and the reason is logged."""
        card = self.card()
        if not self.cfg.firmware.reload or card is None or card.firmware_state != "none":
            return None
        slot = self.state.snapshot()["slots"].get(SLOT)
        image_path, sig_path = self.kept()
        if slot is None or not image_path.exists():
            return None
        try:
            image, signature = image_path.read_bytes(), sig_path.read_bytes()
            if hashlib.sha256(image).hexdigest() != slot["image_sha256"]:
                raise AgentError("FIRMWARE_REJECTED", f"{image_path} is not the image recorded as loaded "
                                 f"({slot['target']} {slot['version']})")
            done = self.load(image, signature, allow_rollback=slot["rollback_override"],
                             reason="reloaded at start: the card had no firmware", who="the agent at start")
        except (OSError, AgentError) as e:
            log.error("firmware not reloaded into %s: %s", self.device, getattr(e, "message", e))
            return None
        log.info("firmware %s %s reloaded into %s", slot["target"], slot["version"], self.device)
        return done
