"""RTP and RTCP on the endpoints Python names (rtp.c): sequence, wraps,
loss and RFC 3550 jitter on known answers, the announcement time, RTCP,
payload type clocks, forgetting a call, and the tables' limits."""
import struct

import pytest

from hwdrivers import CaptureError, ErrorCode
from hwdrivers.rtp import Endpoint
from tests.hwdrivers.packets import A4, A6, ACK, B4, B6, MS, PSH, SIP_INVITE, T0, UDP, eth, ETH_IPV6, ipv6, session, \
    tcp4, udp, udp4

SSRC = 0x11223344


def rtp(seq: int, ts: int, pt: int = 8, marker: bool = False, ssrc: int = SSRC, payload: bytes = bytes(160)) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def rtcp_sr(ssrc: int = SSRC) -> bytes:
    return struct.pack("!BBHI", 0x80, 200, 6, ssrc) + bytes(20)


def run(tmp_path, packets, endpoints, init=True):
    """Streams after injecting (ts_ns, frame) pairs with the endpoints registered."""
    with session(tmp_path) as s:
        if init:
            s.rtp_init(64, 64)
        for e in endpoints:
            s.rtp_watch(e)
        for ts, frame in packets:
            s.inject(frame, ts_ns=ts)
        return sorted(s.rtp_streams(), key=lambda x: (x.kind, x.src, x.ssrc)), s.rtp_stats()


def wireshark_jitter(arrivals_ms, stamps, clock=8000):
    """RFC 3550 6.4.1 for packets in order: J += (|D| - J) / 16; (max, mean over packets 2..n)."""
    j, js = 0.0, []
    for i in range(1, len(arrivals_ms)):
        d = (arrivals_ms[i] - arrivals_ms[i - 1]) - (stamps[i] - stamps[i - 1]) * 1000 / clock
        j += (abs(d) - j) / 16
        js.append(j)
    return max(js), sum(js) / len(js)


EP = Endpoint(B4, 4000, tag=7)


def test_a_clean_stream_has_no_loss_and_no_jitter(tmp_path):
    pkts = [(T0 + i * 20 * MS, udp4(A4, B4, 3000, 4000, rtp(100 + i, 160 * i))) for i in range(50)]
    [st], stats = run(tmp_path, pkts, [EP])
    assert (st.kind, st.src, st.sport, st.dst, st.dport, st.ssrc, st.tag) == ("rtp", A4, 3000, B4, 4000, SSRC, 7)
    assert (st.packets, st.expected, st.lost, st.seq_errors) == (50, 50, 0, 0)
    assert st.max_jitter_ms == 0 and st.mean_jitter_ms == 0 and st.clock_rate == 8000
    assert st.max_delta_ms == pytest.approx(20) and st.payload_types == (8,)
    assert st.first_ns == T0 and st.last_ns == T0 + 49 * 20 * MS and st.bytes == sum(len(f) for _, f in pkts)
    assert stats["rtp_packets"] == 50 and stats["streams"] == 1 and stats["endpoints"] == 1


def test_gaps_are_lost_packets(tmp_path):
    seqs = [1, 2, 3, 6, 7, 8, 10]
    pkts = [(T0 + s * 20 * MS, udp4(A4, B4, 3000, 4000, rtp(s, 160 * s))) for s in seqs]
    [st], _ = run(tmp_path, pkts, [EP])
    assert (st.packets, st.expected, st.lost, st.seq_errors) == (7, 10, 3, 2)


def test_sequence_wraps_are_counted(tmp_path):
    seqs = [65530 + i for i in range(6)] + list(range(0, 6))
    pkts = [(T0 + i * 20 * MS, udp4(A4, B4, 3000, 4000, rtp(s, 160 * i))) for i, s in enumerate(seqs)]
    [st], _ = run(tmp_path, pkts, [EP])
    assert (st.packets, st.expected, st.lost, st.seq_errors) == (12, 12, 0, 0)


def test_duplicates_make_loss_negative(tmp_path):
    pkts = [(T0 + i * 20 * MS, udp4(A4, B4, 3000, 4000, rtp(s, 160 * s))) for i, s in enumerate([1, 2, 2, 3])]
    [st], _ = run(tmp_path, pkts, [EP])
    assert (st.packets, st.expected, st.lost, st.seq_errors) == (4, 3, -1, 1)


