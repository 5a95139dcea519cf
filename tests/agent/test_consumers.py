"""The consumer worker (agent/consumers.py): the detectors run in a child
process of the agent on the events of a shared ring, their findings come back
and are raised as threats; a worker that dies is started again and health
says so."""
import os
import signal
import subprocess
import sys

from hwdrivers.events import SIZE
from tests.agent.conftest import wait_for
from tests.conftest import ROOT

IDLE = '[capture]\nautostart = false\n'


def _dns(tmp_path, pairs: int, forge: int):
    src = tmp_path / f"dns-{pairs}-{forge}.pcap"
    subprocess.run([sys.executable, str(ROOT / "bench" / "gendns.py"), str(src), str(pairs), str(forge)], check=True)
    return src


def _race(client):
    found = client.get("/v1/threats", attack_type="dns_hijack", severity="critical", limit=1000)["threats"]
    return next((t for t in found if "answered twice" in t["description"]), None)


def _consumers(client) -> dict:
    return client.health()["components"]["consumers"]


def test_forged_answer_is_raised_by_the_worker(make_agent, tmp_path):
    a = make_agent(IDLE)
    c = a.client
    assert _consumers(c)["pid"] is None                 # no capture yet: no worker
    # 7,000 exchanges over 5,000 names: the last 2,000 answers repeat their name's template, the real answer the
    # forger races among them (the race is judged against what the repeat left in its transaction)
    src = a.pcap(str(_dns(tmp_path, 7000, 6500)))
    c.capture_start(file=src, pace=0.5)                # 10,000 packets/s, as recorded at half speed
    wait_for(lambda: c.capture_status()["running"] is False, timeout=120)
    raised = wait_for(lambda: _race(c), timeout=60, interval=0.3)
    assert raised["attacker_mac"] == "02:00:00:00:00:ee" and "host1500.example45.com" in raised["description"]
    worker = wait_for(lambda: (w := _consumers(c))["detectors"].get("dns_hijack", {}).get("events", 0) >= 14001
                      and w, timeout=30)
    assert worker["pid"] not in (None, a.proc.pid) and worker["restarts"] == 0
    # 14,001 DNS messages: the queries the C core folded into the next DNS event, and the events
    gate = worker["dns_gate"]
    assert worker["ring"]["moved"] + gate["folded"] == 14001 and worker["ring"]["dropped"] == {}
    assert worker["queries"] == gate["folded"] > 6000 and gate["dropped"] == 0
    assert gate["repeats"] > 1900 and gate["templates"] + gate["repeats"] == gate["folded"]
    assert worker["detectors"]["dns_hijack"]["events"] == worker["fed"] + worker["queries"] == 14001
    # the worker is a child of the agent, on a core of its own
    with open(f"/proc/{worker['pid']}/stat") as f:
        assert int(f.read().rsplit(")", 1)[1].split()[1]) == a.proc.pid
    health = c.health()
    assert health["losses"] == {} and health["status"] == "healthy", health["losses"]


def test_a_killed_worker_is_restarted_and_health_says_so(make_agent, tmp_path):
    a = make_agent(IDLE)
    c = a.client
    c.capture_start(file=a.pcap(str(_dns(tmp_path, 200, -1))))
    pid = wait_for(lambda: _consumers(c)["pid"], timeout=30)
    wait_for(lambda: c.capture_status()["running"] is False, timeout=60)
    os.kill(pid, signal.SIGKILL)
    worker = wait_for(lambda: (w := _consumers(c))["restarts"] == 1 and w["pid"] != pid and w, timeout=30)
    assert "restarted 1 time" in worker["error"]
    health = c.health()
    assert health["status"] == "degraded" and health["losses"]["event_path"]["consumer_restarts"] == 1
    # the new worker detects: a capture after the restart raises its race
    c.capture_start(file=a.pcap(str(_dns(tmp_path, 1000, 500))), pace=0.5)
    raised = wait_for(lambda: _race(c), timeout=60, interval=0.3)
    assert "host500." in raised["description"]
    assert a.stop() == 0
    assert not os.path.exists(f"/proc/{worker['pid']}") or _zombie_or_gone(worker["pid"])


def test_ctrl_c_stops_the_worker_and_the_log_indexer_through_the_agent(make_agent, tmp_path):
    """A terminal's Ctrl-C signals its whole foreground process group: the agent's children are in sessions
    of their own, so the agent stops them in order (no worker started again during the stop, no log lines
    lost with a killed indexer), as systemd's KillMode=mixed does on the box."""
    a = make_agent(IDLE)
    c = a.client
    c.capture_start(file=a.pcap(str(_dns(tmp_path, 20000, -1))), pace=0.05)    # runs for a while
    worker = wait_for(lambda: _consumers(c)["pid"], timeout=30)
    indexer = wait_for(lambda: c.health()["components"]["logs"]["indexer"]["pid"], timeout=30)
    assert os.getpgid(worker) != a.proc.pid and os.getpgid(indexer) != a.proc.pid
    os.killpg(a.proc.pid, signal.SIGINT)
    assert a.proc.wait(60) == 0
    out = a.output()
    assert "starting another" not in out and "Traceback" not in out, out
    assert _zombie_or_gone(worker) and _zombie_or_gone(indexer)


