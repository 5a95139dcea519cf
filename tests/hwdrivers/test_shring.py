"""The shared event ring (hwdrivers/shring.py, src/shring.c): events moved
from a session's C ring into a memfd ring come out of another mapping of it
(as the consumer worker maps it) equal to what read_events gives; a full ring
never waits, it drops and counts by kind (`capbox detect`'s, given a wait,
waits for room and drops nothing)."""
import dataclasses
import os
import subprocess
import sys

import pytest

from hwdrivers import CaptureConfig, CaptureError, Session, dnsgate
from hwdrivers._hw import ffi, lib
from hwdrivers.events import KIND_BITS, KINDS, SHREC_UNPACK, TEMPLATES, DnsRepeat
from hwdrivers.records import answer_ips
from hwdrivers.shring import SIZE, SharedRing
from tests.conftest import ROOT, pcap

ALL = frozenset(KINDS)


def _config(path: str) -> CaptureConfig:
    return CaptureConfig(source=path, backend="pcapfile", events=ALL, event_ring=1 << 15, lossless=True,
                         idle_timeout_s=0, active_timeout_s=0)


def _reference(path: str) -> list:
    out = []
    with Session(_config(path)) as s:
        s.run_to_eof(lambda: out.extend(s.read_events()))
    return out


@pytest.mark.parametrize("name", ["zeek__tls_ssl.v3.pcap", "chrissanders__arp_resolution.pcapng", "zeek__dhcp.pcap",
                                  "zeek__dns-two-responses.pcap", "chrissanders__http_ip4and6.pcapng",
                                  "ndpi__badpackets.pcap", "zeek__wikipedia.pcap"])   # (DNS: 10 and 4 record types)
def test_events_through_the_ring_equal_read_events(name):
    want = _reference(pcap(name))
    ring = SharedRing(8)                        # small (8 events' bytes): the ring wraps many times
    peer = SharedRing(fd=os.dup(ring.fd))       # the worker's mapping
    got, kept = [], []

    def pump():
        while True:     # no more than fits (else the rest would be dropped), then a little out: wraps often
            taken, keep = ring.fill(s, 2, keep=frozenset({"arp", "tls"}))
            kept.extend(keep)
            n, evs = peer.take(3, ALL)
            got.extend(evs)
            if not taken and not n:
                return
    with Session(_config(pcap(name))) as s:
        s.run_to_eof(pump)
        pump()
    assert want and got == want and not ring.dropped
    assert [answer_ips(e.record) for e in got if e.kind == "dns" and e.record] == \
        [answer_ips(e.record) for e in want if e.kind == "dns" and e.record]   # (not a field: packed DNS records' text)
    assert kept == [e for e in want if e.kind in ("arp", "tls")]
    assert ring.moved == len(want) and ring.used() == 0
    ring.close()
    peer.close()


@pytest.mark.parametrize("name", ["zeek__tls_ssl.v3.pcap", "chrissanders__arp_resolution.pcapng", "zeek__dhcp.pcap",
                                  "zeek__dns-two-responses.pcap", "chrissanders__http_ip4and6.pcapng",
                                  "chrissanders__dns_query_nonexistent.pcapng"])
def test_read_events_reads_nothing_a_slot_held_before(name):
    """hw_events_read copies each event only as far as it is read (the packed layout, in place): whatever the rest
    of a slot of the read buffer held, junk here, the events are the same, DNS queries folded in included."""
    def read(junk: bool) -> list:
        got = []
        TEMPLATES.clear()
        with Session(_config(pcap(name))) as s:
            dnsgate.set_fold(s, True, True)
            view = s._event_view

            def take():
                while True:
                    if junk:
                        view[:] = b"\xa5" * len(view)
                    batch = s.read_events(len(s._event_buf), repeats=True)
                    got.extend(batch)
                    if len(batch) < len(s._event_buf):
                        return
            s.run_to_eof(take)
        return got
    want = read(False)
    assert want and read(True) == want


