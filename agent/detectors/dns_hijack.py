"""DNS hijacking and spoofing, from the queries and answers on the wire
(DNS records parsed by the C core, hwdrivers.records).

Indicators, each with its points (a finding needs dns_threshold, 40):
- race: one transaction (client, port, id, name) answered twice with
  different address sets -- a forged answer racing the real one (60; 75
  when the sets share nothing).  Identical duplicates and two resolvers
  each answering its own query are not races;
- answer from a server the query did not go to (50), or from another MAC
  than the one the query was sent through (25);
- unsolicited answer to a client seen asking, for no query seen (30); many
  unsolicited answers for one name (a spoofing flood, 60);
- a private or reserved address for a public name (45; 70 when the name
  was answered with public addresses before);
- the answer set replaced before the last answer's TTL ran out (20), a TTL
  far above the one seen before (10).
The forged answer of a race is the one that did not come back through the
MAC the query went out to; its sender is the attacker (by its own IP when
that MAC was seen using one)."""
import collections

from agent.detectors import dnsrun
from agent.detectors.detector import ANSWERS, Deferred, Detector as Base, Indicators, Recent, finding, is_public_ip
from agent.detectors.dnsanswer import ADDRESS_TYPES, CNAME, answer_facts, public_name, verification
from agent.detectors.lan import LEARN_KINDS
from agent.detectors.nxdomain import Rewrites
from hwdrivers import records

QUERY_TTL_S = 30.0          # a response this long after its query still answers it
WARM_S = 60.0               # a client that asked something this recently is listening
FLOOD_WINDOW_S = 10.0
FLOOD_COUNT = 10            # unsolicited answers for one name within FLOOD_WINDOW_S
HISTORY_LEN = 8             # answers of a name kept
BOGON, BOGON_AFTER_PUBLIC = 45, 70   # points of a public name answered with private addresses (after public ones)
_SET = collections.OrderedDict.__setitem__   # a table write without Recent's call (its steps done by the caller)


def parse(ev):
    rec = ev.record if ev.record is not None else records.record_of(ev)
    if rec is None or rec.qdcount != 1:
        return None
    ts = ev.ts_ns / 1e9
    if not rec.flags & 0x8000:         # a query: only what its transaction and the client's warmth need
        return {"response": False, "id": rec.id, "name": rec.name.lower(), "qtype": records.dns_type(rec.qtype),
                "client": ev.src, "client_port": ev.sport, "server": ev.dst, "dst_mac": ev.dst_mac, "ts": ts}
    ips, ttls, cnames = set(), [], []
    for rr in rec.rrs:
        if rr.section != "answer":
            continue
        if rr.type in ADDRESS_TYPES:
            ips.add(rr.value)
            ttls.append(rr.ttl)
        elif rr.type == CNAME:
            cnames.append(rr.value.lower())
    return {"response": True, "id": rec.id, "name": rec.name.lower(),
            "qtype": records.dns_type(rec.qtype), "rcode": records.dns_rcode(rec.rcode),
            "ips": sorted(ips), "ttl": min(ttls) if ttls else None, "cnames": cnames,
            "client": ev.dst, "client_port": ev.dport, "server": ev.src, "src_mac": ev.src_mac,
            "dst_mac": ev.dst_mac, "ts": ts, "proto": "tcp" if ev.proto == 6 else "udp"}


class Answers(list):
    """A name's last HISTORY_LEN answers ({"ips", "public", "ttl", "ts", "server"}), oldest first, and how many of
    them had a public address (publics: what a bogon's score asks of every answer, without reading them all).  A
    list, not a deque of that maxlen: one is made for every new name (large.pcap: every answer), and a deque's first
    block is 512 bytes (768 in all, against 80).  Made as Answers((first,)) with publics set (Detector.remember)."""
    __slots__ = ("publics",)

    def add(self, answer: dict) -> None:
        if len(self) == HISTORY_LEN:
            if self[0]["public"]:
                self.publics -= 1
            del self[0]
        self.append(answer)
        if answer["public"]:
            self.publics += 1


