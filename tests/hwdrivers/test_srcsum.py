"""TCP sources summarised in C (hwdrivers/src/srcsum.c): one tcp_src event per
source and span instead of one per SYN, with the counts a scan or a flood
shows, and every Ethernet address pair a source's SYNs showed (LAN learning
loses none: a new pair is sent at once, in packet order)."""
import ipaddress

from tests.hwdrivers.packets import A4, ACK, B4, MAC_A, RST, SYN, T0, TCP, eth, ipv4, session, tcp, tcp4

S = 1_000_000_000
C4, ROUTER_MAC, ATTACKER_MAC = "192.0.2.3", "02:00:00:00:00:01", "02:00:00:00:00:66"


def summaries(tmp_path, frames, **config) -> tuple:
    """(tcp_src events, counters) after injecting (ts_ns, frame) pairs and flushing the end."""
    with session(tmp_path, events=frozenset({"tcp_src"}), **config) as s:
        out = []
        for ts, frame in frames:
            s.inject(frame, ts_ns=ts)
            out += s.read_events()
        for _ in range(1000):
            left = s.flush()
            out += s.read_events()
            s.skip_flows()
            if not left:
                break
        out += s.read_events()
        return out, s.counters()


def via(src, dst, dport, src_mac, dst_mac, flags=SYN) -> bytes:
    return eth(ipv4(src, dst, TCP, tcp(40000, dport, flags=flags)), src=src_mac, dst=dst_mac)


def test_one_summary_per_span_with_syns_rsts_hosts_and_ports(tmp_path):
    frames = [(T0, via(A4, B4, 80, MAC_A, ROUTER_MAC)),                     # first seen: sent at once
              (T0 + 1, tcp4(B4, A4, 80, 40000, flags=SYN | ACK)),          # no SYN of A's, no source of B's
              (T0 + 2, via(A4, B4, 81, MAC_A, ROUTER_MAC)),
              (T0 + 3, via(A4, C4, 81, MAC_A, ROUTER_MAC)),                # the same next hop: no new pair
              (T0 + 4, tcp4(B4, A4, 81, 40001, flags=RST | ACK)),           # A is refused
              (T0 + 5, tcp4(A4, B4, 40000, 80, flags=RST))]                # A resets
    evs, c = summaries(tmp_path, frames)
    assert [(e.kind, e.src, e.record.reason, e.record.syns) for e in evs] == [
        ("tcp_src", A4, "new", 1), ("tcp_src", A4, "end", 2)]
    first, last = evs[0].record, evs[1].record
    assert (first.hosts, first.ports, first.rsts_sent, first.rsts_received) == (1, 1, 0, 0)
    assert (last.hosts, last.ports, last.rsts_sent, last.rsts_received) == (2, 2, 1, 1)
    assert (last.first_ts, last.last_ts, evs[1].ts_ns) == ((T0 + 2) / 1e9, (T0 + 5) / 1e9, T0 + 5)
    assert (evs[1].src_mac, evs[1].dst_mac, evs[1].dst) == (MAC_A, ROUTER_MAC, C4)
    assert c.events["tcp_src"] == 2 and c.tcp_source_syns == 3 and c.tcp_sources_evicted == 0


def test_a_new_next_hop_is_sent_at_once_in_packet_order(tmp_path):
    # A's routed traffic goes through the router, then through the attacker's MAC: the switch is not held
    # back to the end of the span, and the summary is the SYN that showed it
    frames = [(T0, via(A4, "151.101.1.10", 443, MAC_A, ROUTER_MAC)),
              (T0 + 1, via(A4, "151.101.1.11", 443, MAC_A, ROUTER_MAC)),
              (T0 + 2, via(A4, "151.101.1.12", 443, MAC_A, ATTACKER_MAC)),
              (T0 + 3, via(A4, "151.101.1.13", 443, MAC_A, ROUTER_MAC))]
    evs, _ = summaries(tmp_path, frames)
    assert [(e.record.reason, e.dst, e.dst_mac, e.record.syns) for e in evs] == [
        ("new", "151.101.1.10", ROUTER_MAC, 1), ("changed", "151.101.1.12", ATTACKER_MAC, 2),
        ("end", "151.101.1.13", ROUTER_MAC, 1)]
    assert [(p.dst_mac, p.dst) for p in evs[1].record.pairs] == [(ROUTER_MAC, "151.101.1.11"),
                                                                  (ATTACKER_MAC, "151.101.1.12")]


def test_a_span_ends_after_the_interval(tmp_path):
    frames = [(T0 + k * S, tcp4(A4, B4, 40000 + k, 80, flags=SYN)) for k in range(25)]
    evs, _ = summaries(tmp_path, frames)
    assert [(e.record.reason, e.record.syns) for e in evs] == [("new", 1), ("interval", 10), ("interval", 10),
                                                                 ("end", 4)]
    assert [round(e.record.last_ts - e.record.first_ts) for e in evs] == [0, 9, 9, 3]