def test_a_full_ring_drops_and_counts_by_kind(tmp_path):
    src = tmp_path / "dns.pcap"
    subprocess.run([sys.executable, str(ROOT / "bench" / "gendns.py"), str(src), "3000"], check=True)
    ring = SharedRing(200)                      # 200 struct hw_event's bytes
    assert ring.capacity == 200 * SIZE
    taken = 0
    with Session(_config(str(src))) as s:
        def pump():
            nonlocal taken
            taken += ring.fill(s, 1 << 20)[0]    # nobody reads: the ring fills, then every event is dropped
        s.run_to_eof(pump)
        taken += ring.fill(s, 1 << 20)[0]
    moved = ring.moved
    assert taken == 6000 and ring.used() == moved and ring.dropped == {"dns": 6000 - moved}
    assert 8 * 200 < moved < 6000                # packed: a DNS event (its name, records and text) takes an eighth
                                                 # of a struct hw_event
    peer = SharedRing(fd=os.dup(ring.fd))
    n, evs = peer.take(4096, frozenset({"dns"}))
    assert n == moved and [e.record.id for e in evs[:2]] == [0, 0] and evs[2].record.id == 7919
    assert peer.take(4096, frozenset({"dns"})) == (0, []) and ring.used() == 0
    ring.close()
    peer.close()


def test_a_full_ring_with_a_wait_drops_nothing(tmp_path):
    src = tmp_path / "dns.pcap"
    subprocess.run([sys.executable, str(ROOT / "bench" / "gendns.py"), str(src), "3000"], check=True)
    want = [e.record.id for e in _reference(str(src))]
    ring = SharedRing(200)
    peer = SharedRing(fd=os.dup(ring.fd))       # the worker's side, taken from only while the reader waits
    got, waits = [], []

    def wait():
        waits.append(ring.used())
        got.extend(e.record.id for e in peer.take(100, ALL)[1])
    with Session(_config(str(src))) as s:
        s.run_to_eof(lambda: ring.fill(s, 1 << 20, wait=wait))
        ring.fill(s, 1 << 20, wait=wait)
    got.extend(e.record.id for e in peer.take(1 << 20, ALL)[1])
    assert got == want and len(want) == 6000 and not ring.dropped and ring.moved == 6000
    assert len(waits) > 10 and min(waits) > 0   # waited only while it held events
    ring.close()
    peer.close()


def test_attach_refuses_what_is_not_a_ring(tmp_path):
    path = tmp_path / "junk"
    path.write_bytes(b"\0" * 100000)
    fd = os.open(path, os.O_RDWR)
    with pytest.raises(CaptureError, match="not a shared event ring"):
        SharedRing(fd=fd)


def _facts(ev) -> tuple:
    """What a reader gets of an event, folded query and repeat included (a template by its record: each session
    numbers its own)."""
    if isinstance(ev, DnsRepeat):
        return ("repeat", ev.ts_ns, ev.src, ev.dst, ev.sport, ev.dport, ev.src_mac, ev.dst_mac, ev.query_ts_ns, ev.id,
                ev.ttl, ev.template.record)
    return ("event", ev, ev.query)


def test_folded_queries_and_repeats_through_the_ring_equal_read_events(tmp_path):
    """The gate and the templates on (as the worker reads): each DNS record packed with its query and repeat
    fields after its records, read in place as read_events reads them."""
    src = tmp_path / "dns.pcap"
    subprocess.run([sys.executable, str(ROOT / "bench" / "gendns.py"), str(src), "7000"], check=True)
    want, got = [], []
    TEMPLATES.clear()   # process-wide: earlier tests' templates could fill it, and its clearing at 16,384 fall
    with Session(_config(str(src))) as s:   # inside one of the two reads (a repeat read in full there only)
        dnsgate.set_fold(s, True, True)
        s.run_to_eof(lambda: want.extend(s.read_events(repeats=True)))
        want.extend(s.read_events(repeats=True))
    ring = SharedRing(64)
    peer = SharedRing(fd=os.dup(ring.fd))
    with Session(_config(str(src))) as s:
        dnsgate.set_fold(s, True, True)

        def pump():
            while ring.fill(s, 16)[0]:
                got.extend(peer.take(64, ALL, repeats=True)[1])
        s.run_to_eof(pump)
        pump()
    assert not ring.dropped and sum(isinstance(e, DnsRepeat) for e in got) == 2000
    assert [_facts(e) for e in got] == [_facts(e) for e in want]
    ring.close()
    peer.close()


