"""The live path with [detection] process = false: each detector in its own service thread on its bus
channels (by default they run in the consumer worker: agent.consumers).

A packet event in, findings out on attacks:detected, under the packet's
correlation id (so the threat can name the packet that raised it)."""
from agent.bus import EVENT_CHANNELS
from agent.detectors import DETECTORS
from agent.events import AttackDetected
from agent.services import Service


class DetectorService(Service):
    detector_cls = None

    def start(self, agent) -> None:
        self.agent = agent
        self.enabled = agent.cfg.detection.enabled
        self.detector = self.detector_cls(agent.cfg.detection)

    def handle(self, env) -> None:
        ev = env.data
        if not self.enabled or getattr(ev, "kind", None) not in self.detector.all_kinds():
            return
        for d in self.detector.feed(ev):
            found = AttackDetected(d, d.verify is not None, env.event_type, ev.ts)
            self.agent.bus.publish("attacks:detected", "attack_detected", found, source=self.name,
                                   correlation_id=env.correlation_id)

    def detail(self) -> dict:
        return {"enabled": self.enabled, "threshold": self.detector.threshold, **self.detector.counts}


def _service(cls) -> type:
    return type(f"{cls.__name__}Service_{cls.name}", (DetectorService,), {
        "name": cls.name, "detector_cls": cls, "critical": False,
        "channels": tuple(sorted({EVENT_CHANNELS[k] for k in cls.all_kinds()}))})


SERVICES = [_service(cls) for cls in DETECTORS]