def test_a_quiet_source_is_summarised_once_per_refresh(tmp_path):
    frames = [(T0 + k * 30 * S, tcp4(A4, B4, 40000 + k, 80, flags=SYN)) for k in range(20)]   # one SYN in 30 s
    evs, _ = summaries(tmp_path, frames)
    assert [(e.record.reason, e.record.syns) for e in evs] == [("new", 1), ("interval", 10), ("end", 9)]
    assert round(evs[1].record.last_ts - evs[1].record.first_ts) == 270


def test_a_port_scan_is_one_summary_that_counts_its_ports(tmp_path):
    frames = [(T0 + k, tcp4(A4, B4, 50000, port, flags=SYN)) for k, port in enumerate(range(1, 301))]
    frames.append((T0 + 2000, tcp4(A4, C4, 50000, 80, flags=SYN)))            # another host: another next hop
    evs, c = summaries(tmp_path, frames)
    assert [e.record.reason for e in evs] == ["new", "changed"]
    scan = evs[1].record
    assert scan.syns == 300 and scan.hosts == 2 and 255 <= scan.ports <= 345    # a 256-bit sketch's estimate
    assert [p.dst for p in scan.pairs] == [B4, C4] and c.tcp_source_syns == 301


def test_a_full_table_evicts_the_oldest_and_loses_no_count(tmp_path):
    sources = [str(ipaddress.ip_address("10.0.0.0") + k) for k in range(10000)]
    frames = [(T0 + k, tcp4(src, B4, 40000, 80, flags=SYN)) for k, src in enumerate(sources)]
    frames += [(T0 + 20000 + k, tcp4(src, B4, 40001, 80, flags=SYN)) for k, src in enumerate(sources[:3000])]
    evs, c = summaries(tmp_path, frames, event_ring=1 << 15, max_hosts=8192)      # 8,192 sources in the table
    assert c.tcp_sources_evicted > 0 and c.events_dropped["tcp_src"] == 0
    assert sum(e.record.syns for e in evs) == c.tcp_source_syns == 13000
    assert {e.src for e in evs} == set(sources)


def test_acks_and_other_protocols_make_no_summary(tmp_path):
    evs, c = summaries(tmp_path, [(T0, tcp4(A4, B4, flags=ACK)), (T0 + 1, tcp4(A4, B4, flags=RST))])
    assert evs == [] and c.events["tcp_src"] == 0


def test_a_quiet_sources_span_is_swept_out_when_due(tmp_path):
    """A busy source that falls silent is summarised by the tick's sweep right after the first packet (of anyone)
    past its span's interval, not at the end: the sweep skips only buckets whose spans all began too lately."""
    b4 = "198.51.100.7"
    frames = [(T0 + k * S // 10, tcp4(A4, C4, 40000 + k, 80, flags=SYN)) for k in range(10)]     # 10 SYNs in 1 s
    frames += [(T0 + k * S + S // 2, tcp4(b4, C4, 41000 + k, 80, flags=SYN)) for k in range(1, 16)]
    with session(tmp_path, events=frozenset({"tcp_src"}), max_hosts=64) as s:   # 8 buckets: a tick sweeps all
        after = []                                 # (the second of the packet after which it came, summary)
        for ts, frame in frames:
            s.inject(frame, ts_ns=ts)
            after += [((ts - T0) / S, e.src, e.record.reason, e.record.syns) for e in s.read_events()]
    # B's span begins after its "new" summary, at its second SYN (2.5 s): due at 12.5 s, by its own packet
    assert after == [(0.0, A4, "new", 1), (1.5, b4, "new", 1), (10.5, A4, "interval", 9),
                     (12.5, b4, "interval", 10)]


def test_a_quiet_sources_span_is_swept_out_at_its_refresh(tmp_path):
    """A quiet source (too few SYNs for its interval) is swept out once its span reaches the refresh, at the first
    packet (of anyone) after it: a bucket past its spans' intervals is not skipped for good."""
    b4 = "198.51.100.7"
    frames = [(T0, tcp4(A4, C4, 40000, 80, flags=SYN)), (T0 + S, tcp4(A4, C4, 40001, 80, flags=SYN))]
    frames += [(T0 + k * 20 * S + S // 2, tcp4(b4, C4, 41000 + k, 80, flags=SYN)) for k in range(1, 17)]
    with session(tmp_path, events=frozenset({"tcp_src"}), max_hosts=64) as s:
        after = []
        for ts, frame in frames:
            s.inject(frame, ts_ns=ts)
            after += [((ts - T0) / S, e.src, e.record.reason, e.record.syns) for e in s.read_events()]
    # A's span began at its second SYN (1 s): due at 301 s, swept out after B's packet at 320.5 s
    assert after == [(0.0, A4, "new", 1), (20.5, b4, "new", 1), (320.5, A4, "interval", 1)]