def _bare_both_ways(path: str, bare: int) -> tuple:
    """(the full read, then the events read with bare through the ring and by read_events), paired one to one."""
    want = _reference(path)
    ring, got, read = SharedRing(64), [], []
    with Session(_config(path)) as s:
        s.run_to_eof(lambda: (ring.fill(s, 64), got.extend(ring.take(64, ALL, bare=bare)[1])))
    ring.close()
    with Session(_config(path)) as s:
        s.run_to_eof(lambda: read.extend(s.read_events(bare=bare)))
    assert len(got) == len(read) == len(want)
    return want, list(zip(got, want)) + list(zip(read, want))


def test_bare_kinds_come_without_their_record_either_way():
    """Events of the kinds a reader leaves bare (the pipeline's http) are the full read's but for the record,
    which records.record_of parses from the payload as the C core did; other kinds keep theirs."""
    from hwdrivers.records import record_of
    want, pairs = _bare_both_ways(pcap("chrissanders__http_ip4and6.pcapng"), KIND_BITS["http"])
    assert any(w.kind == "http" for w in want) and all(w.record is not None for w in want if w.kind == "http")
    for e, w in pairs:
        if w.kind == "http":
            assert e.record is None and record_of(e) == w.record
            e = dataclasses.replace(e, record=w.record)
        assert e == w


def test_records_a_reader_leaves_bare_are_left_out_unless_kept_too():
    """The kinds whose records the worker never reads (take's bare: the pipeline's http, 3 kB a record) reach the
    ring without them from the next fill on; the events are the same but for the record, and the producer's own
    kinds (fill's keep) keep theirs."""
    path = pcap("chrissanders__http_ip4and6.pcapng")
    want = [dataclasses.replace(e, record=None) if e.kind == "http" else e for e in _reference(path)]
    offsets, tail = ffi.new("uint64_t[]", 64), ffi.new("uint64_t *")
    for keep in (frozenset(), frozenset({"http"})):
        ring = SharedRing(64)
        peer = SharedRing(fd=os.dup(ring.fd))
        peer.take(64, ALL, bare=KIND_BITS["http"])      # nothing queued yet: it tells the producer
        got, kept, rec_at = [], [], {}

        def pump():
            kept.extend(ring.fill(s, 64, keep)[1])
            for at in ffi.unpack(offsets, lib.hw_shring_peek(peer._mem, 64, offsets, tail)):
                rec_at.setdefault(KINDS[peer.map[at + ffi.sizeof("struct hw_shrec") + ffi.offsetof("struct hw_event",
                                  "kind")]], set()).add(SHREC_UNPACK(peer.map, at)[1] != 0)
            got.extend(peer.take(64, ALL, bare=KIND_BITS["http"])[1])
        with Session(_config(path)) as s:
            s.run_to_eof(pump)
            pump()
        assert got == want and rec_at["http"] == {bool(keep)} and rec_at["tcp_src"] == {True}
        assert [e.kind for e in kept] == ["http"] * len(kept) and all(e.record is not None for e in kept)
        assert len(kept) == (sum(e.kind == "http" for e in want) if keep else 0) and (kept or not keep)
        ring.close()
        peer.close()


def test_bare_payloads_are_left_out_only_where_a_record_is_read():
    """DNS events read with PAYLOAD_BITS["dns"] (the pipeline's: dns_hijack reads the record) are the full read's
    without their payload bytes, ring or read_events; those read without their record too keep them
    (records.record_of parses them), and other kinds are untouched."""
    from hwdrivers.events import PAYLOAD_BITS
    path = pcap("zeek__dns-two-responses.pcap")
    want, pairs = _bare_both_ways(path, PAYLOAD_BITS["dns"])
    dns = [w for w in want if w.kind == "dns"]
    assert dns and all(w.record is not None and w.payload for w in dns)
    for e, w in pairs:
        if w.kind == "dns":
            assert e.payload == b"" and e.record == w.record
            e = dataclasses.replace(e, payload=w.payload)
        assert e == w
    _, pairs = _bare_both_ways(path, PAYLOAD_BITS["dns"] | KIND_BITS["dns"])
    assert all(e.payload == w.payload and e.record is None for e, w in pairs if w.kind == "dns")
