"""The flow table through Session.inject: keys and direction, TCP state, RTT
and sequence analysis, timeouts, eviction, ordering, talkers, applications."""
import pytest

from hwdrivers import CaptureError, ErrorCode
from tests.hwdrivers.packets import (
    A4, ACK, B4, FIN, HTTP_GET, ICMP, MS, PSH, RST, S, SIP_INVITE, SYN, T0, TCP, dns_query, eth,
    flows, host_mac, icmp, icmp4, ipv4, session, tcp, tcp4, tls_hello, udp4,
)

C4 = "10.0.0.3"
CPORT, SPORT = 40000, 80
ISN_C, ISN_S = 1000, 5000


def c2s(s, t_ns, flags=ACK, seq=ISN_C + 1, ack=ISN_S + 1, payload=b"", **kw):
    """Client (A4:40000) to server (B4:80)."""
    s.inject(tcp4(A4, B4, CPORT, SPORT, flags=flags, seq=seq, ack=ack, payload=payload, **kw), ts_ns=t_ns)


def s2c(s, t_ns, flags=ACK, seq=ISN_S + 1, ack=ISN_C + 1, payload=b"", **kw):
    s.inject(tcp4(B4, A4, SPORT, CPORT, flags=flags, seq=seq, ack=ack, payload=payload, **kw), ts_ns=t_ns)


def handshake(s, t=T0, syn_synack=10 * MS, synack_ack=15 * MS, isn=ISN_C):
    c2s(s, t, SYN, seq=isn, ack=0)
    s2c(s, t + syn_synack, SYN | ACK, seq=ISN_S, ack=isn + 1)
    c2s(s, t + syn_synack + synack_ack, ACK, seq=isn + 1)


# ---- keys and direction -------------------------------------------------------

def test_both_directions_are_one_flow_with_the_initiator_as_src(tmp_path):
    with session(tmp_path) as s:
        s.inject(udp4(A4, B4, 40000, 53, dns_query()), ts_ns=T0)
        s.inject(udp4(B4, A4, 53, 40000, dns_query() + bytes(50)), ts_ns=T0 + 2 * MS)
        s.inject(udp4(B4, A4, 53, 40000, dns_query()), ts_ns=T0 + 3 * MS)
        c = s.counters()
        [r] = flows(s)
    q = len(udp4(payload=dns_query()))
    assert (r.src, r.dst, r.sport, r.dport, r.proto, r.vlan) == (A4, B4, 40000, 53, 17, 0)
    assert (r.packets, r.bytes) == ((1, 2), (q, 2 * q + 50))
    assert (r.first_ns, r.last_ns) == (T0, T0 + 3 * MS)
    assert (r.src_mac, r.dst_mac) == (host_mac(A4), host_mac(B4))
    assert (r.state, r.app, r.end_reason, r.id) == ("", "dns", "flush", 1)
    assert (c.flows_created, c.flows_udp, c.flows_tcp, c.flows_active) == (1, 1, 0, 1)


def test_synack_seen_first_makes_its_destination_the_initiator(tmp_path):
    with session(tmp_path) as s:
        s2c(s, T0, SYN | ACK, seq=ISN_S, ack=ISN_C + 1)
        c2s(s, T0 + MS)
        [r] = flows(s)
    assert (r.src, r.sport, r.dst, r.dport) == (A4, CPORT, B4, SPORT)
    assert r.packets == (1, 1)
    assert (r.src_mac, r.dst_mac) == (host_mac(A4), host_mac(B4))
    assert (r.rtt_ns, r.syn_synack_ns) == (0, 0)


def test_synack_seen_first_then_ack_and_data_is_established(tmp_path):
    with session(tmp_path) as s:
        s2c(s, T0, SYN | ACK, seq=ISN_S, ack=ISN_C + 1)
        c2s(s, T0 + MS)
        c2s(s, T0 + 2 * MS, ACK | PSH, payload=HTTP_GET)
        s2c(s, T0 + 3 * MS, ACK, ack=ISN_C + 1 + len(HTTP_GET))
        [r] = flows(s)
    assert r.state == "established"


