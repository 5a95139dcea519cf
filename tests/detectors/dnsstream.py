"""A randomized DNS stream for differential tests of the DNS event path: a
LAN's clients asking a LAN resolver and a public one, with the attacks and
near-attacks mixed in at random (seeded, so a failure replays): races
(a second, different answer to one transaction), answers from a wrong MAC
or a server never asked, unsolicited answers and floods of them, NXDOMAIN
rewriting (single-label, random-looking and NXDOMAIN-elsewhere names),
bogons after public answers, TTL jumps, changed sets inside the TTL,
duplicated answers, retransmitted queries, unanswered queries, and ARP
claims between a query and its answer.  Anything that folds DNS messages
must find exactly what the per-message path finds on it."""
import random

import dns.message
import dns.rcode

from tests.detectors.scenarios import (ATTACKER, ATTACKER_MAC, GW, GW_MAC, T0, Scenario, arp_frame, dns_query,
                                       lan_baseline, udp_frame)

CLIENTS = [(f"192.168.1.{10 + i}", f"3c:22:fb:00:00:{10 + i:02x}") for i in range(12)]
QUIET = ("192.168.1.200", "3c:22:fb:00:00:c8")
SERVERS = [(GW, GW_MAC), ("8.8.8.8", GW_MAC)]
NAMES = [f"www.site{i}.com" for i in range(40)] + ["printer", "wpad", "xq7zk2v9w1p3.example.org"]
PUBLIC = [f"93.184.{i}.{j}" for i in range(4) for j in (10, 20)]
BOGON = ["10.10.10.66", "192.168.1.66", "198.51.100.7"]


def answer(query, ips, ttl, rcode=0) -> bytes:
    r = dns.message.make_response(query)
    r.set_rcode(rcode)
    if ips:
        rdtype = "AAAA" if ":" in ips[0] else "A"
        r.answer.append(dns.rrset.from_text(query.question[0].name, ttl, "IN", rdtype, *ips))
    return r.to_wire()


def stream(seed: int, exchanges: int = 3000) -> Scenario:
    """A seeded stream of `exchanges` transactions (about 2.3 packets each)."""
    rnd = random.Random(seed)
    sc = Scenario(f"dnsstream_{seed}", "dns_hijack", False)
    lan_baseline(sc, T0)
    ts = T0 + 2
    for i in range(exchanges):
        ts += rnd.expovariate(40.0)
        client, cmac = rnd.choice(CLIENTS)
        server, smac = rnd.choice(SERVERS)
        name = rnd.choice(NAMES)
        ident, sport = rnd.randrange(1 << 16), rnd.choice((53000, 53001, 40000 + i % 7))
        q = dns_query(name, ident, rnd.choice(("A", "A", "A", "AAAA")))
        roll = rnd.random()
        if roll > 0.03:                                  # 3 %: an unsolicited answer, no query at all
            sc.add(ts, udp_frame(client, server, sport, 53, q.to_wire(), cmac, smac))
            if rnd.random() < 0.05:                      # the query retransmitted, or asked of both resolvers
                other = rnd.choice(SERVERS)[0]
                sc.add(ts + 0.3, udp_frame(client, other, sport, 53, q.to_wire(), cmac, smac))
        if rnd.random() < 0.02:                          # an ARP claim between the query and its answer
            sc.add(ts + 0.001, arp_frame(2, rnd.choice((GW_MAC, ATTACKER_MAC)), GW, cmac, client))
        if rnd.random() < 0.08:                          # never answered
            continue
        ips = [rnd.choice(PUBLIC)] if rnd.random() < 0.85 else [rnd.choice(BOGON)]
        ttl = rnd.choice((60, 300, 300, 3600, 86400 * 3))
        rcode = dns.rcode.NXDOMAIN if rnd.random() < 0.06 else 0
        src, mac = server, smac
        kind = rnd.random()
        if kind < 0.03:
            mac = ATTACKER_MAC                           # from the wrong MAC
        elif kind < 0.05:
            src = "9.9.9.9"                              # from a server never asked
        wire = answer(q, [] if rcode else ips, ttl, rcode)
        t = ts + rnd.uniform(0.001, 0.05)
        for _ in range(3 if roll <= 0.03 and rnd.random() < 0.3 else 1):   # a few unsolicited copies
            sc.add(t, udp_frame(src, client, 53, sport, wire, mac, cmac))
            t += 0.01
        extra = rnd.random()
        if extra < 0.04:                                 # a race: a second, different answer
            forged = [rnd.choice(BOGON + PUBLIC)]
            sc.add(t + 0.002, udp_frame(server, client, 53, sport, answer(q, forged, ttl),
                                        rnd.choice((smac, ATTACKER_MAC)), cmac))
        elif extra < 0.07:                               # the same answer twice
            sc.add(t + 0.002, udp_frame(src, client, 53, sport, wire, mac, cmac))
    sc.add(ts + 1, arp_frame(1, ATTACKER_MAC, ATTACKER, "", GW))
    flood(sc, rnd, rnd.uniform(T0 + 2, ts))
    return sc


def flood(sc: Scenario, rnd: random.Random, ts: float) -> None:
    """A spoofing flood against a client that only asked one clean question: 10 unsolicited answers for one
    name within 5 s (its own client, so no earlier finding for the others hides it as a repeat)."""
    client, cmac = QUIET
    q = dns_query("www.quiet.com", rnd.randrange(1 << 16))
    sc.add(ts, udp_frame(client, GW, 53999, 53, q.to_wire(), cmac, GW_MAC))
    sc.add(ts + 0.01, udp_frame(GW, client, 53, 53999, answer(q, [PUBLIC[0]], 300), GW_MAC, cmac))
    for k in range(10):
        forged = dns_query(NAMES[0], rnd.randrange(1 << 16))
        sc.add(ts + 1 + 0.4 * k, udp_frame(GW, client, 53, rnd.randrange(1024, 65536),
                                           answer(forged, [PUBLIC[1]], 300), ATTACKER_MAC, cmac))
