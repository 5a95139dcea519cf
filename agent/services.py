"""The slots later services plug into: detectors, the windower, the verifier.

A service is a bus consumer with its own named thread and bounded queue.  It
declares the channels it reads; the runner feeds it envelopes and calls
tick() every tick_s seconds (windows close on time, not only on traffic).
An exception in handle() is counted and logged once per kind, and the
service goes on; one that escapes the loop marks the component failed.
A service whose channels are None (the serial console, a loop of its own) is
not subscribed to the bus; its thread only ticks.  One whose `wanted(cfg)`
is false (nothing configured for it) is not started at all.

A Face (the REST server, the serial console) is what the agent knows of the
ways in: the entry point attaches them (Agent.attach), the core imports none."""
import collections
import logging
import time

log = logging.getLogger(__name__)


class Service:
    name = ""
    channels: tuple = ()      # None: reads no channel, only ticks
    critical = False
    queue_size = 4096
    tick_s = 1.0              # how often tick() is called

    @classmethod
    def wanted(cls, cfg) -> bool:
        """Whether the configuration asks for this service."""
        return True

    def start(self, agent) -> None:
        """Before the thread starts; agent gives the bus, store and config."""

    def handle(self, envelope) -> None:
        raise NotImplementedError

    def tick(self, now: float) -> None:
        """Every tick_s seconds."""

    def stop(self) -> None:
        """After the thread's last handle()."""

    def detail(self) -> dict:
        return {}


class Face:
    """What the agent knows of a face (REST, serial console): started after the services,
    probed by the stats thread (the systemd watchdog is fed only while every face answers),
    named in the systemd status, stopped before the services."""

    def start(self) -> None:
        pass

    def probe(self, timeout: float) -> bool:
        return True

    def where(self) -> str:
        return ""

    def stop(self) -> None:
        pass


class Runner:
    def __init__(self, agent, service: Service):
        self.agent = agent
        self.service = service
        self.handled = 0
        self.errors: collections.Counter = collections.Counter()
        self.sub = None if service.channels is None else agent.bus.subscribe(
            service.channels, maxsize=service.queue_size, name=service.name)
        self.component = agent.health.register(service.name, critical=service.critical, detail=self.detail)

    def detail(self) -> dict:
        return {"handled": self.handled, "errors": sum(self.errors.values()),
                "queued": self.sub.queue.qsize() if self.sub else 0, "dropped": self.sub.dropped if self.sub else 0,
                **self.service.detail()}

    def loop(self, component) -> None:
        every = self.service.tick_s
        next_tick = time.monotonic() + every
        try:
            while not component.stop.is_set():
                wait = min(0.2, max(0.0, next_tick - time.monotonic()))
                env = self.sub.get(timeout=wait) if self.sub else None
                if self.sub is None:
                    component.stop.wait(wait)
                if env is not None:
                    try:
                        self.service.handle(env)
                        self.handled += 1
                    except Exception as e:  # one bad event must not stop a detector
                        kind = type(e).__name__
                        if not self.errors[kind]:
                            log.exception("%s: handling %s failed", self.service.name, env.event_type)
                        self.errors[kind] += 1
                now = time.monotonic()
                if now >= next_tick:
                    next_tick = now + every
                    self.service.tick(time.time())
                    component.beat()
        finally:
            if self.sub:
                self.sub.close()
            self.service.stop()


def start_services(agent, services) -> list:
    """Start each service the configuration wants, in the order given, each on its own thread."""
    runners = []
    for service in services:
        if not service.wanted(agent.cfg):
            continue
        service.start(agent)
        runner = Runner(agent, service)
        agent.health.spawn(runner.component, runner.loop)
        runners.append(runner)
    return runners