def test_icmp_echo_request_and_reply_share_a_flow(tmp_path):
    with session(tmp_path) as s:
        s.inject(icmp4(A4, B4, 8, ident=0x4242, seq=1), ts_ns=T0)
        s.inject(icmp4(B4, A4, 0, ident=0x4242, seq=1), ts_ns=T0 + MS)
        s.inject(icmp4(A4, B4, 8, ident=0x4242, seq=2), ts_ns=T0 + S)
        s.inject(icmp4(A4, B4, 8, ident=0x4343, seq=1), ts_ns=T0 + 2 * S)
        c = s.counters()
        recs = flows(s)
    assert [(r.src, r.dst, r.sport, r.dport, r.proto, r.packets, r.app) for r in recs] == [
        (A4, B4, 0x4242, 0x4242, 1, (2, 1), "icmp"),
        (A4, B4, 0x4343, 0x4343, 1, (1, 0), "icmp"),
    ]
    assert (c.flows_icmp, c.flows_created) == (2, 2)


def test_icmp_errors_are_keyed_by_type_and_code(tmp_path):
    with session(tmp_path) as s:
        s.inject(eth(ipv4(B4, A4, ICMP, icmp(3, 3, payload=bytes(28)))), ts_ns=T0)
        [r] = flows(s)
    assert (r.src, r.dst, r.sport, r.dport) == (B4, A4, 0, 3 << 8 | 3)


def test_vlan_is_part_of_the_key(tmp_path):
    with session(tmp_path) as s:
        for i, vlan in enumerate((10, 20, 10)):
            s.inject(udp4(vlan=vlan, payload=b"x"), ts_ns=T0 + i * MS)
        s.inject(udp4(B4, A4, 53, 40000, b"y", vlan=20), ts_ns=T0 + 5 * MS)
        recs = flows(s)
    assert [(r.vlan, r.sport, r.dport, r.packets) for r in recs] == [(10, 40000, 53, (2, 0)), (20, 40000, 53, (1, 1))]


# ---- TCP --------------------------------------------------------------------------

def test_handshake_rtt_is_syn_to_ack(tmp_path):
    with session(tmp_path) as s:
        handshake(s, syn_synack=10 * MS, synack_ack=15 * MS)
        [r] = s.active_flows()
    assert (r.rtt_ns, r.syn_synack_ns) == (25 * MS, 10 * MS)
    assert r.state == "established"
    assert (r.retransmissions, r.out_of_order) == ((0, 0), (0, 0))
    assert r.tcp_flags == (SYN | ACK, SYN | ACK)


def test_data_from_the_responder_does_not_set_the_rtt(tmp_path):
    with session(tmp_path) as s:
        c2s(s, T0, SYN, seq=ISN_C, ack=0)
        s2c(s, T0 + 10 * MS, SYN | ACK, seq=ISN_S, ack=ISN_C + 1)
        s2c(s, T0 + 11 * MS, ACK | PSH, payload=b"SSH-2.0-OpenSSH_9.2\r\n")   # the client's ACK was missed
        [r] = s.active_flows()
    assert (r.state, r.rtt_ns, r.syn_synack_ns) == ("established", 0, 10 * MS)


def _opening(s):
    c2s(s, T0, SYN, seq=ISN_C, ack=0)


def _opening_synack(s):
    _opening(s)
    s2c(s, T0 + MS, SYN | ACK, seq=ISN_S, ack=ISN_C + 1)


def _established(s):
    handshake(s)


def _midstream(s):
    c2s(s, T0, ACK | PSH, seq=777, payload=b"data")


def _closing(s):
    handshake(s)
    c2s(s, T0 + 30 * MS, FIN | ACK)