def _zombie_or_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_without_the_worker_the_detector_threads_raise_it(make_agent, tmp_path):
    """[detection] process = false: the detector pipeline a thread of the agent, as before the worker."""
    a = make_agent(IDLE + "[detection]\nprocess = false\n")
    c = a.client
    c.capture_start(file=a.pcap(str(_dns(tmp_path, 1000, 500))), pace=0.5)
    raised = wait_for(lambda: _race(c), timeout=60, interval=0.3)
    assert "host500." in raised["description"]
    components = c.health()["components"]
    assert "consumers" not in components and components["detectors"]["handled"] > 0
    assert components["detectors"]["dns_hijack"]["raised"] > 0


def test_a_stalled_worker_costs_counted_drops_never_a_wait(make_agent, tmp_path):
    """The worker stopped (SIGSTOP) while a capture runs: the ring fills, the capture goes on at full speed,
    what did not fit is counted in health, in the capture's metrics and in /metrics; resumed, it catches up.
    (No protocol logs: the dispatcher only copies events, so it keeps up with the file.)"""
    from prometheus_client.parser import text_string_to_metric_families
    a = make_agent(IDLE + "[logs]\nenabled = false\n[detection]\ndns_fold = false\n")   # every message an event
    c = a.client
    c.capture_start(file=a.pcap(str(_dns(tmp_path, 100, -1))))
    pid = wait_for(lambda: _consumers(c)["events"] >= 200 and _consumers(c)["pid"], timeout=60)
    wait_for(lambda: c.capture_status()["running"] is False, timeout=60)
    os.kill(pid, signal.SIGSTOP)
    try:
        c.capture_start(file=a.pcap(str(_dns(tmp_path, 60000, -1))), pace=0.5)   # 120,000 events in about 12 s
                                                                                 # (the ring holds some 80,000)
        wait_for(lambda: c.capture_status()["running"] is False, timeout=120)
        health = c.health()
        lost = health["losses"]["event_path"]
        worker = health["components"]["consumers"]
        ring = worker["ring"]
        assert health["status"] == "degraded" and lost["shared_ring:dns"] == ring["dropped"]["dns"] > 0
        held = ring["moved"] - 200                 # packed: a DNS event takes a fraction of a struct hw_event
        assert ring["queued"] == held > 3 * 8192 and ring["capacity_bytes"] == 8192 * SIZE
        stats = c.capture_status()["last_run"]["stats"]   # every event: in the ring, or counted lost on the way
        assert 120000 == ring["dropped"]["dns"] + held + stats["events_dropped"].get("dns", 0)
        text = c.raw("GET", "/metrics").body.decode()
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for f in text_string_to_metric_families(text) for s in f.samples}
        assert samples[("capbox_lost_total", (("cause", "shared_ring:dns"), ("path", "event_path")))] == \
            lost["shared_ring:dns"]
        assert samples[("capbox_dropped_total", (("cause", "shared_ring"),))] == lost["shared_ring:dns"]
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: _consumers(c)["events"] == 200 + held, timeout=60)
    assert _consumers(c)["ring"]["queued"] == 0 and _consumers(c)["pid"] == pid


def test_the_dispatcher_folds_dns_queries_only_while_nothing_here_reads_them(tmp_path):
    """With the worker's ring, the dispatcher lets the C core fold each DNS query into the next DNS event; a
    packets:dns subscriber in the agent turns folding off, and gets a query folded before it came as its own
    event, in order."""
    from agent.bus import Bus
    from agent.consumers import Folding, dispatch_events
    from hwdrivers.shring import SharedRing
    from tests.hwdrivers.test_dnsgate import ask, reply
    from tests.hwdrivers.packets import session
    bus, ring, folding = Bus(), SharedRing(1024), Folding(fold=True)
    peer = SharedRing(fd=os.dup(ring.fd))
    try:
        with session(tmp_path, events=frozenset({"dns"})) as s:
            dispatch_events(s, ring, bus, folding=folding)  # nobody reads DNS here: folding on
            assert s.dns_fold
            ask(s, 1_000, ident=1)
            reply(s, 2_000, ident=1)
            assert dispatch_events(s, ring, bus, folding=folding) == 1
            assert folding.counters == {"held": 1, "folded": 1, "released": 0, "dropped": 0, "repeats": 0,
                                        "templates": 0, "changed": 0, "evicted": 0, "unfit": 0}
            ask(s, 3_000, ident=2)
            reply(s, 4_000, ident=2)                        # folded in the C ring before anyone listens
            sub = bus.subscribe(["packets:dns"])
            assert dispatch_events(s, ring, bus, folding=folding) == 1 and not s.dns_fold
            ask(s, 5_000, ident=3)                          # off: its own event
            assert dispatch_events(s, ring, bus, folding=folding) == 1
            seen = []
            while (env := sub.get(timeout=0)) is not None:
                seen.append((env.data.ts_ns, env.data.record.response, env.data.query))
        taken = [(e.ts_ns, e.query and e.query.ts_ns) for e in peer.take(16, frozenset({"dns"}))[1]]
    finally:
        peer.close()
        ring.close()
    assert seen == [(3_000, False, None), (4_000, True, None), (5_000, False, None)]
    assert taken == [(2_000, 1_000), (4_000, 3_000), (5_000, None)]    # the worker: every query, once
