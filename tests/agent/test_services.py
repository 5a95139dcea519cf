"""The service slots: a bus consumer in its own thread, supervised."""
import types

from agent.bus import Bus
from agent.health import Health
from agent.services import Service, start_services
from tests.agent.conftest import wait_for


def fake_agent():
    return types.SimpleNamespace(bus=Bus(), health=Health(), cfg=None)


class Counter(Service):
    name = "counter"
    channels = ("packets:dns",)

    def start(self, agent):
        self.seen, self.ticks = [], 0

    def handle(self, env):
        if env.data == "bad":
            raise ValueError("bad event")
        self.seen.append(env.data)

    def tick(self, now):
        self.ticks += 1


class Broken(Service):
    name = "broken"

    def handle(self, env):
        pass

    def tick(self, now):
        raise RuntimeError("the loop itself fails")


def test_a_service_gets_its_channels_survives_bad_events_and_ticks():
    agent = fake_agent()
    [runner] = start_services(agent, [Counter()])
    for data in ("a", "bad", "b"):
        agent.bus.publish("packets:dns", "dns_packet", data)
    agent.bus.publish("packets:arp", "arp_packet", "not mine")
    wait_for(lambda: runner.handled == 2)
    assert runner.service.seen == ["a", "b"] and runner.errors["ValueError"] == 1
    wait_for(lambda: runner.service.ticks >= 1, timeout=3)
    assert agent.health.status() == "healthy"
    assert agent.health.snapshot()["counter"]["handled"] == 2
    agent.health.stop_all(2)
    assert agent.health.components["counter"].state == "stopped"


def test_a_failing_service_is_marked_failed_and_the_rest_goes_on():
    agent = fake_agent()
    runners = start_services(agent, [Broken(), Counter()])
    wait_for(lambda: agent.health.components["broken"].state == "failed", timeout=5)
    assert "RuntimeError" in agent.health.components["broken"].error
    assert agent.health.status() == "degraded"  # not critical
    agent.bus.publish("packets:dns", "dns_packet", "still here")
    wait_for(lambda: runners[1].handled == 1)
    agent.health.stop_all(2)


class Quiet(Service):
    name = "quiet"
    channels = None

    def start(self, agent):
        self.ticks = 0

    def tick(self, now):
        self.ticks += 1


class Unwanted(Service):
    name = "unwanted"

    @classmethod
    def wanted(cls, cfg):
        return False


def test_a_service_reading_no_channel_only_ticks_and_an_unwanted_one_never_starts():
    agent = fake_agent()
    [runner] = start_services(agent, [Quiet(), Unwanted()])
    agent.bus.publish("packets:dns", "dns_packet", "x")
    assert runner.sub is None and agent.bus.stats()["subscribers"] == []
    wait_for(lambda: runner.service.ticks >= 1, timeout=3)
    assert "unwanted" not in agent.health.components
    assert agent.health.snapshot()["quiet"]["status"] == "running"
    agent.health.stop_all(2)
    assert agent.health.components["quiet"].state == "stopped"


def test_the_bus_says_who_listens():
    bus = Bus()
    assert not bus.listening("flows:expired")
    dns = bus.subscribe(["packets:dns"])
    assert not bus.listening("flows:expired") and bus.listening("packets:dns")
    everything = bus.subscribe()
    assert bus.listening("flows:expired")
    everything.close()
    dns.close()
    assert not bus.listening("packets:dns")


def test_a_flood_on_one_channel_keeps_another_channels_events_for_resume():
    """A client resuming with Last-Event-ID gets the capture's stop though a million log records came after it."""
    from agent.bus import Bus
    bus = Bus(backlog=100)
    first = bus.publish("capture:state", "capture_started", {})
    stopped = bus.publish("capture:state", "capture_stopped", {})
    for _ in range(1000):
        bus.publish("logs:records", "dns", {})
    assert [e.id for e in bus.since(first.id - 1, frozenset({"capture:state"}))] == [first.id, stopped.id]
    mixed = bus.since(stopped.id - 1)
    assert mixed[0].id == stopped.id and len(mixed) == 101 and [e.id for e in mixed] == sorted(e.id for e in mixed)