def _closed(s):
    _closing(s)
    s2c(s, T0 + 31 * MS, FIN | ACK, ack=ISN_C + 2)
    c2s(s, T0 + 32 * MS, ACK, seq=ISN_C + 2, ack=ISN_S + 2)


def _reset(s):
    _opening(s)
    s2c(s, T0 + MS, RST | ACK, seq=0, ack=ISN_C + 1)


def _reset_after_data(s):
    handshake(s)
    c2s(s, T0 + 30 * MS, ACK | PSH, payload=b"hello")
    s2c(s, T0 + 31 * MS, RST, ack=0)
    c2s(s, T0 + 32 * MS, FIN | ACK, seq=ISN_C + 6)  # nothing leaves "reset"


@pytest.mark.parametrize("script, state, flags", [
    (_opening, "opening", (SYN, 0)),
    (_opening_synack, "opening", (SYN, SYN | ACK)),
    (_established, "established", (SYN | ACK, SYN | ACK)),
    (_midstream, "established", (ACK | PSH, 0)),
    (_closing, "closing", (SYN | ACK | FIN, SYN | ACK)),
    (_closed, "closed", (SYN | ACK | FIN, SYN | ACK | FIN)),
    (_reset, "reset", (SYN, RST | ACK)),
    (_reset_after_data, "reset", (SYN | ACK | PSH | FIN, SYN | ACK | RST)),
], ids=lambda v: v.__name__.strip("_") if callable(v) else None)
def test_tcp_state(tmp_path, script, state, flags):
    with session(tmp_path) as s:
        script(s)
        [r] = flows(s)
    assert (r.state, r.tcp_flags) == (state, flags)
    assert (r.src, r.sport) == (A4, CPORT)


def test_retransmission_is_the_same_segment_again_later(tmp_path):
    with session(tmp_path) as s:
        handshake(s)
        c2s(s, T0 + 100 * MS, ACK | PSH, payload=bytes(100))
        c2s(s, T0 + 400 * MS, ACK | PSH, payload=bytes(100))             # RTO
        s2c(s, T0 + 410 * MS, ACK | PSH, payload=bytes(10), ack=ISN_C + 101)
        s2c(s, T0 + 900 * MS, ACK | PSH, payload=bytes(10), ack=ISN_C + 101)
        s2c(s, T0 + 2000 * MS, ACK | PSH, payload=bytes(10), ack=ISN_C + 101)
        [r] = flows(s)
    assert (r.retransmissions, r.out_of_order) == ((1, 2), (0, 0))


def test_retried_syn_is_a_retransmission(tmp_path):
    with session(tmp_path) as s:
        c2s(s, T0, SYN, seq=ISN_C, ack=0)
        c2s(s, T0 + S, SYN, seq=ISN_C, ack=0)
        [r] = flows(s)
    assert (r.packets, r.retransmissions, r.state) == ((2, 0), (1, 0), "opening")


@pytest.mark.parametrize("with_handshake, delay_ns, ooo, retrans", [
    (False, 1 * MS, 1, 0),     # no RTT: the window is 3 ms
    (False, 5 * MS, 0, 1),
    (True, 20 * MS, 1, 0),     # RTT 25 ms is the window
    (True, 30 * MS, 0, 1),
], ids=["no-rtt-inside-3ms", "no-rtt-after-3ms", "rtt-inside", "rtt-after"])
def test_out_of_order_fills_a_hole_within_the_window(tmp_path, with_handshake, delay_ns, ooo, retrans):
    t = T0 + S
    with session(tmp_path) as s:
        if with_handshake:
            handshake(s, syn_synack=10 * MS, synack_ack=15 * MS)
        seq = ISN_C + 1
        c2s(s, t, ACK | PSH, seq=seq, payload=bytes(100))
        c2s(s, t + 100_000, ACK | PSH, seq=seq + 200, payload=bytes(100))     # a hole of 100 bytes
        c2s(s, t + 100_000 + delay_ns, ACK | PSH, seq=seq + 100, payload=bytes(100))
        [r] = flows(s)
    assert (r.out_of_order, r.retransmissions) == ((ooo, 0), (retrans, 0))


