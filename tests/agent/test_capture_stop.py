"""Bounded stop: a looping capture whose filter matches nothing (every record
dropped, no batch ever filled) still stops within 2 s, by request and by SIGTERM."""
import signal
import time

import pytest

from tests.agent.conftest import wait_for

NOTHING = "host 203.0.113.250"   # TEST-NET-3: not in the demo capture


def _filtered(a) -> int:
    return a.client.capture_metrics()["filtered_out"]


@pytest.mark.parametrize("pace", [0.0, 1.0])
def test_stop_ends_a_looping_capture_that_filters_everything(agent, pace):
    agent.client.capture_start(file="demo", loop=True, bpf=NOTHING, pace=pace)
    if pace == 0.0:   # at full speed the demo loops many times over, all of it filtered out
        wait_for(lambda: _filtered(agent) > 100000, timeout=30)
    else:
        time.sleep(1.5)
    assert agent.client.capture_status()["stats"]["packets"] == 0
    t = time.monotonic()
    out = agent.client.capture_stop()
    assert out["stopped"] is True and time.monotonic() - t < 2.0
    assert agent.client.capture_status()["running"] is False
    assert agent.client.raw("GET", "/v1/health").status == 200


def test_sigterm_ends_a_looping_capture_that_filters_everything(make_agent):
    a = make_agent()
    a.client.capture_start(file="demo", loop=True, bpf=NOTHING)
    wait_for(lambda: _filtered(a) > 100000, timeout=30)
    t = time.monotonic()
    a.proc.send_signal(signal.SIGTERM)
    a.proc.wait(timeout=20)
    took = time.monotonic() - t
    assert a.proc.returncode == 0 and took < 5.0, took
    assert "stopped" in a.output()
