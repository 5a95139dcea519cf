"""DNS answers read as repeats of their template (src/dnsrepeat.c,
dns_hijack.judge_repeat) find exactly what every message as its own event
finds: findings, counters and the LAN model, on the cases where a repeat's
judgement could differ from its template's (an ARP between two answers, a
TTL jump, a changed set, a race after a repeat, NXDOMAIN from another
resolver, new clients whose first finding a repeat raises, a full table)."""
import pytest

from tests.detectors.scenarios import (ATTACKER, ATTACKER_MAC, GW, GW_MAC, OTHER, OTHER_MAC, RESOLVER, T0, VICTIM,
                                       VICTIM_MAC, Scenario, arp_frame, dns_answer, dns_exchange, dns_query,
                                       lan_baseline, udp_frame)
from tests.detectors.test_dnsfold import run

NAME, BOGON, PUBLIC = "www.repeat.com", "203.0.113.5", "93.184.216.34"
LAN_RESOLVER, LAN_RESOLVER_MAC = "192.168.1.53", "00:1a:2b:3c:4d:53"


def exchanges(sc, ts, n, ips=(BOGON,), ident=0x2000, **kw) -> float:
    for k in range(n):
        dns_exchange(sc, ts + 0.1 * k, NAME, ident + k, [(list(ips), None, None)], **kw)
    return ts + 0.1 * n


def arp_between_answers(sc):
    """A LAN resolver first claimed by the attacker's ARP, then an ARP from its own MAC mid-stream."""
    lan = {"server": LAN_RESOLVER, "smac": LAN_RESOLVER_MAC}
    sc.add(T0 + 2, arp_frame(2, ATTACKER_MAC, LAN_RESOLVER, VICTIM_MAC, VICTIM))
    ts = exchanges(sc, T0 + 3, 5, ips=(PUBLIC,), **lan)
    sc.add(ts, arp_frame(1, LAN_RESOLVER_MAC, LAN_RESOLVER, "", VICTIM))
    exchanges(sc, ts + 0.05, 5, ips=(PUBLIC,), ident=0x3000, **lan)


def ttl_jump(sc):
    ts = exchanges(sc, T0 + 3, 5, ips=(PUBLIC,), ttl=60)
    exchanges(sc, ts, 3, ips=(PUBLIC,), ident=0x3000, ttl=86400 * 3)


def changed_set(sc):
    ts = exchanges(sc, T0 + 3, 4, ips=(PUBLIC,))
    exchanges(sc, ts, 4, ips=("93.184.216.35",), ident=0x3000)


def race_after_repeat(sc):
    ts = exchanges(sc, T0 + 3, 4)
    q = dns_query(NAME, 0x3000)
    sc.add(ts, udp_frame(VICTIM, RESOLVER, 53000, 53, q.to_wire(), VICTIM_MAC, GW_MAC))
    sc.add(ts + 0.002, udp_frame(RESOLVER, VICTIM, 53, 53000, dns_answer(q, [BOGON]), GW_MAC, VICTIM_MAC))
    sc.add(ts + 0.003, udp_frame(RESOLVER, VICTIM, 53, 53000, dns_answer(q, ["45.33.32.66"]), ATTACKER_MAC,
                                 VICTIM_MAC))


def query_again_after_repeat(sc):
    """A repeat's transaction (kept compact) joined by the same query sent again, then answered by a forger."""
    ts = exchanges(sc, T0 + 3, 4)
    q = dns_query(NAME, 0x3000)
    sc.add(ts, udp_frame(VICTIM, RESOLVER, 53000, 53, q.to_wire(), VICTIM_MAC, GW_MAC))
    sc.add(ts + 0.002, udp_frame(RESOLVER, VICTIM, 53, 53000, dns_answer(q, [BOGON]), GW_MAC, VICTIM_MAC))
    sc.add(ts + 0.5, udp_frame(VICTIM, RESOLVER, 53000, 53, q.to_wire(), VICTIM_MAC, GW_MAC))
    sc.add(ts + 0.503, udp_frame(RESOLVER, VICTIM, 53, 53000, dns_answer(q, ["45.33.32.66"]), ATTACKER_MAC,
                                 VICTIM_MAC))


def nxdomain_elsewhere(sc):
    ts = exchanges(sc, T0 + 3, 3, ips=(PUBLIC,))
    q = dns_query(NAME, 0x3000)
    r = dns_answer(q, [])
    r = r[:3] + bytes([r[3] | 3]) + r[4:]                 # NXDOMAIN
    sc.add(ts, udp_frame(VICTIM, "1.1.1.1", 53001, 53, q.to_wire(), VICTIM_MAC, GW_MAC))
    sc.add(ts + 0.002, udp_frame("1.1.1.1", VICTIM, 53, 53001, r, GW_MAC, VICTIM_MAC))
    exchanges(sc, ts + 0.1, 3, ips=(PUBLIC,), ident=0x4000)


def public_rolls_off(sc):
    """A name answered publicly, then with a bogon until its public answers left its history (8 answers): a new
    client's bogon then scores as a bogon (45), not as one after public answers (70)."""
    ts = exchanges(sc, T0 + 3, 8, ips=(PUBLIC,))
    ts = exchanges(sc, ts, 9, ident=0x3000)
    exchanges(sc, ts, 2, client=OTHER, cmac=OTHER_MAC, ident=0x4000)


def new_clients(sc):
    ts = exchanges(sc, T0 + 3, 3)
    for client, mac in ((OTHER, OTHER_MAC), (ATTACKER, ATTACKER_MAC), (GW, GW_MAC)):
        ts = exchanges(sc, ts, 3, client=client, cmac=mac, ident=0x5000 + len(sc.frames))


