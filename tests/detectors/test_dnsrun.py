"""DNS repeats one after another judged as a run (agent.detectors.dnsrun, fed
by Pipeline.feed_all) leave exactly what every message as its own event
leaves: the same findings, counters, LAN model, and the DNS detector's
tables (transactions, clients, names' histories) with the same keys in the
same order.  The run is cut, and the repeat judged in full, where a repeat
could be judged otherwise: an answer through another MAC than the
resolver's (and after it, a resolver address sent from two MACs), a
transaction already answered, and tables too small for the run."""
import dataclasses

from agent.config import DetectionSection
from agent.detectors import DETECTORS
from agent.detectors.offline import detect_file
from tests.detectors.scenarios import (ATTACKER_MAC, OTHER, OTHER_MAC, T0, VICTIM, VICTIM_MAC, Scenario, dns_answer,
                                       dns_query, lan_baseline, udp_frame)
from tests.detectors.test_dnsfold import LAN_TABLES

NAME, PUBLIC, BOGON = "www.run.com", "93.184.216.34", "203.0.113.5"
RESOLVER, RESOLVER_MAC = "192.168.1.53", "00:1a:2b:3c:4d:53"


def exchange(sc, ts, ident, ips, client=VICTIM, cmac=VICTIM_MAC, mac=RESOLVER_MAC, name=NAME, port=53000):
    """A query to the LAN resolver through mac, and its answer from mac."""
    q = dns_query(name, ident)
    sc.add(ts, udp_frame(client, RESOLVER, port, 53, q.to_wire(), cmac, mac))
    sc.add(ts + 0.002, udp_frame(RESOLVER, client, 53, port, dns_answer(q, ips), mac, cmac))


def judged(path, repeats: bool, limits: dict = None) -> tuple:
    """(findings, counters, LAN tables, DNS tables, the repeats judge_exchange judged, the gate's counters) of
    `capbox detect`'s path: every message its own event, or folded with repeats (judged as runs)."""
    cfg = dataclasses.replace(DetectionSection(), dns_fold=repeats, dns_repeats=repeats)
    detectors = [cls(cfg) for cls in DETECTORS]
    dns = next(d for d in detectors if d.name == "dns_hijack")
    for table, limit in (limits or {}).items():
        getattr(dns, table).limit = limit
    full = []
    judge_exchange = dns.judge_exchange
    dns.judge_exchange = lambda r, frame: full.append(r) or judge_exchange(r, frame)
    found, error, pipeline = detect_file(str(path), cfg, detectors=detectors)
    assert error is None
    findings = [(d.type, d.key, d.score, d.first_seen, d.description, repr(d.evidence)) for d in found]
    lan = {t: repr(list(getattr(pipeline.lan, t).items())) for t in LAN_TABLES}
    tables = {"queries": [(k, dns.transaction(k)) for k in list(dns.queries)], "clients": list(dns.clients.items()),
              "history": [(k, list(v), v.publics) for k, v in dns.history.items()]}
    return findings, pipeline.counts(), lan, tables, full, pipeline.dns_gate


def same_as_every_message(path, limits: dict = None) -> tuple:
    *plain, _, _ = judged(path, False, limits)
    *run, full, gate = judged(path, True, limits)
    assert run == plain
    assert gate["repeats"] >= len(full) + 18, (gate, len(full))   # repeats were judged in runs
    return plain, full


def test_a_run_is_cut_at_an_answer_through_another_mac(tmp_path):
    """The client's queries to the resolver go out through the attacker's MAC and its answers come back from it
    (the same facts: a repeat of the resolver's template): judged in full, a wrong MAC; after it the resolver's
    address has two senders, so its next repeats are judged in full too."""
    sc = Scenario("run_mac_change", "dns_hijack", True)
    lan_baseline(sc, T0)
    ts = T0 + 3
    for k in range(40):
        exchange(sc, ts + 0.01 * k, 0x2000 + k, [PUBLIC], mac=ATTACKER_MAC if k == 20 else RESOLVER_MAC)
    (findings, *_), full = same_as_every_message(sc.write(tmp_path))
    assert [r.src_mac for r in full][:1] == [ATTACKER_MAC]          # the run cut there, not before
    assert any("wrong_mac" in f[5] and ATTACKER_MAC in f[1] for f in findings), findings
    assert len(full) == 20                                           # and at every repeat after it


def test_a_run_is_cut_at_a_transaction_already_answered(tmp_path):
    """A query sent again and answered again (a repeat of a transaction judged in the run), then a forged answer
    to it: the repeat is judged in full, and the forged answer races both."""
    sc = Scenario("run_race", "dns_hijack", True)
    lan_baseline(sc, T0)
    ts = T0 + 3
    for k in range(30):
        exchange(sc, ts + 0.01 * k, 0x3000 + k, [BOGON], port=50000 + k)
    exchange(sc, ts + 0.5, 0x3000 + 10, [BOGON], port=50010)                 # again: the same transaction
    q = dns_query(NAME, 0x3000 + 10)
    sc.add(ts + 0.51, udp_frame(RESOLVER, VICTIM, 53, 50010, dns_answer(q, ["45.33.32.66"]), ATTACKER_MAC,
                                VICTIM_MAC))
    for k in range(30):
        exchange(sc, ts + 0.6 + 0.01 * k, 0x4000 + k, [BOGON], client=OTHER, cmac=OTHER_MAC, port=51000 + k)
    (findings, *_), full = same_as_every_message(sc.write(tmp_path))
    assert [(r.dport, r.id) for r in full][:1] == [(50010, 0x3000 + 10)], full
    assert any("answered twice" in f[4] and ATTACKER_MAC in f[1] for f in findings), findings


def test_tables_too_small_for_a_run_forget_as_every_message_does(tmp_path):
    """Runs of repeats from 5 busy clients over 12 names, every 10th exchange from one of 25 others and for one of
    28 other names, into transactions held to 64, clients to 8 and histories to 16: each table forgets the same
    entries, in the same order, as writing every message does (the busy clients' times, renewed once per run,
    keep them in the table)."""
    sc = Scenario("run_overflow", "dns_hijack", False)
    lan_baseline(sc, T0)
    ts = T0 + 3
    for k in range(1200):
        c, n = (5 + k // 10 % 25, 12 + k // 10 % 28) if k % 10 == 9 else (k % 5, k % 12)
        exchange(sc, ts + 0.01 * k, k & 0xFFFF, [PUBLIC if n % 7 else BOGON], client=f"192.168.1.{100 + c}",
                 cmac="3c:22:fb:00:01:%02x" % c, name=f"host{n}.run.com", port=40000 + k % 500)
    plain, full = same_as_every_message(sc.write(tmp_path), {"queries": 64, "clients": 8, "history": 16})
    tables = plain[3]
    assert len(tables["queries"]) == 64 and len(tables["clients"]) == 8 and len(tables["history"]) == 16
    assert len(full) < 300
