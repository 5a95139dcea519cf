"""DNS queries folded into the next DNS event by the C core (hwdrivers.dnsgate)
find exactly what their own events found: the same findings, counters and
LAN model, on seeded randomized DNS streams (races, wrong MACs, unsolicited
floods, ARP claims between a query and its answer: tests/detectors/dnsstream.py)
and on the bench's sequential exchanges, where every query folds."""
import dataclasses

import pytest

from agent.config import DetectionSection
from agent.detectors.offline import detect_file
from tests.detectors import dnsstream

LAN_TABLES = ("hosts", "senders", "macs", "off_link", "routers", "router_ips", "next_hop", "gateways")


def run(path, fold: bool) -> tuple:
    found, error, pipeline = detect_file(str(path), dataclasses.replace(DetectionSection(), dns_fold=fold))
    assert error is None
    findings = [(d.type, d.key, d.score, d.first_seen, d.description, repr(d.evidence)) for d in found]
    lan = {t: repr(list(getattr(pipeline.lan, t).items())) for t in LAN_TABLES}
    return findings, pipeline.counts(), lan, pipeline.unlearned, pipeline.dns_gate


@pytest.mark.parametrize("seed", [101, 202, 303])
def test_folded_queries_find_what_their_own_events_found(tmp_path, seed):
    path = dnsstream.stream(seed, exchanges=1500).write(tmp_path)
    *plain, gate_off = run(path, False)
    *folded, gate = run(path, True)
    assert gate_off == {}
    assert folded == plain
    assert gate["folded"] > 1000 and gate["held"] == gate["folded"] + gate["released"] and gate["dropped"] == 0
    assert plain[0], "the stream raised nothing: it tests nothing"


def test_sequential_exchanges_fold_every_query(tmp_path):
    from bench import gendns
    path = tmp_path / "dns.pcap"
    gendns.main(str(path), 2000, forge=1000)
    *plain, _ = run(path, False)
    *folded, gate = run(path, True)
    assert folded == plain
    assert gate == {"held": 2000, "folded": 2000, "released": 0, "dropped": 0}
    assert any("race" in f[5] for f in plain[0])       # the forged answer is raised either way