def public_before(past) -> list:
    """The public addresses a name's history (its Answers, or ()) holds, sorted."""
    return sorted({ip for h in past for ip in h["public"]})


def bogon(ind, name: str, private: list, public_before: list) -> None:
    """The indicator of a public name answered with addresses that are not public (private), after the public
    addresses its history held (public_before())."""
    if public_before:
        ind.add("bogon_after_public", BOGON_AFTER_PUBLIC, f"{name} resolved to {', '.join(private)} (not public), "
                f"before to {', '.join(public_before[:4])}")
    else:
        ind.add("bogon", BOGON, f"{name} resolved to {', '.join(private)}, not a public address")


def bogon_finding(name: str, qtype: str, ident: int, rcode: str, ips: list, cnames: list, ttl, server: str,
                  client: str, port: int, transport: str, mac: str, queried: list, private: list, before: list,
                  ts: float, client_mac: str):
    """The finding detect() + threshold_and_dedup() raise for a plain answer's bogon (Detector._plain, which
    defers it: a Deferred of this), from what it reads of the answer, its transaction (queried: the servers asked)
    and its name's history (before: public_before())."""
    ind = Indicators()
    bogon(ind, name, private, before)
    evidence = {"domain": name, "query_type": qtype, "transaction_id": ident, "rcode": rcode, "answers": ips,
                "cnames": list(cnames), "ttl": ttl, "server": server, "client": client, "client_port": port,
                "transport": transport, "responder_mac": mac, "queried_servers": queried, "local_ips": ips}
    verify = verification(name, qtype, ips)      # (a bogon's name is a public one: _finding's check holds)
    return finding("dns_hijack", ind, ts=ts, src=server, dst=client, protocol="DNS",
                   summary=f"DNS hijacking suspected for {name}", evidence=evidence,
                   key=f"dns_hijack|{mac or server}|{client}", src_mac=mac, dst_mac=client_mac, attacker=server,
                   attacker_mac=mac, verify=verify)


