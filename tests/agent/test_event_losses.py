"""No silent loss on the event path: a capture whose event ring overflows
turns /v1/health degraded with the counts, and /metrics counts them."""
import subprocess
import sys

from tests.agent.conftest import wait_for
from tests.conftest import ROOT

SMALL_RING = '[capture]\nautostart = false\nevent_ring = 1024\n'


def test_event_ring_drops_turn_health_degraded(make_agent, tmp_path):
    src = tmp_path / "dns.pcap"
    subprocess.run([sys.executable, str(ROOT / "bench" / "gendns.py"), str(src), "30000"], check=True)
    agent = make_agent(SMALL_RING)
    health = agent.client.health()
    assert health["status"] == "healthy" and health["losses"] == {}
    agent.client.capture_start(file=agent.pcap(str(src)))
    wait_for(lambda: agent.client.capture_status()["running"] is False, timeout=120)
    health = agent.client.health()
    lost = health["losses"].get("event_path", {})
    # the core reads the file far faster than Python takes 60,000 events out of a 1,024-record ring
    assert health["status"] == "degraded" and lost.get("event_ring:dns", 0) > 0, health["losses"]
    text = agent.client.raw("GET", "/metrics").body.decode()
    sample = 'capbox_lost_total{path="event_path",cause="event_ring:dns"}'
    line = next(x for x in text.splitlines() if x.startswith(sample))
    assert float(line.split()[-1]) == lost["event_ring:dns"]
