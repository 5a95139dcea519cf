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


def run(path, fold: bool, repeats: bool = False) -> tuple:
    cfg = dataclasses.replace(DetectionSection(), dns_fold=fold, dns_repeats=repeats)
    found, error, pipeline = detect_file(str(path), cfg)
    assert error is None
    findings = [(d.type, d.key, d.score, d.first_seen, d.description, repr(d.evidence)) for d in found]
    lan = {t: repr(list(getattr(pipeline.lan, t).items())) for t in LAN_TABLES}
    return findings, pipeline.counts(), lan, pipeline.unlearned, pipeline.dns_gate


@pytest.mark.parametrize("seed", [101, 202, 303])
def test_folded_queries_find_what_their_own_events_found(tmp_path, seed):
    path = dnsstream.stream(seed, exchanges=1500).write(tmp_path)
    *plain, gate_off = run(path, False)
    *folded, gate = run(path, True)
    *repeated, rgate = run(path, True, repeats=True)
    assert gate_off == {}
    assert folded == plain
    assert repeated == plain
    assert gate["folded"] > 1000 and gate["held"] == gate["folded"] + gate["released"] and gate["dropped"] == 0
    assert gate["repeats"] == gate["templates"] == 0
    assert rgate["repeats"] > 5 and rgate["templates"] > 100 and rgate["changed"] > 10
    assert plain[0], "the stream raised nothing: it tests nothing"


def test_sequential_exchanges_fold_every_query(tmp_path):
    from bench import gendns
    path = tmp_path / "dns.pcap"
    gendns.main(str(path), 7000, forge=6000)
    *plain, _ = run(path, False)
    *folded, gate = run(path, True)
    *repeated, rgate = run(path, True, repeats=True)
    assert folded == plain
    assert repeated == plain
    assert gate == {"held": 7000, "folded": 7000, "released": 0, "dropped": 0, "repeats": 0, "templates": 0,
                    "changed": 0, "evicted": 0, "unfit": 0}
    # 7,000 exchanges over 5,000 names (bench/gendns.py): the first answer of each name makes its template, the
    # last 2,000 repeat one but where a full set of the table evicted it; the forged answer of the race is none
    # (the real answer before it carried its query)
    assert rgate["templates"] + rgate["repeats"] == 7000 and rgate["repeats"] > 1900 and rgate["changed"] == 0
    assert 5000 <= rgate["templates"] <= 5000 + rgate["evicted"] < 5200
    assert any("race" in f[5] for f in plain[0])       # the forged answer is raised either way