CASES = {f.__name__: f for f in (arp_between_answers, ttl_jump, changed_set, race_after_repeat, nxdomain_elsewhere,
                                 new_clients, public_rolls_off, query_again_after_repeat)}
EXPECT = {"arp_between_answers": "wrong_mac", "ttl_jump": None, "changed_set": None, "race_after_repeat": "race",
          "nxdomain_elsewhere": "nxdomain_elsewhere", "new_clients": "bogon", "public_rolls_off": "bogon_after_public",
          "query_again_after_repeat": "race"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_repeats_find_what_every_message_finds(tmp_path, case):
    sc = Scenario(case, "dns_hijack", True)
    lan_baseline(sc, T0)
    CASES[case](sc)
    path = sc.write(tmp_path)
    *plain, _ = run(path, False)
    *repeated, gate = run(path, True, repeats=True)
    assert repeated == plain
    assert gate["repeats"] >= 2, gate                      # the repeat path was taken
    if EXPECT[case]:
        assert any(EXPECT[case] in f[5] for f in plain[0]), plain[0]
    if case == "ttl_jump":
        assert plain[1]["dns_hijack"]["below_threshold"] >= 1    # the jump (10 points) judged, not raised
    if case == "changed_set":
        assert gate["changed"] == 1
    if case == "new_clients":
        assert len([f for f in plain[0] if f[0] == "dns_hijack"]) == 4
    if case == "public_rolls_off":
        other = [f for f in plain[0] if OTHER in f[1]]     # (a score of 70 would not be a repeat of 45's finding)
        assert len(other) == 1 and other[0][2] == 45 and "bogon_after_public" not in other[0][5], other


def test_a_full_table_evicts_and_counts(tmp_path):
    """More names than the table holds, twice over: evicted templates are made again, and nothing differs."""
    from bench import gendns
    path = tmp_path / "many.pcap"
    with open(path, "wb") as f:
        f.write(b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00" + bytes(8) + b"\xff\xff\x00\x00\x01\x00\x00\x00")
        for n in range(40000):
            name = gendns.qname(n % 20000)
            q = bytes([n >> 8 & 0xFF, n & 0xFF, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]) + name + b"\0\x01\0\x01"
            a = (bytes([n >> 8 & 0xFF, n & 0xFF, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]) + name + b"\0\x01\0\x01"
                 + b"\xc0\x0c\0\x01\0\x01\0\0\x01\x2c\0\x04" + bytes([203, 0, 113, 1 + n % 250]))
            client, cmac = bytes([198, 51, 100, 1 + n % 50]), bytes.fromhex("0200000001%02x" % (1 + n % 50))
            port = 20000 + n % 30000
            for k, fr in enumerate((gendns.frame(client, gendns.RESOLVER, cmac, gendns.RES_MAC, port, 53, q),
                                    gendns.frame(gendns.RESOLVER, client, gendns.RES_MAC, cmac, 53, port, a))):
                t = 1_700_000_000 * 10**6 + n * 100 + k * 40
                f.write((t // 10**6).to_bytes(4, "little") + (t % 10**6).to_bytes(4, "little")
                        + len(fr).to_bytes(4, "little") * 2 + fr)
    *folded, _ = run(path, True)
    *repeated, gate = run(path, True, repeats=True)
    assert repeated == folded
    assert gate["evicted"] > 1000 and gate["templates"] + gate["repeats"] == 40000 and gate["repeats"] > 1000


def test_a_full_transaction_table_forgets_as_every_message_does(tmp_path):
    """Repeats keep their transactions compact (dns_hijack.transaction): with the table held to 64, 200 exchanges
    and forged second answers (each from its own MAC) to transactions 20 to 150 exchanges old (kept, at the edge,
    forgotten) find what every message as its own event finds, and the table holds the same keys in order."""
    import dataclasses

    from agent.config import DetectionSection
    from agent.detectors import DETECTORS
    from agent.detectors.offline import detect_file

    sc = Scenario("full_transactions", "dns_hijack", True)
    lan_baseline(sc, T0)
    ts = exchanges(sc, T0 + 3, 200, ident=0x6000)
    for age in (20, 60, 64, 65, 70, 150):
        q = dns_query(NAME, 0x6000 + 200 - age)
        sc.add(ts, udp_frame(RESOLVER, VICTIM, 53, 53000, dns_answer(q, ["45.33.32.%d" % age]),
                             "de:ad:be:ef:00:%02x" % age, VICTIM_MAC))
        ts += 0.01
    path = sc.write(tmp_path)
    out = []
    for fold, repeats in ((False, False), (True, True)):
        cfg = dataclasses.replace(DetectionSection(), dns_fold=fold, dns_repeats=repeats)
        detectors = [cls(cfg) for cls in DETECTORS]
        dns = next(d for d in detectors if d.name == "dns_hijack")
        dns.queries.limit = 64
        found, error, pipeline = detect_file(str(path), cfg, detectors=detectors)
        assert error is None
        out.append(([(d.key, d.score, d.first_seen, d.description, repr(d.evidence)) for d in found],
                    pipeline.counts(), [(k, dns.transaction(k)) for k in list(dns.queries)], pipeline.dns_gate))
    (plain, plain_counts, plain_table, _), (rep, rep_counts, rep_table, gate) = out
    assert gate["repeats"] >= 150
    assert rep == plain and rep_counts == plain_counts and rep_table == plain_table
    assert len(plain_table) == 64
    raced = sorted(int(f[0].split("|")[1][-2:], 16) for f in plain if "answered twice" in f[3])
    assert raced == [20, 60, 64], plain