def test_jitter_is_rfc3550_interarrival_jitter(tmp_path):
    arrivals = [0, 20, 41, 59, 83, 100, 118, 145, 160, 181, 199, 220]
    stamps = [160 * i for i in range(len(arrivals))]
    pkts = [(T0 + a * MS, udp4(A4, B4, 3000, 4000, rtp(i, stamps[i]))) for i, a in enumerate(arrivals)]
    [st], _ = run(tmp_path, pkts, [EP])
    mx, mean = wireshark_jitter(arrivals, stamps)
    assert st.max_jitter_ms == pytest.approx(mx, abs=1e-9) and st.mean_jitter_ms == pytest.approx(mean, abs=1e-9)
    assert st.jitter_ms > 0


def test_dynamic_payload_type_clock_and_telephone_events(tmp_path):
    arrivals = [0, 20, 43, 60, 80]
    wide = [(T0 + a * MS, udp4(A4, B4, 3000, 4000, rtp(i, 320 * i, pt=96))) for i, a in enumerate(arrivals)]
    [st], _ = run(tmp_path, wide, [Endpoint(B4, 4000, 7, clock={96: 16000})])
    assert st.clock_rate == 16000
    assert st.max_jitter_ms == pytest.approx(wireshark_jitter(arrivals, [320 * i for i in range(5)], 16000)[0])
    unknown = [(T0 + a * MS, udp4(A4, B4, 3000, 4000, rtp(i, 0, pt=101))) for i, a in enumerate(arrivals)]
    [st], _ = run(tmp_path, unknown, [Endpoint(B4, 4000, 7, clock={101: 0})])
    assert (st.clock_rate, st.max_jitter_ms, st.packets, st.lost) == (0, 0, 5, 0)


def test_only_packets_after_the_announcement_count(tmp_path):
    pkts = [(T0 + i * 20 * MS, udp4(A4, B4, 3000, 4000, rtp(i, 160 * i))) for i in range(10)]
    [st], _ = run(tmp_path, pkts, [Endpoint(B4, 4000, 7, from_ns=T0 + 100 * MS)])
    assert st.packets == 5 and st.first_ns == T0 + 100 * MS


def test_both_directions_of_an_endpoint_and_the_latest_announcement_wins(tmp_path):
    fwd = [(T0 + i * 20 * MS, udp4(A4, B4, 3000, 4000, rtp(i, 160 * i))) for i in range(4)]
    back = [(T0 + i * 20 * MS + MS, udp4(B4, A4, 4000, 3000, rtp(i, 160 * i, ssrc=0x55))) for i in range(4)]
    later = [(T0 + 10**9 + i * 20 * MS, udp4(A4, B4, 3000, 4000, rtp(50 + i, 160 * i, ssrc=0x66))) for i in range(3)]
    streams, _ = run(tmp_path, fwd + back + later, [Endpoint(B4, 4000, 7), Endpoint(B4, 4000, 8, from_ns=T0 + 10**9)])
    assert [(s.src, s.ssrc, s.tag, s.packets) for s in streams] == [(A4, 0x66, 8, 3), (A4, SSRC, 7, 4),
                                                                     (B4, 0x55, 7, 4)]


def test_rtcp_on_its_port_and_multiplexed(tmp_path):
    pkts = [(T0, udp4(A4, B4, 3001, 4001, rtcp_sr())), (T0 + MS, udp4(A4, B4, 3000, 4000, rtcp_sr(0x99))),
            (T0 + 2 * MS, udp4(A4, B4, 3000, 4000, rtp(1, 0)))]
    streams, stats = run(tmp_path, pkts, [EP, Endpoint(B4, 4001, 7, kind="rtcp")])
    assert [(s.kind, s.dport, s.ssrc, s.packets) for s in streams] == [("rtcp", 4000, 0x99, 1),
                                                                        ("rtcp", 4001, SSRC, 1),
                                                                        ("rtp", 4000, SSRC, 1)]
    assert (stats["rtp_packets"], stats["rtcp_packets"]) == (1, 2)


