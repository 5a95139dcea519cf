"""The live path with [detection] process = false (by default the pipeline runs in the consumer worker:
agent.consumers): the detector pipeline (agent.detectors.pipeline) in one
service thread on the packet channels.

A packet event in, findings out on attacks:detected, under the packet's
correlation id (so the threat can name the packet that raised it)."""
from agent.bus import EVENT_CHANNELS
from agent.detectors.pipeline import Pipeline
from agent.events import AttackDetected
from agent.services import Service


class DetectorService(Service):
    name = "detectors"
    critical = False

    def __init__(self):
        from agent.detectors import DETECTORS
        kinds = {k for cls in DETECTORS for k in cls.all_kinds()}
        self.channels = tuple(sorted({EVENT_CHANNELS[k] for k in kinds}))

    def start(self, agent) -> None:
        self.agent = agent
        self.enabled = agent.cfg.detection.enabled
        self.pipeline = Pipeline(agent.cfg.detection)
        self.kinds = self.pipeline.kinds()

    def handle(self, env) -> None:
        ev = env.data
        if not self.enabled or getattr(ev, "kind", None) not in self.kinds:
            return
        for d in self.pipeline.feed(ev):
            found = AttackDetected(d, d.verify is not None, env.event_type, ev.ts)
            self.agent.bus.publish("attacks:detected", "attack_detected", found, source=d.type,
                                   correlation_id=env.correlation_id)

    def detail(self) -> dict:
        return {"enabled": self.enabled, "lan_unlearned": self.pipeline.unlearned, **self.pipeline.counts()}


SERVICES = [DetectorService]
