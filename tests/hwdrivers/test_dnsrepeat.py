"""DNS answer templates (src/dnsrepeat.c, hwdrivers.events.DnsRepeat): an
answer whose name-level facts equal the last template of its (server, name,
type), its query folded in, is marked as a repeat and read as a few fields;
anything else is an event as before, and every answer is counted."""
import struct

from hwdrivers import dnsgate, events
from tests.hwdrivers.packets import dns_query, host_mac, session, udp4
from tests.hwdrivers.test_dnsgate import CLIENT, RESOLVER, ask

A1, A2 = bytes([203, 0, 113, 7]), bytes([203, 0, 113, 8])


def answer(name="example.com", ident=0x1234, addrs=(A1,), ttl=300, flags=0x8180, cname=b"") -> bytes:
    q = dns_query(name, ident)
    rrs = b""
    if cname:
        rrs += b"\xc0\x0c\x00\x05\x00\x01" + struct.pack("!IH", ttl, len(cname)) + cname
    for a in addrs:
        rrs += b"\xc0\x0c\x00\x01\x00\x01" + struct.pack("!IH", ttl, 4) + a
    return struct.pack("!HHHHHH", ident, flags, 1, len(addrs) + bool(cname), 0, 0) + q[12:] + rrs


def reply(s, ts, ident=0x1234, src_mac=None, **kw) -> None:
    frame = udp4(RESOLVER, CLIENT, 53, 40000, answer(ident=ident, **kw))
    if src_mac:
        frame = bytes.fromhex(host_mac(CLIENT).replace(":", "")) + bytes.fromhex(src_mac.replace(":", "")) + frame[12:]
    s.inject(frame, ts_ns=ts)


def exchange(s, ts, ident, **kw) -> None:
    ask(s, ts, ident=ident)
    reply(s, ts + 500, ident, **kw)


def marked(tmp_path, steps, repeats=True) -> tuple:
    """(events read with repeats, the gate's template counters) after steps(session)."""
    with session(tmp_path, events=frozenset({"dns"})) as s:
        dnsgate.set_fold(s, True, repeats=True)
        steps(s)
        s.flush()
        out = s.read_events(repeats=repeats)
        counts = dnsgate.counters(s)
    return out, {k: counts[k] for k in ("repeats", "templates", "changed", "evicted", "unfit")}


def test_an_answer_repeating_its_template_is_read_as_a_few_fields(tmp_path):
    def steps(s):
        exchange(s, 1_000, 1)
        exchange(s, 2_000, 2, ttl=60, addrs=(A1, A1))       # the same set (an address twice is once), another TTL
    (first, second), counts = marked(tmp_path, steps)
    assert counts == {"repeats": 1, "templates": 1, "changed": 0, "evicted": 0, "unfit": 0}
    assert isinstance(first, events.PacketEvent) and first.record.rrs[0].value == "203.0.113.7"
    assert isinstance(second, events.DnsRepeat) and second.template.record is first.record
    assert (second.ts_ns, second.query_ts_ns, second.src, second.dst, second.sport, second.dport, second.id,
            second.ttl) == (2_500, 2_000, RESOLVER, CLIENT, 53, 40000, 2, 60)
    assert (second.src_mac, second.dst_mac) == (host_mac(RESOLVER), host_mac(CLIENT))


def test_a_reader_that_does_not_ask_or_knows_no_template_reads_the_whole_event_and_learns_it(tmp_path):
    def steps(s):
        exchange(s, 1_000, 1)
        exchange(s, 2_000, 2)
    plain, counts = marked(tmp_path, steps, repeats=False)
    assert counts["repeats"] == 1 and all(isinstance(e, events.PacketEvent) for e in plain)
    assert plain[1].record.id == 2 and plain[1].query.record.id == 2
    with session(tmp_path, events=frozenset({"dns"})) as s:
        dnsgate.set_fold(s, True, repeats=True)
        exchange(s, 3_000, 3)
        assert len(s.read_events(repeats=True)) == 1         # it made the template
        events.TEMPLATES.clear()                            # e.g. a new worker, or its template's event was lost
        exchange(s, 4_000, 4)
        (again,) = s.read_events(repeats=True)              # read in full: it teaches the template
        exchange(s, 5_000, 5)
        (known,) = s.read_events(repeats=True)
        assert dnsgate.counters(s)["repeats"] == 2
    assert isinstance(again, events.PacketEvent) and again.record.id == 4 and again.query.record.id == 4
    assert isinstance(known, events.DnsRepeat) and known.id == 5 and known.template.record is again.record


def test_changed_facts_make_a_new_template(tmp_path):
    def steps(s):
        exchange(s, 1_000, 1)
        exchange(s, 2_000, 2, addrs=(A2,))                  # another address
        exchange(s, 3_000, 3, addrs=(A2,), cname=b"\x03cdn\x07example\x00")   # a CNAME more
        exchange(s, 4_000, 4, addrs=(A2,), cname=b"\x03cdn\x07example\x00")
    out, counts = marked(tmp_path, steps)
    assert counts == {"repeats": 1, "templates": 3, "changed": 2, "evicted": 0, "unfit": 0}
    assert [type(e).__name__ for e in out] == ["PacketEvent"] * 3 + ["DnsRepeat"]


def test_only_the_plain_answer_to_its_folded_query_repeats(tmp_path):
    def steps(s):
        exchange(s, 1_000, 1)                               # the template
        exchange(s, 2_000, 2, flags=0x8183, addrs=())       # NXDOMAIN
        exchange(s, 3_000, 3, flags=0x8380)                 # truncated
        exchange(s, 4_000, 4, src_mac="02:00:00:00:00:ee")  # not through the MAC the query went to
        ask(s, 5_000, ident=5)
        reply(s, 5_500, 6)                                  # not its folded query's answer
        reply(s, 6_000, 7)                                  # no query folded in
        exchange(s, 7_000, 8)                               # a repeat
    out, counts = marked(tmp_path, steps)
    assert counts == {"repeats": 1, "templates": 1, "changed": 0, "evicted": 0, "unfit": 0}
    assert [type(e).__name__ for e in out] == ["PacketEvent"] * 6 + ["DnsRepeat"]


def test_too_many_addresses_are_unfit_and_counted(tmp_path):
    many = tuple(bytes([203, 0, 113, i]) for i in range(1, 10))
    out, counts = marked(tmp_path, lambda s: (exchange(s, 1_000, 1, addrs=many), exchange(s, 2_000, 2, addrs=many)))
    assert counts == {"repeats": 0, "templates": 0, "changed": 0, "evicted": 0, "unfit": 2}
    assert [len(e.record.rrs) for e in out] == [9, 9]
