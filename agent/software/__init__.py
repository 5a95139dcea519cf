"""What runs on this box, one service: the capture card's firmware (card.py:
signed images into the card, reloaded after a power cut) and the system's
A/B root slots (agent.software.system: signed update bundles, one trial
boot, commit).  Both verify with the same signature format and keyring
(firmware/), and both raise rollback floors in one file
(firmware_dir/state.json): one SlotState, so a card load and an update
commit at the same time cannot lose each other's record.

The REST routes (/v1/firmware, /v1/system), the consoles and the agent's
start use agent.software.card and agent.software.system; /v1/health shows
both parts under the component "software"."""
from typing import Optional

from agent.config import Config
from agent.software.card import CardFirmware
from agent.software.system import UpdateService
from firmware.boot import Platform, PlatformError
from firmware.slots import SlotState


class Software:
    def __init__(self, cfg: Config, platform: Optional[Platform] = None):
        floors = SlotState(cfg.firmware_dir.resolve() / "state.json")
        self.card = CardFirmware(cfg, floors)
        self.system = UpdateService(cfg, platform, floors)

    def start(self, health) -> None:
        """At the agent's start: the health component, and a card that came up empty gets its image again."""
        health.register("software", critical=False, detail=self.detail).beat()
        self.card.reload()

    def detail(self) -> dict:
        """The health view: what the card runs, and which system slot is booted (cheap: no state rewritten)."""
        info = self.card.card()
        card = {"device": self.card.device, "present": info is not None}
        if info is not None:
            card.update(firmware_state=info.firmware_state, firmware_version=info.firmware_version)
        platform = self.system.platform
        system = {"image": platform.is_image}
        if platform.is_image:
            try:
                system["booted_slot"] = platform.booted_slot()
            except PlatformError as e:
                system["error"] = str(e)
        return {"card": card, "system": system}