def test_what_is_not_rtp_is_counted_apart(tmp_path):
    pkts = [(T0, udp4(A4, B4, 3000, 4000, b"\x00\x01udptl")), (T0 + MS, udp4(A4, B4, 3000, 4000, b"\x80\x08")),
            (T0 + 2 * MS, udp4(A4, B4, 3000, 4444, rtp(1, 0))),
            (T0 + 3 * MS, tcp4(A4, B4, 3000, 4000, flags=ACK | PSH, payload=rtp(1, 0)))]
    streams, stats = run(tmp_path, pkts, [EP])
    assert streams == [] and stats["other_packets"] == 2 and stats["rtp_packets"] == 0


def test_ipv6_endpoints(tmp_path):
    frame = eth(ipv6(A6, B6, UDP, udp(3000, 4000, rtp(1, 0))), ETH_IPV6)
    [st], _ = run(tmp_path, [(T0, frame)], [Endpoint(B6, 4000, 3)])
    assert (st.src, st.dst, st.packets) == (A6, B6, 1)


def test_forgetting_a_call_drops_its_endpoints_and_streams(tmp_path):
    with session(tmp_path) as s:
        s.rtp_init(64, 64)
        s.rtp_watch(EP)
        s.rtp_watch(Endpoint(A4, 3000, 9))
        s.inject(udp4(A4, B4, 3000, 4000, rtp(1, 0)), ts_ns=T0)
        assert {x.tag for x in s.rtp_streams()} == {7}
        assert s.rtp_forget(7) == 1
        assert s.rtp_streams(7) == [] and s.rtp_stats()["endpoints"] == 1
        s.inject(udp4(A4, B4, 3000, 4000, rtp(2, 160)), ts_ns=T0 + MS)
        assert [(x.tag, x.packets) for x in s.rtp_streams()] == [(9, 1)]


def test_limits_and_bad_calls(tmp_path):
    with session(tmp_path) as s:
        with pytest.raises(CaptureError) as e:
            s.rtp_watch(EP)
        assert e.value.code == ErrorCode.STATE
        s.inject(udp4(A4, B4, 3000, 4000, rtp(1, 0)), ts_ns=T0)
        assert s.rtp_streams() == []
        s.rtp_init(2, 1)
        with pytest.raises(CaptureError) as e:
            s.rtp_init(2, 1)
        assert e.value.code == ErrorCode.STATE
        for bad in (Endpoint(B4, 4000, 0), Endpoint("nope", 4000, 1), Endpoint(B4, 0, 1), Endpoint(B4, 1, 1, "x")):
            with pytest.raises(CaptureError) as e:
                s.rtp_watch(bad)
            assert e.value.code == ErrorCode.ARG
        s.rtp_watch(EP)
        s.rtp_watch(EP)  # the same again is one endpoint
        s.rtp_watch(Endpoint(A4, 3000, 7))
        with pytest.raises(CaptureError) as e:
            s.rtp_watch(Endpoint(A4, 3002, 7))
        assert e.value.code == ErrorCode.NOMEM
        s.inject(udp4(A4, B4, 3000, 4000, rtp(1, 0)), ts_ns=T0)
        s.inject(udp4(A4, B4, 3000, 4000, rtp(1, 0, ssrc=2)), ts_ns=T0 + MS)
        stats = s.rtp_stats()
        assert (stats["streams"], stats["streams_full"], stats["endpoints"]) == (1, 1, 2)


def test_sip_over_tcp_on_another_port_keeps_its_continuations(tmp_path):
    head, body = SIP_INVITE[:30], SIP_INVITE[30:]
    with session(tmp_path, events=frozenset({"sip"})) as s:
        s.inject(tcp4(A4, B4, 40000, 5090, flags=ACK | PSH, seq=1, payload=head), ts_ns=T0)
        s.inject(tcp4(A4, B4, 40000, 5090, flags=ACK | PSH, seq=31, payload=body), ts_ns=T0 + MS)
        s.inject(udp4(A4, B4, 5070, 5080, SIP_INVITE), ts_ns=T0 + 2 * MS)
        s.inject(udp4(A4, B4, 5070, 5080, b"hello"), ts_ns=T0 + 3 * MS)  # UDP: only start lines
        assert [e.payload for e in s.read_events()] == [head, body, SIP_INVITE]
