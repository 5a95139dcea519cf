"""The service slots: a bus consumer in its own thread, supervised."""
import time
import types

import pytest

from agent.bus import Bus
from agent.events import CaptureState, LogRecord
from hwdrivers.events import PacketEvent
from agent.health import Health
from agent.services import Service, start_services
from tests.agent.conftest import wait_for


def packet(kind: str, src: str) -> PacketEvent:
    return PacketEvent(kind, 0, 0, src, "192.0.2.1", 5353, 53, 17, 0, 0, 0, 0, True, "", "", 60, 18, b"")


def fake_agent():
    return types.SimpleNamespace(bus=Bus(), health=Health(), cfg=None)


class Counter(Service):
    name = "counter"
    channels = ("packets:dns",)

    def start(self, agent):
        self.seen, self.ticks = [], 0

    def handle(self, env):
        if env.data.src == "bad":
            raise ValueError("bad event")
        self.seen.append(env.data.src)

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
        agent.bus.publish("packets:dns", "dns_packet", packet("dns", data))
    agent.bus.publish("packets:arp", "arp_packet", packet("arp", "not mine"))
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
    agent.bus.publish("packets:dns", "dns_packet", packet("dns", "still here"))
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
    agent.bus.publish("packets:dns", "dns_packet", packet("dns", "x"))
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
    state = CaptureState(1, "pcapfile", "demo.pcap", None, "demo.pcap", "")
    first = bus.publish("capture:state", "capture_started", state)
    stopped = bus.publish("capture:state", "capture_stopped", state)
    for _ in range(1000):
        bus.publish("logs:records", "dns", LogRecord({}))
    assert [e.id for e in bus.since(first.id - 1, frozenset({"capture:state"}))] == [first.id, stopped.id]
    mixed = bus.since(stopped.id - 1)
    assert mixed[0].id == stopped.id and len(mixed) == 101 and [e.id for e in mixed] == sorted(e.id for e in mixed)


def test_a_channel_takes_only_its_dataclass_and_its_json_is_the_records():
    """A bare dict (or another channel's event) is refused at publish; a wrapped record's keys are the
    event's JSON, as SSE and EVE see it, and a consumer reads them as a mapping too."""
    bus = Bus()
    with pytest.raises(TypeError, match="capture:state carries agent.events CaptureState, not dict"):
        bus.publish("capture:state", "capture_started", {"run_id": 1})
    with pytest.raises(TypeError):
        bus.publish("logs:records", "dns", CaptureState(1, "pcap", "eth0", "eth0", None, ""))
    started = bus.publish("capture:state", "capture_started", CaptureState(1, "pcap", "eth0", "eth0", None, "udp"))
    assert started.as_dict()["data"] == {"run_id": 1, "backend": "pcap", "source": "eth0", "interface": "eth0",
                                         "file": None, "bpf": "udp"}          # no reason on a start
    stopped = CaptureState(1, "pcap", "eth0", "eth0", None, "udp", reason="manual")
    assert stopped["reason"] == "manual" and dict(stopped) == stopped.as_dict()
    rec = bus.publish("logs:records", "dns", LogRecord({"uid": "C1", "query": "example.com"}))
    assert rec.as_dict()["data"] == {"uid": "C1", "query": "example.com"}


class Quick(Counter):
    name = "quick"
    tick_s = 0.05


def test_a_service_ticks_every_tick_s():
    """tick_s is kept with or without traffic: 0.05 s gives about 20 ticks a second, the default one."""
    agent = fake_agent()
    t0 = time.monotonic()
    quick, slow = start_services(agent, [Quick(), Counter()])
    wait_for(lambda: quick.service.ticks >= 10, timeout=30)
    assert slow.service.ticks <= time.monotonic() - t0 + 1       # once a second at most
    agent.health.stop_all(2)