def test_duplicate_after_a_filled_hole_is_a_retransmission(tmp_path):
    t = T0 + S
    with session(tmp_path) as s:
        c2s(s, t, ACK | PSH, seq=1000, payload=bytes(100))
        c2s(s, t + 100_000, ACK | PSH, seq=1200, payload=bytes(100))
        c2s(s, t + 200_000, ACK | PSH, seq=1100, payload=bytes(100))           # fills the hole: out of order
        c2s(s, t + 100 * MS, ACK | PSH, seq=1300, payload=bytes(100))
        c2s(s, t + 101 * MS, ACK | PSH, seq=1300, payload=bytes(100))          # the same segment again
        [r] = flows(s)
    assert (r.out_of_order, r.retransmissions) == ((1, 0), (1, 0))


def test_fragmented_tcp_segment_is_not_a_retransmission(tmp_path):
    segment = tcp(CPORT, SPORT, flags=ACK | PSH, seq=ISN_C + 1, ack=ISN_S + 1, payload=bytes(1000))
    with session(tmp_path) as s:
        handshake(s)
        s.inject(eth(ipv4(A4, B4, TCP, segment[:504], ident=5, frag=0x2000)), ts_ns=T0 + 100 * MS)
        s.inject(eth(ipv4(A4, B4, TCP, segment[504:], ident=5, frag=504 // 8)), ts_ns=T0 + 100 * MS + 1000)
        s2c(s, T0 + 110 * MS, ack=ISN_C + 1001)
        c2s(s, T0 + 120 * MS, ACK | PSH, seq=ISN_C + 1001, payload=bytes(100))
        c = s.counters()
        [r] = flows(s)
    assert (c.frag_orphans, r.packets) == (0, (5, 2))
    assert (r.retransmissions, r.out_of_order) == ((0, 0), (0, 0))


def test_keepalives_are_neither_retransmissions_nor_out_of_order(tmp_path):
    with session(tmp_path) as s:
        handshake(s)
        c2s(s, T0 + 100 * MS, ACK | PSH, payload=bytes(100))
        s2c(s, T0 + 110 * MS, ACK, ack=ISN_C + 101)
        for k in range(3):
            t = T0 + (k + 1) * 45 * S
            c2s(s, t, ACK, seq=ISN_C + 100)                         # keep-alive, no data
            c2s(s, t + MS, ACK, seq=ISN_C + 100, payload=b"\x00")   # keep-alive with one garbage byte
            s2c(s, t + 2 * MS, ACK, ack=ISN_C + 101)
        [r] = flows(s)
    assert (r.retransmissions, r.out_of_order) == ((0, 0), (0, 0))
    assert r.packets == (2 + 1 + 6, 1 + 1 + 3)


@pytest.mark.parametrize("close", ["fin", "rst"])
def test_new_syn_after_close_starts_a_new_flow(tmp_path, close):
    with session(tmp_path) as s:
        handshake(s)
        if close == "fin":
            c2s(s, T0 + 30 * MS, FIN | ACK)
            s2c(s, T0 + 31 * MS, FIN | ACK, ack=ISN_C + 2)
        else:
            c2s(s, T0 + 30 * MS, RST | ACK)
        c2s(s, T0 + 2 * S, SYN, seq=90000, ack=0)
        s2c(s, T0 + 2 * S + 5 * MS, SYN | ACK, seq=70000, ack=90001)
        c = s.counters()
        old, new = flows(s)
    assert (old.id, old.end_reason, old.state) == (1, "tcp_end", "closed" if close == "fin" else "reset")
    assert old.last_ns < T0 + S
    assert (new.id, new.end_reason, new.state, new.packets, new.first_ns) == (2, "flush", "opening", (1, 1), T0 + 2 * S)
    assert (new.src, new.sport, new.syn_synack_ns) == (A4, CPORT, 5 * MS)
    assert (c.flows_created, c.flows_tcp, c.flows_expired_end) == (2, 2, 1)


def test_same_syn_retried_after_rst_stays_in_the_flow(tmp_path):
    with session(tmp_path) as s:
        c2s(s, T0, SYN, seq=ISN_C, ack=0)
        s2c(s, T0 + MS, RST | ACK, seq=0, ack=ISN_C + 1)
        c2s(s, T0 + S, SYN, seq=ISN_C, ack=0)
        c = s.counters()
        [r] = flows(s)
    assert (r.packets, r.state, r.end_reason) == ((2, 1), "opening", "flush")  # the retry is a new attempt
    assert c.flows_created == 1


def test_new_syn_from_the_responder_after_close_starts_a_new_flow(tmp_path):
    with session(tmp_path) as s:
        _reset(s)
        s2c(s, T0 + S, SYN, seq=ISN_S, ack=0)
        old, new = flows(s)
    assert old.end_reason == "tcp_end"
    assert (new.src, new.sport, new.dst, new.dport) == (B4, SPORT, A4, CPORT)


# ---- timeouts ------------------------------------------------------------------------

def test_idle_timeout_ends_a_flow(tmp_path):
    with session(tmp_path, idle_timeout_s=5) as s:
        s.inject(udp4(payload=b"a"), ts_ns=T0)
        s.inject(udp4(payload=b"b"), ts_ns=T0 + 3 * S)             # within the timeout
        s.inject(udp4(C4, B4, payload=b"c"), ts_ns=T0 + 10 * S)    # time moves on: the sweep ends the first
        expired = s.read_flows()
        s.inject(udp4(payload=b"d"), ts_ns=T0 + 10 * S + MS)
        c = s.counters()
        rest = flows(s)
    assert [(r.id, r.packets, r.end_reason, r.last_ns) for r in expired] == [(1, (2, 0), "idle", T0 + 3 * S)]
    assert [(r.id, r.src, r.packets, r.end_reason) for r in rest] == [(2, C4, (1, 0), "flush"), (3, A4, (1, 0), "flush")]
    assert (c.flows_expired_idle, c.flows_created) == (1, 3)


def test_skip_flows_empties_the_ring_like_read_flows(tmp_path):
    """skip_flows drops expired records as read_flows would take them: the same count, the ring empty after."""
    with session(tmp_path, idle_timeout_s=5) as s:
        for i in range(3):
            s.inject(udp4(payload=bytes([i]), sport=SPORT + i), ts_ns=T0)
        s.inject(udp4(C4, B4, payload=b"c"), ts_ns=T0 + 10 * S)
        assert s.skip_flows() == 3
        assert s.read_flows() == [] and s.skip_flows() == 0
        assert s.counters().flows_expired_idle == 3


def test_packet_after_the_idle_timeout_starts_a_new_flow(tmp_path):
    with session(tmp_path, idle_timeout_s=5) as s:
        s.inject(udp4(payload=b"a"), ts_ns=T0)
        s.inject(udp4(payload=b"b"), ts_ns=T0 + 10 * S)
        recs = flows(s)
    assert [(r.packets, r.end_reason) for r in recs] == [((1, 0), "idle"), ((1, 0), "flush")]


def test_active_timeout_reports_and_continues(tmp_path):
    with session(tmp_path, active_timeout_s=5) as s:
        for k in range(8):
            s.inject(udp4(payload=b"x"), ts_ns=T0 + k * S)
        c = s.counters()
        recs = flows(s)
        hosts = s.top_hosts()
    size = len(udp4(payload=b"x"))
    assert [(r.id, r.first_ns, r.last_ns, r.packets, r.end_reason, r.continued) for r in recs] == [
        (1, T0, T0 + 5 * S, (6, 0), "active_timeout", False),
        (1, T0 + 6 * S, T0 + 7 * S, (2, 0), "flush", True),   # starts at its first packet
    ]
    assert recs[1].bytes == (2 * size, 0)
    assert (c.flows_expired_active, c.flows_created) == (1, 1)
    assert [(h.addr, h.packets_out, h.flows) for h in hosts] == [(A4, 8, 1), (B4, 0, 1)]


def test_silent_flow_gets_no_empty_records(tmp_path):
    with session(tmp_path, idle_timeout_s=10, active_timeout_s=5) as s:
        for k in range(5):
            s.inject(udp4(payload=b"a"), ts_ns=T0 + k * S)
        for k in range(5, 23):                            # another flow keeps packet time moving
            s.inject(udp4(C4, B4, payload=b"b"), ts_ns=T0 + k * S + S // 2)
        recs = [r for r in flows(s) if r.src == A4]
    assert recs[0].packets == (5, 0) and recs[0].end_reason == "active_timeout"
    assert [(r.packets, r.first_ns <= r.last_ns) for r in recs] == [((5, 0), True)]


def test_no_timeouts_when_both_are_zero(tmp_path):
    with session(tmp_path) as s:
        s.inject(udp4(payload=b"a"), ts_ns=T0)
        s.inject(udp4(C4, B4, payload=b"c"), ts_ns=T0 + 3600 * S)
        assert s.read_flows() == []
        s.inject(udp4(payload=b"b"), ts_ns=T0 + 7200 * S)
        recs = flows(s)
    assert [(r.src, r.packets, r.end_reason) for r in recs] == [(A4, (2, 0), "flush"), (C4, (1, 0), "flush")]


# ---- a full table ---------------------------------------------------------------------

def test_full_table_evicts_the_least_recently_seen(tmp_path):
    with session(tmp_path, max_flows=16) as s:
        for k in range(20):
            s.inject(udp4(sport=10000 + k, payload=b"x"), ts_ns=T0 + k * MS)
        c = s.counters()
        evicted = s.read_flows()
        active = s.active_flows(limit=100)
        rest = flows(s)
    assert (c.flows_created, c.flows_evicted, c.flows_active, c.flows_not_metered) == (20, 4, 16, 0)
    assert len(evicted) == 4 and {r.end_reason for r in evicted} == {"evicted"}
    assert evicted[0].id == 1                               # the oldest of all
    assert all(r.id <= 16 for r in evicted)                 # never a flow younger than the table
    assert len(active) == 16 and {r.id for r in active} == {r.id for r in rest}
    assert {r.id for r in evicted} | {r.id for r in rest} == set(range(1, 21))
    assert {r.end_reason for r in rest} == {"flush"}


def test_table_grows_and_shrinks_without_losing_flows(tmp_path):
    """40000 flows pass the first slot array's half load (32768), then all
    expire at once: every later packet still finds its own flow."""
    n = 40000
    frames = [udp4(src=f"10.1.{k // 50000}.{k % 250 + 1}", sport=1024 + k // 250, payload=b"x") for k in range(n)]
    with session(tmp_path, max_flows=n + 16, idle_timeout_s=5, flow_ring=0) as s:
        for rnd in range(2):
            for i, frame in enumerate(frames):
                s.inject(frame, ts_ns=T0 + rnd * 100_000 + i)
        grown = s.counters()
        s.inject(udp4(C4, B4, payload=b"tick"), ts_ns=T0 + 10 * S)
        swept = s.counters()
        for rnd in range(2):
            for i, frame in enumerate(frames):
                s.inject(frame, ts_ns=T0 + 10 * S + rnd * 100_000 + i)
        again = s.counters()
    assert (grown.flows_created, grown.flows_active, grown.flows_not_metered) == (n, n, 0)
    assert (swept.flows_expired_idle, swept.flows_active) == (n, 1)
    assert (again.flows_created, again.flows_active, again.packets_not_metered) == (2 * n + 1, n + 1, 0)


def test_lossless_flush_stops_for_the_ring_to_be_drained(tmp_path):
    with session(tmp_path, flow_ring=4096) as s:
        for k in range(5000):
            s.inject(udp4(sport=1024 + k, payload=b"x"), ts_ns=T0 + k)
        left = s.flush()
        first = s.read_flows()
        assert (left, len(first)) == (5000 - len(first), 4096 - 2 * 256)
        assert s.flush() == 0
        second = s.read_flows()
    assert sorted(r.id for r in first + second) == list(range(1, 5001))


# ---- active flows and talkers ------------------------------------------------------------

def test_active_flows_order_and_limit(tmp_path):
    big, small, mid = bytes(1400 - 42), bytes(100 - 42), bytes(300 - 42)
    plan = [  # (time in s, sport, payload): flows 1, 2, 3 by sport 1, 2, 3
        (0.0, 1, big), (1.0, 2, small), (1.1, 2, small), (1.2, 2, small), (1.3, 2, small),
        (2.0, 3, mid), (2.5, 3, mid), (4.0, 1, big), (5.0, 3, mid),
    ]
    with session(tmp_path) as s:
        for t, sport, payload in plan:
            s.inject(udp4(sport=sport, dport=9999, payload=payload), ts_ns=T0 + int(t * S))
        order = {o: [r.sport for r in s.active_flows(order=o)] for o in ("bytes", "packets", "last", "first")}
        top2 = {o: [r.sport for r in s.active_flows(limit=2, order=o)] for o in ("bytes", "packets", "last", "first")}
        [one] = s.active_flows(limit=1)
        assert s.active_flows(limit=0) == []
        with pytest.raises(CaptureError) as err:
            s.active_flows(order="size")
        assert err.value.code == ErrorCode.ARG
    assert order == {"bytes": [1, 3, 2], "packets": [2, 3, 1], "last": [3, 1, 2], "first": [1, 2, 3]}
    assert top2 == {k: v[:2] for k, v in order.items()}
    assert (one.sport, one.bytes, one.packets, one.end_reason) == (1, (2800, 0), (2, 0), "active")


def test_top_hosts_totals_flows_that_left_the_table(tmp_path):
    with session(tmp_path) as s:
        s.inject(udp4(A4, B4, 5000, 53, bytes(100 - 42)), ts_ns=T0)
        s.inject(udp4(A4, B4, 5000, 53, bytes(100 - 42)), ts_ns=T0 + MS)
        s.inject(udp4(B4, A4, 53, 5000, bytes(300 - 42)), ts_ns=T0 + 2 * MS)
        s.inject(tcp4(A4, C4, 40000, 443, flags=SYN, pad_to=60), ts_ns=T0 + 3 * MS)
        s.inject(tcp4(C4, A4, 443, 40000, flags=SYN | ACK, payload=bytes(1000 - 54)), ts_ns=T0 + 4 * MS)
        assert s.top_hosts() == []
        s.flush()
        hosts = [h.as_dict() for h in s.top_hosts()]
        top2 = [h.addr for h in s.top_hosts(limit=2)]
    assert [(h["addr"], h["bytes_out"], h["bytes_in"], h["packets_out"], h["packets_in"], h["flows"], h["bytes"])
            for h in hosts] == [
        (A4, 260, 1300, 3, 2, 2, 1560),
        (C4, 1000, 60, 1, 1, 1, 1060),
        (B4, 300, 200, 1, 2, 1, 500),
    ]
    assert top2 == [A4, C4]


def test_full_talker_table_counts_dropped_hosts(tmp_path):
    with session(tmp_path, max_hosts=16) as s:
        for k in range(20):
            s.inject(udp4(f"10.2.0.{k + 1}", B4, 5000, 53, payload=b"q"), ts_ns=T0 + k * MS)
        s.flush()
        c = s.counters()
        hosts = s.top_hosts(limit=100)
    size = len(udp4(payload=b"q"))
    assert c.hosts_dropped == 5                  # B4 and the first 15 clients fill the table
    assert len(hosts) == 16
    assert (hosts[0].addr, hosts[0].flows, hosts[0].bytes_in, hosts[0].packets_in) == (B4, 20, 20 * size, 20)
    assert {h.addr for h in hosts[1:]} == {f"10.2.0.{k + 1}" for k in range(15)}


# ---- applications ------------------------------------------------------------------------------

@pytest.mark.parametrize("proto, sport, dport, app", [
    ("tcp", 40000, 53, "dns"), ("udp", 40000, 53, "dns"), ("tcp", 40000, 80, "http"),
    ("tcp", 40000, 8080, "http"), ("tcp", 40000, 443, "tls"), ("udp", 40000, 443, "quic"),
    ("tcp", 40000, 22, "ssh"), ("tcp", 40000, 25, "smtp"), ("udp", 40000, 123, "ntp"),
    ("udp", 68, 67, "dhcp"), ("udp", 40000, 5060, "sip"), ("tcp", 40000, 3306, "database"),
    ("udp", 5353, 5353, "mdns"), ("tcp", 40000, 12345, "other"), ("udp", 40000, 12345, "other"),
    ("tcp", 22, 40000, "ssh"),                 # the only known port names it, whichever side
    ("tcp", 80, 22, "ssh"),                    # both known: the lower port
])
def test_app_by_port(tmp_path, proto, sport, dport, app):
    frame = tcp4(sport=sport, dport=dport, flags=SYN) if proto == "tcp" else udp4(sport=sport, dport=dport)
    with session(tmp_path) as s:
        s.inject(frame, ts_ns=T0)
        c = s.counters()
        [r] = flows(s)
    assert r.app == app
    assert {k: v for k, v in c.app_packets.items() if v} == {app: 1}


def test_app_icmp(tmp_path):
    with session(tmp_path) as s:
        s.inject(icmp4(), ts_ns=T0)
        [r] = flows(s)
    assert r.app == "icmp"


@pytest.mark.parametrize("port, payload, app", [
    (4433, tls_hello(1), "tls"),
    (8081, HTTP_GET, "http"),
    (443, HTTP_GET, "http"),        # the payload beats the port
    (80, tls_hello(1), "tls"),
    (5080, SIP_INVITE, "sip"),
], ids=["tls-on-4433", "http-on-8081", "http-on-443", "tls-on-80", "sip-on-tcp-5080"])
def test_app_by_payload(tmp_path, port, payload, app):
    with session(tmp_path) as s:
        s.inject(tcp4(A4, B4, CPORT, port, flags=SYN, seq=ISN_C), ts_ns=T0)
        s.inject(tcp4(B4, A4, port, CPORT, flags=SYN | ACK, seq=ISN_S, ack=ISN_C + 1), ts_ns=T0 + MS)
        s.inject(tcp4(A4, B4, CPORT, port, seq=ISN_C + 1, ack=ISN_S + 1), ts_ns=T0 + 2 * MS)
        s.inject(tcp4(A4, B4, CPORT, port, flags=ACK | PSH, seq=ISN_C + 1, ack=ISN_S + 1, payload=payload),
                 ts_ns=T0 + 3 * MS)
        c = s.counters()
        [r] = flows(s)
    assert r.app == app
    assert c.app_packets[app] >= 1


def test_sip_by_request_line_on_another_udp_port(tmp_path):
    with session(tmp_path) as s:
        s.inject(udp4(sport=5070, dport=5080, payload=SIP_INVITE), ts_ns=T0)
        c = s.counters()
        [r] = flows(s)
    assert r.app == "sip"
    assert {k: v for k, v in c.app_packets.items() if v} == {"sip": 1}