class Detector(Base):
    name = "dns_hijack"
    kinds = ("dns",)
    learns = tuple(k for k in LEARN_KINDS if k != "dns")
    threshold_key = "dns_threshold"
    parse = staticmethod(parse)

    def __init__(self, cfg):
        super().__init__(cfg)
        self.queries = Recent()      # (client, port, id, name, qtype) -> {"ts", "servers": {ip: next-hop MAC}, "answers": [...]}
                                     # or a query alone, or a plain exchange (compact: transaction())
        self.clients = Recent()      # client ip -> last query ts
        self.history = Recent()      # (name, qtype) -> Answers: its last few
        self.unsolicited = Recent()  # (client, name) -> deque of times
        self.rewrites = Rewrites()   # NXDOMAIN rewriting: names that cannot exist, answered

    def transaction(self, key: tuple):
        """The transaction of key (None: none).  A query alone is kept as a tuple (its time, the server, the MAC it
        went through: query()), and so is an exchange judged plain (its query's time, the server, the MAC it went
        through and answered from, the answer's addresses and time; judge_run's keep its template's list of
        addresses, copied here): one object instead of three or five, made whole here when anything reads it, in
        its place (its recency kept)."""
        q = self.queries.get(key)
        if q.__class__ is tuple:
            if len(q) == 3:
                qts, server, mac = q
                q = {"ts": qts, "servers": {server: mac}, "answers": []}
            else:
                qts, server, mac, ips, ts = q
                q = {"ts": qts, "servers": {server: mac},
                     "answers": [{"ips": list(ips), "server": server, "mac": mac, "ts": ts, "rcode": "NOERROR"}]}
            _SET(self.queries, key, q)   # in its place: Recent's set moves it
        return q

    def query(self, key: tuple, server: str, hop_mac: str, ts: float) -> None:
        """A query opens (or joins) its transaction and makes its client warm: it raises nothing."""
        queries, clients, client = self.queries, self.clients, key[0]
        q = queries.get(key)
        if q is None:        # the usual: a new transaction, compact (Recent's steps for a new key, without its call)
            _SET(queries, key, (ts, server, hop_mac))
            if len(queries) > queries.limit:
                queries.popitem(last=False)
        else:
            if q.__class__ is tuple:
                q = self.transaction(key)
            if ts - q["ts"] > QUERY_TTL_S:
                q = {"ts": ts, "servers": {}, "answers": []}
                queries[key] = q
            q["servers"][server] = hop_mac
        if client in clients:              # its client warm (Recent's steps, without its call)
            clients.move_to_end(client)
            _SET(clients, client, ts)
        else:
            _SET(clients, client, ts)
            if len(clients) > clients.limit:
                clients.popitem(last=False)

    def remember(self, key: tuple, past, answer: dict) -> None:
        """A name's answer joins its history (past: the history read, () when none), kept in place; the name made
        the most recent (a new name: Recent's steps for a new key, without its call)."""
        history = self.history
        if past:
            past.add(answer)
            history.move_to_end(key)
            return
        past = Answers((answer,))
        past.publics = 1 if answer["public"] else 0
        _SET(history, key, past)
        if len(history) > history.limit:
            history.popitem(last=False)

    def judge_query(self, q) -> list:
        """A query the C core folded into the next DNS event: as judge() of its own event, without the event."""
        self.counts["events"] += 1
        rec = q.record
        self.query((q.src, q.sport, rec.id, rec.name.lower(), records.dns_type(rec.qtype)), q.dst, q.dst_mac,
                   q.ts_ns / 1e9)
        return []

    def judge_exchange(self, r, frame) -> list:
        """A repeated answer (hwdrivers.events.DnsRepeat) with its query folded in, in the steps of the two events:
        the query (as judge_query), its frame (frame: the LAN's, or None), the answer (as judge() of its own event,
        its facts the template's but for its id and TTL), its frame.  One call, not four: the common outcome (its
        query's first answer, from the queried server through the expected MAC, nothing but a bogon) makes exactly
        detect()'s state changes and finding here (_plain); anything else goes to detect()."""
        t = r.template.facts or self._facts(r.template)
        ts, client, server, mac, qts = r.ts_ns / 1e9, r.dst, r.src, r.src_mac, r.query_ts_ns / 1e9
        key = (client, r.dport, r.id, t["name"], t["qtype"])
        self.counts["events"] += 2
        q = self.transaction(key)
        if q is None or qts - q["ts"] > QUERY_TTL_S:
            # its query opens the transaction (a repeat's query went to the MAC that answered): kept compact when
            # it is judged plain, else opened whole before detect() (nothing between reads the table)
            q = None
            self.clients[client] = qts
        else:
            self.query(key, server, mac, qts)
        if frame is not None:
            frame(client, server, r.dst_mac, mac, qts)
        past = self.history.get(t["key"], ())
        if q is None:
            score = None if ts - qts > QUERY_TTL_S else self._bogon_score(t, server, mac, past, ts, client, mac, r.ttl)
        else:
            score = self._plain_score(t, q, past, ts, client, server, mac, r.ttl)
        sent = (r.id, r.dport, r.dst_mac, "udp")
        if score is None:
            if q is None:
                self.queries[key] = {"ts": qts, "servers": {server: mac}, "answers": []}
            found = self.detect(self._facts_of(t, list(t["ips"]), r.ttl, ts, client, server, mac, sent))
            found = self.threshold_and_dedup(found) if found else found
        else:
            found = self._plain(t, q, past, score, list(t["ips"]), r.ttl, ts, client, server, mac, sent, key, qts)
        if frame is not None:
            frame(server, client, mac, r.dst_mac, ts)
        return found

    def judge_run(self, run: list, frame) -> list:
        """Repeats one after another (nothing else between them), as judge_exchange() of each in turn
        (agent.detectors.dnsrun: the usual one in a few table writes)."""
        return dnsrun.judge_run(self, run, frame)

    def _plain_score(self, t, q, past, ts, client, server, mac, ttl):
        """The score detect() would give a repeated answer when its only indicator can be a bogon (0: none); None
        when anything else could apply (no fresh query, an earlier answer, another server or MAC, a changed
        answer or TTL jump, a name NXDOMAIN rewriting reads)."""
        if q["answers"] or ts - q["ts"] > QUERY_TTL_S or server not in q["servers"]:
            return None
        return self._bogon_score(t, server, q["servers"][server], past, ts, client, mac, ttl)

    def _bogon_score(self, t, server: str, sent_to: str, past, ts, client, mac, ttl):
        """_plain_score of an answer that is its query's first, from the server it was sent to (through sent_to)."""
        hop = self.lan.expected_mac(server, client) or sent_to
        if (hop and mac and hop != mac) or t["unlikely"] or t["name"] in self.rewrites.nxdomain:
            return None
        ips = t["ips"]
        if past and ips:
            last = past[-1]
            last_ips, last_ttl = last["ips"], last["ttl"]
            # (the same non-empty set as the last answer's shares an address: the usual case, without two sets)
            if last_ips and last_ips != ips and not set(last_ips) & set(ips) and last_ttl and ts < last["ts"] + last_ttl:
                return None
            if ttl and last_ttl and ttl > 10 * last_ttl and ttl > 3600:
                return None
        suffixes = self.cfg.local_suffixes
        bogus = t["bogus"]
        if bogus[0] is not suffixes:         # (a public name answered with a private address: once per configuration)
            bogus = t["bogus"] = (suffixes, bool(t["private"]) and public_name(t["name"], suffixes))
        if bogus[1]:
            return BOGON_AFTER_PUBLIC if past and past.publics else BOGON
        return 0

    @staticmethod
    def _facts(template) -> dict:
        """What parse() reads of a template's answer that all its repeats share, and what detect() concludes from
        it alone (kept on the template)."""
        template.facts = answer_facts(template.record)
        return template.facts

    def judge(self, event) -> list:
        """A DNS event.  A query, and an answer whose only indicator can be a bogon (the common case: see
        _judge_answer), are judged without parse() and detect(); anything else as every detector judges."""
        rec = event.record
        if event.kind != "dns" or rec is None or rec.qdcount != 1:
            return super().judge(event)
        if not rec.flags & 0x8000:
            return self.judge_query(event)         # what parse() + detect() do with a query
        return self._judge_answer(event, rec) if not rec.rcode else super().judge(event)

    def _judge_answer(self, ev, rec) -> list:
        """A NOERROR answer.  When its only indicator can be a bogon (its query's first answer, from the queried
        server through the expected MAC: _plain_score), it makes the state changes detect() makes and builds only
        the finding it raises, if any (_plain); anything else goes through detect() with the facts parse() would
        give."""
        try:
            t = answer_facts(rec)
        except (ValueError, IndexError, KeyError, UnicodeError):
            return super().judge(ev)                 # what parse() would raise: counted there
        self.counts["events"] += 1
        ts, client, server, mac = ev.ts_ns / 1e9, ev.dst, ev.src, ev.src_mac
        key = (client, ev.dport, rec.id, t["name"], t["qtype"])
        q = self.queries.get(key)
        past = self.history.get(t["key"], ())
        sent = (rec.id, ev.dport, ev.dst_mac, "tcp" if ev.proto == 6 else "udp")
        if q.__class__ is tuple:
            if len(q) == 3 and q[1] == server and q[2] == mac:   # its query alone, sent through the MAC that answered
                score = None if ts - q[0] > QUERY_TTL_S else self._bogon_score(t, server, mac, past, ts, client, mac,
                                                                                 t["ttl"])
                if score is not None:       # (_plain_score's answer: the exchange kept compact)
                    return self._plain(t, q, past, score, t["ips"], t["ttl"], ts, client, server, mac, sent, key)
            q = self.transaction(key)
        score = self._plain_score(t, q, past, ts, client, server, mac, t["ttl"]) if q is not None else None
        if score is None:
            found = self.detect(self._facts_of(t, t["ips"], t["ttl"], ts, client, server, mac, sent))
            return self.threshold_and_dedup(found) if found else found
        return self._plain(t, q, past, score, t["ips"], t["ttl"], ts, client, server, mac, sent)

    @staticmethod
    def _facts_of(t, ips: list, ttl, ts: float, client: str, server: str, mac: str, sent: tuple) -> dict:
        """What parse() gives detect() for an answer: its facts t (with ips, ttl), its addresses and sent: (its id,
        the client's port, the client's MAC, the transport).  Made only for detect() or a finding."""
        ident, port, client_mac, transport = sent
        return {"response": True, "id": ident, "name": t["name"], "qtype": t["qtype"], "rcode": t["rcode"],
                "ips": ips, "ttl": ttl, "cnames": list(t["cnames"]), "client": client, "client_port": port,
                "server": server, "src_mac": mac, "dst_mac": client_mac, "ts": ts, "proto": transport}

    def _plain(self, t, q, past, score: int, ips: list, ttl, ts: float, client: str, server: str, mac: str,
               sent: tuple, txn: tuple = (), qts: float = 0.0) -> list:
        """An answer _plain_score judged (its score: nothing, or a bogon): the state changes detect() makes, in its
        order, and the finding detect() + threshold_and_dedup() would raise, without their other steps (the
        indicator is the bogon's; race, server, MAC, change and rewrite indicators cannot apply here), deferred
        (bogon_finding makes it).  q None: a repeat whose query opens its transaction (txn, sent at qts): kept
        compact (transaction()); q a tuple: a query alone kept compact (query(), through the MAC that answered), the
        exchange kept compact in its place."""
        if q is None:
            self.queries[txn] = (qts, server, mac, ips, ts)
        elif q.__class__ is tuple:
            _SET(self.queries, txn, (q[0], server, mac, ips, ts))
        else:
            q["answers"].append({"ips": ips, "server": server, "mac": mac, "ts": ts, "rcode": "NOERROR"})
        before = last = None
        if score:
            key = f"dns_hijack|{mac or server}|{client}"
            if score < self.threshold:
                self.counts["below_threshold"] += 1
            elif (last := self._raised.get(key)) is not None and ts - last[0] < self.cfg.dedup_s and score <= last[1]:
                self.counts["repeats"] += 1                       # (seen(), its entry kept for the write below)
            else:
                before = public_before(past) if past else []       # (the history before this answer)
        if ips:
            self.remember(t["key"], past, {"ips": ips, "public": t["public"], "ttl": ttl, "ts": ts, "server": server})
        if before is None:
            return []
        raised = self._raised     # (Recent's steps, without its call: last, the key's entry read above)
        if last is not None:
            raised.move_to_end(key)
        _SET(raised, key, (ts, BOGON_AFTER_PUBLIC if before else BOGON))     # (bogon()'s points)
        if len(raised) > raised.limit:
            raised.popitem(last=False)
        self.counts["raised"] += 1
        ident, port, client_mac, transport = sent
        queried = sorted(q["servers"]) if q.__class__ is dict else [server]
        return [Deferred(bogon_finding, (t["name"], t["qtype"], ident, t["rcode"], ips, t["cnames"], ttl, server,
                                         client, port, transport, mac, queried, t["private"], before, ts, client_mac))]

    def detect(self, f) -> list:
        key = (f["client"], f["client_port"], f["id"], f["name"], f["qtype"])
        ts = f["ts"]
        if not f["response"]:
            self.query(key, f["server"], f["dst_mac"], ts)
            return []
        ind = Indicators()
        evidence = {}                  # what the branches below add to a finding's evidence (built at the end)
        answered = f
        attacker, attacker_mac = f["server"], f["src_mac"]
        src, src_mac = f["server"], f["src_mac"]
        q = self.transaction(key)
        if q is not None and ts - q["ts"] > QUERY_TTL_S:
            q = None
        if q is None:
            if ts - self.clients.get(f["client"], -1e18) <= WARM_S:
                ind.add("unsolicited", 30, f"no query {f['id']:#06x} for {f['name']} was seen from {f['client']}")
                times = self.unsolicited.setdefault((f["client"], f["name"]), collections.deque(maxlen=FLOOD_COUNT))
                times.append(ts)
                if len(times) == FLOOD_COUNT and ts - times[0] <= FLOOD_WINDOW_S:
                    ind.add("unsolicited_flood", 60, f"{FLOOD_COUNT} unsolicited answers for {f['name']} "
                            f"within {FLOOD_WINDOW_S:.0f} s")
        else:
            answer = {"ips": f["ips"], "server": f["server"], "mac": f["src_mac"], "ts": ts, "rcode": f["rcode"]}
            evidence["queried_servers"] = sorted(q["servers"])
            if f["server"] not in q["servers"]:
                ind.add("wrong_server", 50, f"answered by {f['server']}, the query went to "
                        f"{', '.join(sorted(q['servers']))}")
            else:
                hop = self.lan.expected_mac(f["server"], f["client"]) or q["servers"][f["server"]]
                if hop and f["src_mac"] and hop != f["src_mac"]:
                    ind.add("wrong_mac", 50 if self.lan.expected_mac(f["server"], f["client"]) else 25,
                            f"came from MAC {f['src_mac']}; {f['server']} answers through {hop}")
            # two queried resolvers each answering differently is no race: a race is one server answering twice,
            # or an answer from a server never asked
            earlier = [a for a in q["answers"] if a["rcode"] == "NOERROR" and a["ips"] != f["ips"]
                       and (a["server"] == f["server"] or a["server"] not in q["servers"]
                            or f["server"] not in q["servers"])]
            if earlier and f["rcode"] == "NOERROR":
                other = earlier[-1]
                disjoint = not set(other["ips"]) & set(f["ips"])
                ind.add("race", 75 if disjoint else 60,
                        f"answered twice: {', '.join(other['ips']) or 'nothing'} then {', '.join(f['ips']) or 'nothing'}")
                forged, sender_mac = self._forged(q, answer, other, f)
                evidence["race"] = {"first": {k: other[k] for k in ("ips", "server", "mac", "ts")},
                                    "second": {k: answer[k] for k in ("ips", "server", "mac", "ts")},
                                    "forged": "first" if forged is other else "second"}
                attacker, attacker_mac = forged["server"], sender_mac
                src, src_mac = forged["server"], sender_mac
                f = {**f, "ips": forged["ips"]}
            q["answers"].append(answer)
        private = [ip for ip in f["ips"] if not is_public_ip(ip, ANSWERS)]
        past = self.history.get((f["name"], f["qtype"]), ())
        if private and public_name(f["name"], self.cfg.local_suffixes):
            bogon(ind, f["name"], private, public_before(past))
        if past and f["ips"]:
            last = past[-1]
            if last["ips"] and not set(last["ips"]) & set(f["ips"]) and last["ttl"] and ts < last["ts"] + last["ttl"]:
                ind.add("answer_changed", 20, f"answer changed from {', '.join(last['ips'][:4])} "
                        f"{ts - last['ts']:.0f} s into a {last['ttl']} s TTL")
            if f["ttl"] and last["ttl"] and f["ttl"] > 10 * last["ttl"] and f["ttl"] > 3600:
                ind.add("ttl_jump", 10, f"TTL {f['ttl']} s, was {last['ttl']} s")
        for name, points, text in self.rewrites.judge(f):
            ind.add(name, points, text)
        if f["ips"] and f["rcode"] == "NOERROR":
            public = [ip for ip in f["ips"] if ip not in private]
            self.remember((f["name"], f["qtype"]), past, {"ips": f["ips"], "public": public, "ttl": f["ttl"],
                                                          "ts": ts, "server": f["server"]})
        return self._raise(ind, f, answered["ips"], evidence, src, src_mac, attacker, attacker_mac, q) if ind else []

    def _raise(self, ind, f, answers, evidence, src, src_mac, attacker, attacker_mac, q) -> list:
        """The finding, unless its score is below the threshold or it repeats (checked before it is built)."""
        attacker, src = self._attacker(f, evidence, src, attacker, attacker_mac, q)
        key = f"dns_hijack|{attacker_mac or attacker}|{f['client']}"
        score = ind.score
        if score < self.threshold or self.seen(key, f["ts"], score):
            self.counts["below_threshold" if score < self.threshold else "repeats"] += 1
            return []
        evidence = {"domain": f["name"], "query_type": f["qtype"], "transaction_id": f["id"], "rcode": f["rcode"],
                    "answers": answers, "cnames": f["cnames"], "ttl": f["ttl"], "server": f["server"],
                    "client": f["client"], "client_port": f["client_port"], "transport": f["proto"],
                    "responder_mac": f["src_mac"], **evidence}
        return [self._finding(ind, f, evidence, src, src_mac, attacker, attacker_mac, key)]

    def _forged(self, q, answer, other, f) -> tuple:
        """(the forged answer of a race, the MAC that sent it, "" when unknown).  The forged one did not come
        through the server's MAC (or came from a server never asked); else it repeats what an off-path sender
        answered, or what the name never resolved to; else the first (a forger wins races by design).  A forger
        that copied the server's MAC too is not named by it: by the off-path twin of its answer, or by nobody."""
        def off_path(a):
            if a["server"] not in q["servers"]:
                return True
            hop = self.lan.expected_mac(a["server"], f["client"]) or q["servers"][a["server"]]
            return bool(hop and a["mac"] and a["mac"] != hop)
        twins = {tuple(a["ips"]): a["mac"] for a in q["answers"] if off_path(a)}
        known = {ip for h in self.history.get((f["name"], f["qtype"]), []) for ip in h["ips"]}
        if off_path(answer) != off_path(other):
            forged = answer if off_path(answer) else other
        elif (tuple(answer["ips"]) in twins) != (tuple(other["ips"]) in twins):
            forged = answer if tuple(answer["ips"]) in twins else other
        elif known and (set(other["ips"]) <= known) != (set(answer["ips"]) <= known):
            forged = answer if set(other["ips"]) <= known else other
        else:
            forged = other
        return forged, forged["mac"] if off_path(forged) else twins.get(tuple(forged["ips"]), "")

    def _attacker(self, f, evidence, src, attacker, attacker_mac, q) -> tuple:
        """(attacker, src): the sender named by its own address, never by the one it forged (the resolver's)
        nor a forwarded one."""
        expected = self.lan.expected_mac(attacker, f["client"]) or (q["servers"].get(attacker) if q else None)
        if "race" in evidence and not attacker_mac:
            evidence["sender_unidentified"] = True       # it copied the server's MAC and address: no one to name
            return "", ""
        if attacker_mac and expected and expected != attacker_mac:
            own = self.lan.own_ip(attacker_mac, like=attacker)
            evidence["spoofed_source"] = attacker
            evidence["attacker_ip_by_mac"] = own
            return own or attacker_mac, own or attacker_mac
        return attacker, src

    def _finding(self, ind, f, evidence, src, src_mac, attacker, attacker_mac, key):
        evidence["local_ips"] = f["ips"]
        verify = verification(f["name"], f["qtype"], f["ips"]) \
            if public_name(f["name"], self.cfg.local_suffixes) else None
        return finding("dns_hijack", ind, ts=f["ts"], src=src, dst=f["client"], protocol="DNS",
                       summary=f"DNS hijacking suspected for {f['name']}", evidence=evidence, key=key, src_mac=src_mac,
                       dst_mac=f["dst_mac"], attacker=attacker, attacker_mac=attacker_mac, verify=verify)
