"""The C core's DNS gate (src/dnsgate.c, hwdrivers.dnsgate): a DNS query is
held back and folded into the next DNS event; anything else that reaches
the event ring first releases it, as it was, in front of it."""
import dataclasses
import struct
import threading
import time

import pytest

from hwdrivers import CaptureError, dnsgate
from tests.hwdrivers.packets import ETH_ARP, SYN, arp, dns_query, eth, host_mac, session, tcp4, udp4

CLIENT, RESOLVER = "10.0.0.1", "10.0.0.53"


def answer(name: str = "example.com", ident: int = 0x1234, addr: bytes = bytes([93, 184, 216, 34])) -> bytes:
    q = dns_query(name, ident)
    return (struct.pack("!HHHHHH", ident, 0x8180, 1, 1, 0, 0) + q[12:] + b"\xc0\x0c\x00\x01\x00\x01"
            + struct.pack("!IH", 300, 4) + addr)


def ask(s, ts: int, name: str = "example.com", ident: int = 0x1234, sport: int = 40000) -> None:
    s.inject(udp4(CLIENT, RESOLVER, sport, 53, dns_query(name, ident)), ts_ns=ts)


def reply(s, ts: int, name: str = "example.com", ident: int = 0x1234, dport: int = 40000) -> None:
    s.inject(udp4(RESOLVER, CLIENT, 53, dport, answer(name, ident)), ts_ns=ts)


def gated(tmp_path, kinds=("dns",)):
    s = session(tmp_path, events=frozenset(kinds))
    dnsgate.set_fold(s, True)
    return s


def test_a_query_rides_on_its_answer(tmp_path):
    with gated(tmp_path) as s:
        ask(s, 1_000)
        assert s.read_events() == []              # held back
        reply(s, 2_000)
        (ev,) = s.read_events()
        counts = dnsgate.counters(s)
    assert ev.record.response and ev.src == RESOLVER and ev.ts_ns == 2_000
    q = ev.query
    assert (q.ts_ns, q.src, q.dst, q.sport, q.dport, q.proto) == (1_000, CLIENT, RESOLVER, 40000, 53, 17)
    assert (q.src_mac, q.dst_mac) == (host_mac(CLIENT), host_mac(RESOLVER))
    assert (q.record.id, q.record.name, q.record.qtype, q.record.response, q.record.qdcount) == \
        (0x1234, "example.com", 1, False, 1)
    assert {k: counts[k] for k in dnsgate.GATE} == {"held": 1, "folded": 1, "released": 0, "dropped": 0}


def test_the_folded_query_is_the_event_it_would_have_been(tmp_path):
    with session(tmp_path, events=frozenset({"dns"})) as s:
        ask(s, 1_000)
        (plain,) = s.read_events()
    with gated(tmp_path) as s:
        ask(s, 1_000)
        reply(s, 2_000)
        (ev,) = s.read_events()
    assert ev.query == dataclasses.replace(plain, payload=b"")   # all but its payload bytes


def test_a_query_carries_the_one_before_it_and_the_next_is_held(tmp_path):
    with gated(tmp_path) as s:
        ask(s, 1_000, "a.example", 1)
        ask(s, 2_000, "b.example", 2)             # carries a's query: it is sent itself, nothing held
        ask(s, 3_000, "c.example", 3)             # held
        first = s.read_events()
        reply(s, 4_000, "a.example", 1)           # carries c's
        second = s.read_events()
    assert [(e.record.name, e.query.record.name) for e in first] == [("b.example", "a.example")]
    assert [(e.record.name, e.query.record.name) for e in second] == [("a.example", "c.example")]


def test_any_other_event_releases_the_query_in_front_of_it(tmp_path):
    with gated(tmp_path, ("dns", "arp", "tcp_src")) as s:
        ask(s, 1_000)
        s.inject(eth(arp(1, host_mac(CLIENT), CLIENT, "00:00:00:00:00:00", RESOLVER), ETH_ARP,
                     host_mac(CLIENT), "ff:ff:ff:ff:ff:ff"), ts_ns=2_000)
        ask(s, 3_000, ident=2)
        s.inject(tcp4(CLIENT, "93.184.216.34", 40001, 443, flags=SYN), ts_ns=4_000)   # a new TCP source: a summary
        events = s.read_events()
        counts = dnsgate.counters(s)
    assert [(e.kind, e.ts_ns, e.query) for e in events] == [
        ("dns", 1_000, None), ("arp", 2_000, None), ("dns", 3_000, None), ("tcp_src", 4_000, None)]
    assert {k: counts[k] for k in dnsgate.GATE} == {"held": 2, "folded": 0, "released": 2, "dropped": 0}


