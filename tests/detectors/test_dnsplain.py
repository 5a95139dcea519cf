"""dns_hijack's own judge() of a DNS message (a query, and a NOERROR answer
judged plain: answer_facts, _bogon_score, _plain) leaves exactly what every
detector's judge() leaves (parse() + detect() + threshold_and_dedup()): the
same findings, counters, LAN model, and the DNS detector's tables
(transactions, clients, names' histories, unsolicited answers, raised keys)
with the same keys in the same order.  On seeded randomized DNS streams
(races, wrong MACs, floods, ARP claims: tests/detectors/dnsstream.py), on
the bench's capture (bogons raised once per client, then counted as
repeats) and with its race, and with tables too small for them."""
import dataclasses
import subprocess
import sys

import pytest

from agent.config import DetectionSection
from agent.detectors import DETECTORS
from agent.detectors.detector import Detector
from agent.detectors.offline import detect_file
from tests.conftest import ROOT
from tests.detectors import dnsstream
from tests.detectors.scenarios import T0, VICTIM, VICTIM_MAC, Scenario, dns_answer, dns_query, lan_baseline, udp_frame
from tests.detectors.test_dnsfold import LAN_TABLES

RESOLVER, RESOLVER_MAC = "192.168.1.53", "00:1a:2b:3c:4d:53"
DNS_TABLES = ("queries", "clients", "history", "unsolicited", "_raised")


def judged(path, generic: bool, limits: dict = None, threshold: int = 40) -> tuple:
    """(findings, counters, LAN tables, DNS tables) of every message its own event, judged by dns_hijack's own
    judge() or (generic) by every detector's."""
    cfg = dataclasses.replace(DetectionSection(), dns_fold=False, dns_repeats=False, dns_threshold=threshold)
    detectors = [cls(cfg) for cls in DETECTORS]
    dns = next(d for d in detectors if d.name == "dns_hijack")
    for table, limit in (limits or {}).items():
        getattr(dns, table).limit = limit
    if generic:
        dns.judge = lambda event: Detector.judge(dns, event)
    found, error, pipeline = detect_file(str(path), cfg, detectors=detectors)
    assert error is None
    findings = [(d.type, d.key, d.score, d.first_seen, d.description, d.attacker, d.attacker_mac, d.src_mac,
                 d.dst_mac, d.verify, repr(d.evidence)) for d in found]
    lan = {t: repr(list(getattr(pipeline.lan, t).items())) for t in LAN_TABLES}
    tables = {t: repr([(k, dns.transaction(k) if t == "queries" else v) for k, v in getattr(dns, t).items()])
              for t in DNS_TABLES}
    tables["publics"] = [v.publics for v in dns.history.values()]
    assert all(len(getattr(dns, t)) <= getattr(dns, t).limit for t in DNS_TABLES)
    return findings, pipeline.counts(), lan, tables


def same_as_generic(path, limits: dict = None, threshold: int = 40) -> list:
    own = judged(path, False, limits, threshold)
    assert own == judged(path, True, limits, threshold)
    return own[0]


@pytest.mark.parametrize("seed, threshold", [(11, 40), (505, 40), (505, 50)])
def test_own_judge_leaves_what_parse_and_detect_leave(tmp_path, seed, threshold):
    found = same_as_generic(dnsstream.stream(seed, exchanges=1500).write(tmp_path), threshold=threshold)
    assert sum(f[0] == "dns_hijack" for f in found) > 5


@pytest.mark.parametrize("threshold", [40, 50])
def test_address_sets_out_of_order_and_repeated(tmp_path, threshold):
    """Answers whose addresses come unsorted, twice, mixed public and private, or with a CNAME: bogons below and
    above the threshold, after public answers and alone."""
    sc = Scenario("plain_sets", "dns_hijack", True)
    lan_baseline(sc, T0)
    sets = [["203.0.113.9", "203.0.113.5"], ["93.184.216.34", "10.0.0.1"], ["10.0.0.7", "10.0.0.7"],
            ["93.184.216.34"], ["198.51.100.2", "93.184.216.35", "10.1.2.3"], []]
    for k in range(36):
        name = f"www.set{k % 4}.com" if k % 5 else f"set{k}.lan"
        q = dns_query(name, 0x3000 + k)
        ts = T0 + 3 + 0.01 * k
        sc.add(ts, udp_frame(VICTIM, RESOLVER, 53000 + k, 53, q.to_wire(), VICTIM_MAC, RESOLVER_MAC))
        sc.add(ts + 0.002, udp_frame(RESOLVER, VICTIM, 53, 53000 + k, dns_answer(q, sets[k % len(sets)]),
                                     RESOLVER_MAC, VICTIM_MAC))
    found = same_as_generic(sc.write(tmp_path), threshold=threshold)
    assert any(f[2] == 70 for f in found) and (threshold > 45) != any(f[2] == 45 for f in found)


@pytest.mark.parametrize("pairs, forge", [(4000, None), (3000, 1700)])
def test_bench_bogons_and_a_race_as_parse_and_detect(tmp_path, pairs, forge):
    path = tmp_path / "dns.pcap"
    subprocess.run([sys.executable, str(ROOT / "bench" / "gendns.py"), str(path), str(pairs)]
                   + ([str(forge)] if forge else []), check=True)
    found = same_as_generic(path)
    scores = sorted({f[2] for f in found})
    assert len(found) >= 50 and scores[0] == 45            # a bogon per client, the rest counted as repeats
    assert (forge is not None) == (scores[-1] > 70)          # the race raised beside them


def test_small_tables_forget_as_parse_and_detect(tmp_path):
    path = dnsstream.stream(505, exchanges=1500).write(tmp_path)
    assert same_as_generic(path, {"queries": 64, "clients": 8, "history": 32, "_raised": 16})
