"""DNS repeats one after another judged as a run (dns_hijack's judge_run):
what judge_exchange() of each in turn would leave, the usual repeat in a
few table writes.

The usual repeat opens its transaction, is judged plain without raising,
and its two frames only renew times (Lan.steady).  It writes nothing that
another repeat's judgement reads but the tables it writes itself (its
transaction, its name's history, counters) and times.  So what the LAN says
of a link (client, server, their MACs: its frames' steadiness, the MAC
expected of its server) is read once, and the times its repeats renew (the
client's warmth, the frames' sender and next-hop times) are written once
per link, its last repeat's, in the order of the links' last repeats
(renew): the tables are LRU, so that leaves the same entries, order and
times as writing them at every repeat.  Any other repeat is judged in full
(judge_exchange()), with the times written before it and the links read
again after it: the run is cut there."""
import collections
import operator

from agent.detectors import dns_hijack, dnsanswer

_SET = collections.OrderedDict.__setitem__   # a table write that keeps the key's place (Recent's own moves it)
_LAST = operator.itemgetter(5)                # a link's last repeat


def judge_run(dns, run: list, frame) -> list:
    """The findings of repeats (hwdrivers.events.DnsRepeat) one after another, judged by the dns_hijack
    detector dns (frame: the LAN's, or None), as its judge_exchange() of each in turn."""
    found: list = []
    links: dict = {}       # (client, server, client MAC, server MAC) -> link()
    counts, queries, clients, history, raised = dns.counts, dns.queries, dns.clients, dns.history, dns._raised
    nxdomain, threshold, dedup, suffixes = dns.rewrites.nxdomain, dns.threshold, dns.cfg.dedup_s, dns.cfg.local_suffixes
    ttl_s, history_len = dns_hijack.QUERY_TTL_S, dns_hijack.HISTORY_LEN
    bogon, bogon_after_public = dns_hijack.BOGON, dns_hijack.BOGON_AFTER_PUBLIC
    if run and "events" not in counts:
        counts["events"] = 0                     # (its first repeat's: the counters' order kept)
    plain_n = repeats = 0    # repeats judged here, and those counted as repeats of a finding, not yet added
    for i, r in enumerate(run):
        t = r.template.facts or dns._facts(r.template)
        facts = t.get("run")
        if facts is None or facts[0] is not suffixes:
            facts = t["run"] = run_facts(t, suffixes)
        _, name, qtype, name_key, ips, public, bogus, unlikely = facts
        ts, client, server, mac, qts = r.ts_ns / 1e9, r.dst, r.src, r.src_mac, r.query_ts_ns / 1e9
        key = (client, r.dport, r.id, name, qtype)
        lk = links.get((client, server, r.dst_mac, mac))
        if lk is None:
            lk = links[client, server, r.dst_mac, mac] = link(dns, frame, client, server, r.dst_mac, mac)
        past = history.get(name_key, ())
        ttl = r.ttl
        plain = lk and not unlikely and key not in queries and ts - qts <= ttl_s and client in clients \
            and name not in nxdomain
        if plain and past and ips:           # _bogon_score's reading of the history
            last = past[-1]
            last_ips, last_ttl = last["ips"], last["ttl"]
            if last_ips != ips and last_ips and not set(last_ips) & set(ips) and last_ttl \
                    and ts < last["ts"] + last_ttl:
                plain = False
            elif ttl and last_ttl and ttl > 10 * last_ttl and ttl > 3600:
                plain = False
        score = (bogon_after_public if past and past.publics else bogon) if bogus else 0
        if plain and score and score >= threshold:
            last = raised.get(lk[4])
            plain = last is not None and ts - last[0] < dedup and score <= last[1]    # (else it raises)
        if not plain:
            counts["events"] += 2 * plain_n
            if repeats:
                counts["repeats"] += repeats
            plain_n = repeats = 0
            renew(dns, links, run)
            found.extend(dns.judge_exchange(r, frame))
            links.clear()                                # (it may have written what the links read)
            continue
        plain_n += 1
        lk[5] = i
        _SET(queries, key, (qts, server, mac, ips, ts))     # (the template's addresses: copied when made whole)
        if len(queries) > queries.limit:
            queries.popitem(last=False)
        if score:
            if score < threshold:
                counts["below_threshold"] += 1
            elif repeats or "repeats" in counts:
                repeats += 1
            else:
                counts["repeats"] += 1           # the first ever: its key made in its place
        if ips:
            answer = {"ips": ips, "public": public, "ttl": ttl, "ts": ts, "server": server}
            if past:
                if len(past) == history_len:         # (Answers.add, inline)
                    if past[0]["public"]:
                        past.publics -= 1
                    del past[0]
                past.append(answer)
                if public:
                    past.publics += 1
                history.move_to_end(name_key)
            else:
                dns.remember(name_key, past, answer)
    counts["events"] += 2 * plain_n
    if repeats:
        counts["repeats"] += repeats
    renew(dns, links, run)
    return found


def renew(dns, links: dict, run: list) -> None:
    """The times the run's repeats renew, once per link (its last repeat's), in the order of the links' last
    repeats: the client's warmth (Recent's set: it moves to the end), the frames' sender and next-hop times (in
    place).  Each table holds then what writing them at every repeat would have left."""
    clients = dns.clients
    for lk in sorted((k for k in links.values() if k and k[5] >= 0), key=_LAST):
        r = run[lk[5]]
        lk[5] = -1
        ts, qts, client = r.ts_ns / 1e9, r.query_ts_ns / 1e9, r.dst
        clients.move_to_end(client)
        _SET(clients, client, qts)
        seen, hop, back, back_hop = lk[:4]
        if seen is not None:
            _SET(seen, r.dst_mac, qts)
        if hop is not None:
            hop["ts"] = qts
        if back is not None:
            _SET(back, r.src_mac, ts)
        if back_hop is not None:
            back_hop["ts"] = ts


def link(dns, frame, client: str, server: str, cmac: str, mac: str):
    """What the LAN says of a link: [the writes of its query's frame, then of its answer's (Lan.steady), the key
    of a finding on it, its last repeat not yet renewed (-1: none)]; False when a repeat on it is judged in full
    (a frame that writes more, an answer not from the MAC expected of its server: _bogon_score)."""
    hop = dns.lan.expected_mac(server, client) or mac
    if hop and mac and hop != mac:
        return False
    there = back = (None, None)
    if frame is not None:
        there, back = dns.lan.steady(client, server, cmac, mac), dns.lan.steady(server, client, mac, cmac)
        if there is None or back is None:
            return False
    return [*there, *back, f"dns_hijack|{mac or server}|{client}", -1]


def run_facts(t: dict, suffixes: tuple) -> tuple:
    """What a run reads of a template's facts t, for the local suffixes: (them, name, type, history key,
    addresses, public ones, whether the answer is a bogon, whether its name is one NXDOMAIN rewriting reads)."""
    bogus = t["bogus"]
    if bogus[0] is not suffixes:
        bogus = t["bogus"] = (suffixes, bool(t["private"]) and dnsanswer.public_name(t["name"], suffixes))
    return suffixes, t["name"], t["qtype"], t["key"], t["ips"], t["public"], bogus[1], t["unlikely"]