def test_the_end_and_switching_off_release_the_held_query(tmp_path):
    with gated(tmp_path) as s:
        ask(s, 1_000)
        assert s.flush() == 0
        assert [e.ts_ns for e in s.read_events()] == [1_000]
        ask(s, 2_000)
        dnsgate.set_fold(s, False)
        assert [(e.ts_ns, e.query) for e in s.read_events()] == [(2_000, None)]
        ask(s, 3_000)                              # off: sent at once
        assert [e.ts_ns for e in s.read_events()] == [3_000]


def test_only_plain_udp_queries_are_held(tmp_path):
    with gated(tmp_path) as s:
        reply(s, 1_000)                            # an answer is never held
        s.inject(udp4(CLIENT, RESOLVER, 40000, 53, dns_query()[:14]), ts_ns=2_000)   # malformed: sent
        two = bytearray(dns_query())
        two[5] = 2                                 # two questions
        s.inject(udp4(CLIENT, RESOLVER, 40000, 53, bytes(two)), ts_ns=3_000)
        assert [(e.ts_ns, e.query) for e in s.read_events()] == [(1_000, None), (2_000, None), (3_000, None)]
        assert dnsgate.counters(s)["held"] == 0


def test_a_full_ring_drops_new_events_never_the_held_query(tmp_path):
    """A query is held only where the ring had room for it, and whatever comes next takes that room only
    after releasing it: a full ring drops (and counts) the new events, as without the gate."""
    with session(tmp_path, events=frozenset({"dns"}), event_ring=1024, lossless=False) as s:
        dnsgate.set_fold(s, True)
        for i in range(2048):                      # every second query carries the one before: 1,024 events
            ask(s, 1_000 * (i + 1), ident=i)
        ask(s, 10_000_000, ident=5000)             # the ring is full: dropped
        events = s.read_events()
        ask(s, 10_001_000, ident=5001)             # held
        assert s.flush() == 0
        last = s.read_events()
        counts, c = dnsgate.counters(s), s.counters()
    assert len(events) == 1024 and all(e.query.record.id == e.record.id - 1 for e in events)
    assert [(e.record.id, e.query) for e in last] == [(5001, None)]
    assert {k: counts[k] for k in dnsgate.GATE} == {"held": 1025, "folded": 1024, "released": 1, "dropped": 0}
    assert {k: v for k, v in c.events_dropped.items() if v} == {"dns": 1}


def test_folding_needs_dns_events(tmp_path):
    with session(tmp_path, events=frozenset({"arp"})) as s:
        with pytest.raises(CaptureError):
            dnsgate.set_fold(s, True)
        dnsgate.set_fold(s, False)


def _write_pcap(path, frames) -> None:
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, frame in enumerate(frames):
            f.write(struct.pack("<IIII", 0, i, len(frame), len(frame)) + frame)


@pytest.mark.root
def test_live_a_busy_wire_without_events_does_not_hold_a_query_for_the_next_dns_event(veth, tmp_path):
    """Live, a query is held at most HW_DNSGATE_HOLD_NS (50 ms) of packet time: here 0.3 s of traffic that
    makes no event follows it, then an unrelated answer, which must not carry it (it went as its own)."""
    path = tmp_path / "busy.pcap"
    _write_pcap(path, [udp4(CLIENT, RESOLVER, 40000, 53, dns_query())]
                + [udp4("10.0.0.7", "10.0.0.8", 5000, 6000, b"x" * 64)] * 1500     # 0.3 s at 5,000 pps
                + [udp4(RESOLVER, "10.0.0.9", 53, 41000, answer("other.example", 0x4321))])
    with veth.session(backend="afpacket", events=frozenset({"dns"})) as s:
        dnsgate.set_fold(s, True)
        got = []
        run = threading.Thread(target=s.run, daemon=True)
        run.start()
        try:
            veth.replay(str(path))
            deadline = time.monotonic() + 10
            while len(got) < 2 and time.monotonic() < deadline:
                got += s.read_events()
                time.sleep(0.02)
            counts = dnsgate.counters(s)
        finally:
            s.stop()
            run.join(5)
    assert [(e.record.response, e.query) for e in got] == [(False, None), (True, None)]
    assert counts["folded"] == 0 and counts["released"] == 1
