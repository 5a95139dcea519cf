"""Robustness of the C core under hostile input: random, built and mutated
packets through Session.inject, damaged capture files through Session and
`capbox analyze`.  Nothing may crash, nothing may be read past the captured
length, and the counters must add up.

Every injected packet sits at the very end of a readable page followed by an
inaccessible one, so a read one byte past the captured length faults (the
whole run stops there with a SIGSEGV traceback: that is the failure).
tests/c/fuzz_parse.c drives the same path under libFuzzer with ASan/UBSan
(`make fuzz`).
"""
import ctypes
import dataclasses
import json
import mmap
import random
import struct
import subprocess
import sys
from typing import Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent import cli
from hwdrivers import CaptureConfig, CaptureError, ErrorCode, RunResult, Session
from hwdrivers._hw import ffi
from hwdrivers.events import KINDS
from tests.conftest import ALL_PCAPS, ROOT, pcap

KNOWN_LINKTYPES = (0, 1, 12, 14, 101, 108, 113, 228, 229, 276)
UNKNOWN_LINKTYPES = (2, 9, 105, 147, 65535)
LINK_HEADER = {0: 4, 1: 14, 108: 4, 113: 16, 276: 20}  # bytes the link layer needs first
MAX_CAPLEN = 262144  # libpcap's MAXIMUM_SNAPLEN: a larger record is corrupt
FLOW_RING = 1024
KIND_FIELDS = ("malformed", "ip_packets", "arp_packets", "other_packets")


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---- packets end where readable memory ends ----------------------------------------

class GuardedBuffer:
    """Hands out views whose last byte is the last readable byte before a PROT_NONE page."""

    def __init__(self, size: int = 1 << 18):
        page = mmap.PAGESIZE
        self.size = -(-size // page) * page
        self._map = mmap.mmap(-1, self.size + page)
        self._arr = ffi.from_buffer("uint8_t[]", self._map)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        guard = int(ffi.cast("uintptr_t", self._arr)) + self.size
        if libc.mprotect(guard, page, 0) != 0:  # PROT_NONE
            raise OSError(ctypes.get_errno(), "mprotect")

    def place(self, data: bytes):
        start = self.size - len(data)
        self._map[start:self.size] = data
        return self._arr[start:self.size]  # a cdata view: Session.inject passes its pointer as is


GUARD = GuardedBuffer()


# ---- capture files, read with struct ---------------------------------------------

@dataclasses.dataclass(frozen=True)
class Frame:
    linktype: int
    data: bytes
    wirelen: int
    ts_ns: int


@dataclasses.dataclass
class Capture:
    """What a capture file holds: `blocks` are (end offset, Frame or None) in file
    order; a reader needs the first `open_end` bytes before it can open the file."""

    kind: str
    open_end: int
    blocks: list
    error: Optional[str] = None  # classic pcap: how a reader must stop (TRUNCATED, FORMAT)

    @property
    def frames(self) -> list:
        return [f for _, f in self.blocks if f]


PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1": ("<", 1000), b"\xa1\xb2\xc3\xd4": (">", 1000),
               b"\x4d\x3c\xb2\xa1": ("<", 1), b"\xa1\xb2\x3c\x4d": (">", 1)}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"


def read_pcap(raw: bytes) -> Capture:
    """Classic pcap, from the format: a record needs its 16-byte header and
    caplen bytes; a caplen over 262144 is corrupt."""
    endian, ts_unit = PCAP_MAGICS[raw[:4]]
    if len(raw) < 24:
        return Capture("pcap", 24, [], "TRUNCATED")
    linktype = struct.unpack_from(endian + "I", raw, 20)[0] & 0xffff
    off, blocks, error = 24, [], None
    while off < len(raw):
        if len(raw) - off < 16:
            error = "TRUNCATED"
            break
        sec, frac, caplen, wirelen = struct.unpack_from(endian + "IIII", raw, off)
        if caplen > MAX_CAPLEN:
            error = "FORMAT"
            break
        if len(raw) - off - 16 < caplen:
            error = "TRUNCATED"
            break
        data = raw[off + 16:off + 16 + caplen]
        off += 16 + caplen
        blocks.append((off, Frame(linktype, data, wirelen, sec * 10**9 + frac * ts_unit)))
    return Capture("pcap", 24, blocks, error)


def read_pcapng(raw: bytes) -> Capture:
    """pcapng blocks of a well-formed file (timestamps at the default microsecond)."""
    off, endian, links, blocks, open_end = 0, "<", [], [], None
    while off + 12 <= len(raw):
        if raw[off:off + 4] == PCAPNG_MAGIC:
            endian = "<" if raw[off + 8:off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            links = []
        btype, blen = struct.unpack_from(endian + "II", raw, off)
        if blen < 12 or off + blen > len(raw):
            break
        body = raw[off + 8:off + blen - 4]
        frame = None
        if btype == 1:
            links.append(struct.unpack_from(endian + "H", body)[0])
        elif btype == 6:
            ifid, hi, lo, caplen, wirelen = struct.unpack_from(endian + "IIIII", body)
            frame = Frame(links[ifid], body[20:20 + caplen], wirelen, (hi << 32 | lo) * 1000)
        elif btype == 2:
            ifid, _, hi, lo, caplen, wirelen = struct.unpack_from(endian + "HHIIII", body)
            frame = Frame(links[ifid], body[20:20 + caplen], wirelen, (hi << 32 | lo) * 1000)
        elif btype == 3:
            wirelen = struct.unpack_from(endian + "I", body)[0]
            frame = Frame(links[0], body[4:4 + wirelen], wirelen, 0)
        off += blen
        blocks.append((off, frame))
        if btype == 1 and open_end is None:
            open_end = off
    return Capture("pcapng", open_end or len(raw) + 1, blocks)


def read_capture(raw: bytes) -> Capture:
    return read_pcapng(raw) if raw[:4] == PCAPNG_MAGIC else read_pcap(raw)


def write_pcap(records, linktype: int = 1, magic: bytes = b"\xd4\xc3\xb2\xa1") -> bytes:
    """records: (data, wirelen or None, ts_s[, caplen as written])."""
    endian, _ = PCAP_MAGICS[magic]
    out = [magic + struct.pack(endian + "HHiIII", 2, 4, 0, 0, 65535, linktype)]
    for data, wirelen, ts_s, *caplen in records:
        cap = caplen[0] if caplen else len(data)
        out += [struct.pack(endian + "IIII", ts_s, 0, cap, len(data) if wirelen is None else wirelen), data]
    return b"".join(out)


def pcapng_block(btype: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)


def write_pcapng(packets, linktype: int = 1) -> bytes:
    """packets: (data, caplen as written or None)."""
    out = [pcapng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)),
           pcapng_block(1, struct.pack("<HHI", linktype, 0, 0))]
    for data, caplen in packets:
        cap = len(data) if caplen is None else caplen
        out.append(pcapng_block(6, struct.pack("<IIIII", 0, 0, 0, cap, len(data)) + data))
    return b"".join(out)


def read_with_session(path, budget: int = 0) -> tuple:
    """Run a session to the end of a file, `budget` packets per run() (0: no
    limit): (counters or None when the file did not open, CaptureError or None)."""
    try:
        s = Session(CaptureConfig(source=str(path)))
    except CaptureError as e:
        return None, e
    with s:
        while True:
            try:
                result = s.run(max_packets=budget)
            except CaptureError as e:
                return s.counters(), e
            if result == RunResult.EOF:
                return s.counters(), None


_PARSER = []


def analyze_in_process(capsys, path) -> tuple:
    """`capbox analyze PATH --json` in this process, as cli.main runs it but
    with the parser built once: (exit status, stdout, stderr lines)."""
    if not _PARSER:
        _PARSER.append(cli.build_parser())
    capsys.readouterr()
    args = cli.parse(["analyze", str(path), "--json"], _PARSER[0])
    rc = args.func(args)
    out, err = capsys.readouterr()
    return rc, out, err.splitlines()


# ---- counters ---------------------------------------------------------------------

def check_counters(c) -> None:
    """What holds for any session at any time."""
    assert c.packets == c.malformed + c.ip_packets + c.arp_packets + c.other_packets
    assert c.malformed == sum(c.malformed_by.values())
    assert c.truncated <= min(c.packets - c.malformed, sum(c.truncated_by.values()))
    assert c.captured_bytes <= c.bytes
    assert c.flows_created == c.flows_tcp + c.flows_udp + c.flows_icmp + c.flows_other
    assert sum(c.app_packets.values()) == c.ip_packets - c.packets_not_metered


class Feed:
    """A session fed one packet at a time, its counters checked after each, its
    flows drained as they expire; finish() flushes and checks the flow records."""

    def __init__(self, source: str, **config):
        self.session = Session(CaptureConfig(source=source, flow_ring=FLOW_RING, lossless=True,
                                             events=frozenset(KINDS), event_ring=1024, **config))
        self.counters = self.session.counters()
        self.first = self.last = None
        self.records = []
        self.summarised_syns = 0

    def inject(self, data: bytes, linktype: int, ts_ns: int = 1, wirelen: Optional[int] = None,
               check: bool = True) -> Optional[str]:
        """Feed one packet; returns what it counted as (a KIND_FIELDS name).
        check=False only feeds it (for bulk), the next checked call catches up."""
        self.first = ts_ns if self.first is None else min(self.first, ts_ns)
        self.last = ts_ns if self.last is None else max(self.last, ts_ns)
        if not check:
            self.session.inject(GUARD.place(data), linktype, ts_ns, wirelen)
            self.counters = None
            return None
        before = self.counters or self.session.counters()
        self.session.inject(GUARD.place(data), linktype, ts_ns, wirelen)
        c = self.counters = self.session.counters()
        wire = len(data) if wirelen is None else max(wirelen, len(data))
        assert c.packets == before.packets + 1
        assert c.bytes == before.bytes + wire
        assert c.captured_bytes == before.captured_bytes + len(data)
        check_counters(c)
        assert (c.first_ns, c.last_ns) == (self.first, self.last)
        for e in self.session.read_events():
            if e.kind == "tcp_src":          # a TCP source's span (hwdrivers/src/srcsum.c), not this packet alone
                self.summary(e)
                continue
            assert e.payload in data, "an event's snippet must be bytes of its packet"
            assert e.wirelen == wire
        if c.packets % 64 == 0:
            self.drain()
        moved = [k for k in KIND_FIELDS if getattr(c, k) != getattr(before, k)]
        assert len(moved) == 1 and getattr(c, moved[0]) == getattr(before, moved[0]) + 1
        return moved[0]

    def summary(self, e) -> None:
        r = e.record
        assert e.payload == b"" and r.first_ts <= r.last_ts and abs(e.ts_ns / 1e9 - r.last_ts) < 1e-6
        assert r.syns + r.rsts_sent + r.rsts_received > 0 and len(r.pairs) <= 4
        assert r.syns > 0 or r.reason in ("interval", "end")
        self.summarised_syns += r.syns

    def drain(self) -> None:
        self.records += self.session.read_flows()

    def finish(self):
        """Flush every flow: each IP packet is in exactly one flow record or not metered."""
        for _ in range(10000):
            left = self.session.flush()
            self.drain()
            for e in self.session.read_events():     # the last TCP source summaries
                if e.kind == "tcp_src":
                    self.summary(e)
            if not left:
                break
        c = self.counters = self.session.counters()
        check_counters(c)
        assert c.flows_active == 0 and c.flow_records_dropped == 0
        # every SYN the source table took is in exactly one summary (unless a full ring dropped one)
        assert self.summarised_syns == c.tcp_source_syns or c.events_dropped["tcp_src"]
        assert len(self.records) == c.flow_records
        assert c.flows_expired_idle + c.flows_expired_end + c.flows_evicted == c.flows_created
        ended = set()  # every flow reports: active-timeout records, then at most one last record
        for r in self.records:
            assert r.total_packets > 0 and r.id not in ended, r
            if r.end_reason != "active_timeout":
                ended.add(r.id)
        assert {r.id for r in self.records} == set(range(1, c.flows_created + 1))
        assert sum(r.total_packets for r in self.records) + c.packets_not_metered == c.ip_packets
        return c

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.session.close()


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> str:
    """Sessions need a source to open: a classic pcap with no packet."""
    path = tmp_path_factory.mktemp("fuzz") / "empty.pcap"
    path.write_bytes(write_pcap([]))
    return str(path)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("files")


# ---- 1. random and built packets, every link type ----------------------------------

TIMES = st.integers(1, 1 << 62)
WIRELENS = st.one_of(st.none(), st.integers(0, 70000), st.just(0xffffffff))


@pytest.mark.parametrize("linktype", KNOWN_LINKTYPES + UNKNOWN_LINKTYPES)
@fuzz(100)
@given(packets=st.lists(st.tuples(st.binary(max_size=300), WIRELENS, TIMES), min_size=1, max_size=8))
def test_random_bytes_never_crash_and_add_up(source, linktype, packets):
    with Feed(source) as feed:
        for data, wirelen, ts in packets:
            kind = feed.inject(data, linktype, ts, wirelen)
            c = feed.counters
            if not data:
                assert kind == "malformed" and c.malformed_by["empty_record"] > 0
            elif linktype in UNKNOWN_LINKTYPES:
                assert kind == "malformed" and c.malformed_by["linktype"] == c.malformed - c.malformed_by["empty_record"]
            elif len(data) < LINK_HEADER.get(linktype, 0):
                assert kind == "malformed" and c.malformed_by["link"] > 0
        feed.finish()


PAYLOADS = [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n", b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",
    b"\x15\x03\x03\x00\x02\x02\x28", b"\x80\x2e\x01\x03\x01\x00", b"INVITE sip:bob@example.com SIP/2.0\r\n",
    b"SIP/2.0 200 OK\r\n", b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01a\x00\x00\x01\x00\x01"]


class PacketBuilder:
    """Frames built layer by layer (link, VLAN/MPLS/PPPoE, IPv4/IPv6 with
    options and extension headers, ARP, TCP/UDP/ICMP/SCTP, payloads that look
    like DNS, HTTP, TLS, SIP) with every field sometimes right, sometimes
    anything: random enough to break lengths, shaped enough to reach deep.
    Seeded, so a failure names the seed that reproduces it."""

    def __init__(self, seed: int):
        self.r = random.Random(seed)

    def pick(self, *choices):
        return self.r.choice(choices)

    def maybe(self, right: int, width: int = 16) -> int:
        """The right value most of the time, else any of `width` bits."""
        return right if self.r.random() < 0.7 else self.r.getrandbits(width)

    def bytes(self, n: int) -> bytes:
        return self.r.randbytes(self.r.randint(0, n))

    def port(self) -> int:
        return self.pick(53, 80, 443, 5060, 67, 123, 0, 65535, self.r.getrandbits(16))

    def payload(self) -> bytes:
        return self.pick(*PAYLOADS) if self.r.random() < 0.4 else self.bytes(80)

    def transport(self, proto: int) -> bytes:
        payload = self.payload()
        if proto == 6:
            doff = self.pick(5, 5, 5, 6, 15, 4, 0)
            flags = self.pick(0x02, 0x12, 0x10, 0x18, 0x11, 0x04, 0x14, self.r.getrandbits(8))
            return struct.pack(">HHIIBBHHH", self.port(), self.port(), self.r.getrandbits(32), self.r.getrandbits(32),
                               doff << 4, flags, 1024, 0, 0) + bytes(max(0, doff - 5) * 4) + payload
        if proto == 17:
            return struct.pack(">HHHH", self.port(), self.port(), self.maybe(8 + len(payload)), 0) + payload
        if proto in (1, 58):
            kind = self.pick(0, 8, 13, 128, 129, 3, 11, self.r.getrandbits(8))
            return struct.pack(">BBHHH", kind, self.r.getrandbits(8), 0, self.port(), 1) + payload
        if proto == 132:
            return struct.pack(">HHII", self.port(), self.port(), 0, 0) + payload
        return payload

    def proto(self) -> int:
        return self.pick(6, 6, 17, 17, 1, 58, 132, 47, 59, 0, 255)

    def ipv4(self) -> bytes:
        proto = self.proto()
        body = self.transport(proto)
        ihl = self.pick(5, 5, 5, 6, 15, 4, 0)
        total = self.pick(ihl * 4 + len(body), ihl * 4 + len(body), 0, max(0, ihl * 4 - 1), self.r.getrandbits(16))
        frag = self.pick(0, 0, 0x4000, 0x2000, 0x2001, 0x0010, 0x1fff)
        return struct.pack(">BBHHHBBH4s4s", self.pick(4, 4, 4, 6, 0) << 4 | ihl, 0, total, self.r.randint(0, 3), frag,
                           64, proto, 0, bytes([10, 0, 0, self.r.randint(1, 3)]),
                           bytes([10, 0, 0, self.r.randint(1, 3)])) + bytes(max(0, ihl - 5) * 4) + body

    def ipv6(self) -> bytes:
        chain = [self.pick(0, 43, 44, 51, 60, 135) for _ in range(self.pick(0, 0, 1, 2, 3, 9, 10))]
        proto = self.proto()
        body = self.transport(proto)
        for i in reversed(range(len(chain))):
            nh = chain[i + 1] if i + 1 < len(chain) else proto
            n = self.r.randint(0, 3)
            if chain[i] == 44:
                ext = struct.pack(">BBHI", nh, 0, self.pick(0, 1, 8, 9, 0xfff8), self.r.randint(0, 3))
            else:
                ext = bytes([nh, n]) + bytes(((n + 2) * 4 if chain[i] == 51 else (n + 1) * 8) - 2)
            body = ext + body
        return struct.pack(">IHBB16s16s", self.pick(6, 6, 6, 4) << 28, self.pick(len(body), len(body), 0,
                           self.r.getrandbits(16)), chain[0] if chain else proto, 64,
                           bytes(15) + bytes([self.r.randint(1, 3)]), bytes(15) + bytes([self.r.randint(1, 3)])) + body

    def ip(self) -> bytes:
        return self.ipv4() if self.r.random() < 0.5 else self.ipv6()

    def arp(self) -> bytes:
        right = self.r.random() < 0.6
        return struct.pack(">HHBBH6s4s6s4s", 1 if right else self.r.randint(0, 3),
                           0x0800 if right else self.pick(0x0800, 0x86dd), 6 if right else self.r.randint(0, 8),
                           4 if right else self.r.randint(0, 8), self.r.randint(1, 2), b"\x02" * 6,
                           bytes([10, 0, 0, self.r.randint(1, 3)]), bytes(6), bytes([10, 0, 0, self.r.randint(1, 3)]))

    def ethertype_chain(self) -> tuple:
        """(ethertype, bytes) after up to five VLAN, MPLS and PPPoE layers."""
        ethertype, body = self.pick(
            lambda: (0x0800, self.ipv4()), lambda: (0x86dd, self.ipv6()), lambda: (0x0806, self.arp()),
            lambda: (self.pick(0x88cc, 0x8863, 0x0842, 0x0004, self.r.getrandbits(16)), self.bytes(60)))()
        for _ in range(self.pick(0, 0, 1, 2, 5)):
            tag = self.pick("vlan", "qinq", "qinq_old", "mpls", "mpls_pw", "pppoe")
            if tag.startswith("vlan") or tag.startswith("qinq"):
                body = struct.pack(">HH", self.r.getrandbits(16), ethertype) + body
                ethertype = {"vlan": 0x8100, "qinq": 0x88a8, "qinq_old": 0x9100}[tag]
            elif tag == "mpls" and ethertype in (0x0800, 0x86dd) or tag == "mpls_pw":
                if tag == "mpls_pw":  # control word and an Ethernet header before the payload
                    body = bytes(4) + b"\x02" * 12 + struct.pack(">H", ethertype) + body
                labels = self.pick(1, 1, 2, 3, 17)
                body = b"".join(struct.pack(">I", (16 + i) << 12 | (i == labels - 1) << 8 | 64)
                                for i in range(labels)) + body
                ethertype = 0x8847
            elif tag == "pppoe" and ethertype in (0x0800, 0x86dd):
                body = struct.pack(">BBHHH", 0x11, 0, 1, len(body) + 2, 0x21 if ethertype == 0x0800 else 0x57) + body
                ethertype = 0x8864
        return ethertype, body

    def frame(self, linktype: int) -> bytes:
        if linktype in (1, 113, 276):
            ethertype, body = self.ethertype_chain()
            if linktype == 1:
                return b"\x02" * 6 + b"\x04" * 6 + struct.pack(">H", ethertype) + body
            if linktype == 113:
                return struct.pack(">HHH8sH", 0, 1, self.pick(6, 0, 8), b"\x04" * 8, ethertype) + body
            return struct.pack(">HHIHBB8s", ethertype, 0, 1, 1, 0, self.pick(6, 0, 8), b"\x04" * 8) + body
        if linktype in (0, 108):
            family = self.pick(2, 10, 24, 28, 30, self.r.getrandbits(32))
            order = ">" if linktype == 108 or self.r.random() < 0.5 else "<"
            return struct.pack(order + "I", family) + self.ip()
        if linktype == 228:
            return self.ipv4()
        if linktype == 229:
            return self.ipv6()
        if linktype in (12, 14, 101):
            return self.ip()
        return self.bytes(100)

    def captured(self, linktype: int) -> tuple:
        """(bytes captured, wire length or None): whole, or cut as a snap length cuts."""
        data = self.frame(linktype)
        how = self.pick("whole", "whole", "snap", "cut")
        if how == "whole":
            return data, None
        cut = self.r.randint(0, len(data))
        return data[:cut], (len(data) if how == "snap" else None)


@pytest.mark.parametrize("linktype", KNOWN_LINKTYPES + (147,))
def test_built_packets_never_crash_and_add_up(source, linktype):
    for seed in range(linktype * 1000, linktype * 1000 + 100):
        build, ts, pkt = PacketBuilder(seed), 1, b""
        with Feed(source, max_flows=16) as feed:  # a small table: eviction runs too
            try:
                for _ in range(50):
                    pkt, wirelen = build.captured(linktype)
                    ts = ts + build.r.randint(0, 10**9) if build.r.random() < 0.9 else build.r.getrandbits(62)
                    feed.inject(pkt, linktype, ts, wirelen)
                feed.finish()
            except AssertionError as e:
                raise AssertionError(f"PacketBuilder({seed}), last packet {pkt.hex()}: {e}") from e


# ---- 2. real packets, mutated ------------------------------------------------------

def _ethernet_payload(frame_: Frame) -> Optional[tuple]:
    """(ethertype, IP packet) of an untagged Ethernet frame carrying IP."""
    d = frame_.data
    if frame_.linktype != 1 or len(d) < 15:
        return None
    ethertype = struct.unpack_from(">H", d, 12)[0]
    return (ethertype, d[14:]) if ethertype in (0x0800, 0x86dd) else None


def reframe(frame_: Frame, linktype: int) -> Optional[bytes]:
    """The same packet under another link header (None when that link cannot carry it)."""
    if linktype == frame_.linktype:
        return frame_.data
    if frame_.linktype != 1 or len(frame_.data) < 14:
        return None
    ethertype, src, body = struct.unpack_from(">H", frame_.data, 12)[0], frame_.data[6:12], frame_.data[14:]
    if linktype == 113:
        return struct.pack(">HHH8sH", 0, 1, 6, src + bytes(2), ethertype) + body
    if linktype == 276:
        return struct.pack(">HHIHBB8s", ethertype, 0, 1, 1, 0, 6, src + bytes(2)) + body
    ip = _ethernet_payload(frame_)
    if ip is None:
        return None
    v6 = ip[0] == 0x86dd
    if linktype == 0:
        return struct.pack("<I", 10 if v6 else 2) + ip[1]
    if linktype == 108:
        return struct.pack(">I", 30 if v6 else 2) + ip[1]
    if linktype in (12, 14, 101) or linktype == (229 if v6 else 228):
        return ip[1]
    return None


_FRAMES = {}


def real_frames(per_file: int = 16) -> list:
    """Frames spread evenly over every shared capture that reads (at most per_file each)."""
    if per_file not in _FRAMES:
        frames = []
        for path in ALL_PCAPS:
            found = read_capture(path.read_bytes()).frames
            frames += found[::max(1, len(found) // per_file)][:per_file]
        _FRAMES[per_file] = frames
    if not _FRAMES[per_file]:
        pytest.skip("no shared captures here")
    return _FRAMES[per_file]


def test_real_frames_read_alike_on_every_link(source):
    """A frame is classified the same whatever link carries it: IP packets under
    every link header, anything Ethernet carries under SLL and SLL2 too."""
    with Feed(source) as feed:
        for f in real_frames():
            kinds = {}
            for linktype in KNOWN_LINKTYPES:
                pkt = reframe(f, linktype)
                if pkt is not None:
                    wirelen = max(0, f.wirelen - len(f.data) + len(pkt))
                    kinds[linktype] = feed.inject(pkt, linktype, f.ts_ns or 1, wirelen)
            assert len(set(kinds.values())) == 1, kinds
            if _ethernet_payload(f):
                assert len(kinds) == 9
        feed.finish()


@pytest.mark.parametrize("config", [{}, {"max_flows": 16, "idle_timeout_s": 1, "active_timeout_s": 2}],
                         ids=["default", "small-table"])
def test_real_frames_cut_at_every_length(source, config):
    """Each frame cut at every length up to 160 bytes (and its last two), as a
    snap length cuts (wire length kept) and as a short frame (wire = captured)."""
    with Feed(source, **config) as feed:
        ts = 1
        for f in real_frames(per_file=5):
            n = len(f.data)
            for cut in sorted(set(range(min(n, 160) + 1)) | {max(0, n - 1), n}):
                for wirelen in (f.wirelen, None):
                    ts += 50_000_000
                    feed.inject(f.data[:cut], f.linktype, ts, wirelen)
        feed.finish()


def test_real_frames_every_header_bit_flipped(source):
    """One frame of each capture, each bit of its first 64 bytes flipped in turn."""
    with Feed(source, max_flows=16) as feed:
        ts = 1
        for f in real_frames(per_file=1):
            for pos in range(min(len(f.data), 64)):
                for bit in range(8):
                    mutated = bytearray(f.data)
                    mutated[pos] ^= 1 << bit
                    ts += 10_000_000
                    feed.inject(bytes(mutated), f.linktype, ts, f.wirelen)
        feed.finish()


def test_many_flows_expired_and_flushed_in_rounds(source):
    """More flows than the first slot array holds (it grows) and than a lossless
    flow ring takes at once: the idle sweep and flush() hand them over in
    rounds, and still every packet is in exactly one record."""
    n = 40000
    packets = [struct.pack(">BBHHHBBH4s4sHHHH", 0x45, 0, 28, 0, 0, 64, 17, 0, bytes([10, 0, i >> 8, i & 255]),
                           bytes([10, 1, 0, 1]), 1024, 53, 8, 0) for i in range(n)]
    with Feed(source) as feed:
        for i, ip in enumerate(packets):
            feed.inject(ip, 12, 10**9 + i, check=i >= n - 100)
            if i % 256 == 0:
                feed.drain()
        assert feed.counters.flows_active == n
        for k in range(1, 200):  # 400 s later every flow is idle: the sweep expires them a ring's room at a time
            feed.inject(packets[0], 12, 400 * 10**9 + k)
            feed.drain()
        assert feed.counters.flows_expired_idle >= 3 * FLOW_RING  # expired in rounds, none dropped
        for ip in packets[1:]:
            feed.inject(ip, 12, 410 * 10**9, check=False)
        assert feed.session.flush() > 0  # more than one round
        feed.drain()
        assert feed.finish().flows_created == 2 * n


MUTATIONS = st.lists(st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 16), st.integers(0, 7)),
    st.tuples(st.just("set"), st.integers(0, 1 << 16), st.sampled_from([0, 1, 0x40, 0x45, 0x60, 0x80, 0xff])),
    st.tuples(st.just("random"), st.integers(0, 1 << 16), st.integers(0, 255)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 16), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 16), st.integers(1, 16)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 16)),
    st.tuples(st.just("extend"), st.binary(min_size=1, max_size=2000)),
), min_size=1, max_size=6)


def mutate(data: bytes, mutations) -> bytes:
    b = bytearray(data)
    for m in mutations:
        pos = m[1] % (len(b) + 1) if isinstance(m[1], int) else 0
        if m[0] == "flip" and b:
            b[pos % len(b)] ^= 1 << m[2]
        elif m[0] in ("set", "random") and b:
            b[pos % len(b)] = m[2]
        elif m[0] == "insert":
            b[pos:pos] = m[2]
        elif m[0] == "delete":
            del b[pos:pos + m[2]]
        elif m[0] == "truncate":
            del b[pos:]
        elif m[0] == "extend":
            b += m[1]
    return bytes(b)


@fuzz(300)
@given(data=st.data())
def test_real_frames_mutated(source, data):
    frames = real_frames()
    with Feed(source, max_flows=16, idle_timeout_s=1, active_timeout_s=2) as feed:
        ts = 1
        for _ in range(data.draw(st.integers(1, 8))):
            f = frames[data.draw(st.integers(0, len(frames) - 1))]
            linktype = data.draw(st.sampled_from(KNOWN_LINKTYPES))
            pkt = reframe(f, linktype)
            if pkt is None:
                linktype, pkt = f.linktype, f.data
            pkt = mutate(pkt, data.draw(MUTATIONS))
            wirelen = data.draw(st.one_of(st.none(), st.just(f.wirelen), st.integers(0, 70000)))
            ts += data.draw(st.integers(0, 3 * 10**9))
            feed.inject(pkt, linktype, ts, wirelen)
        feed.finish()


# ---- 3. damaged files -------------------------------------------------------------

def check_cut(capsys, path, raw: bytes, whole: Capture, cut: int, with_cli: bool = True) -> None:
    """A copy of `raw` cut after `cut` bytes, through Session and the CLI."""
    path.write_bytes(raw[:cut])
    c, err = read_with_session(path, budget=cut % 4)  # batches of 1, 2, 3 and as many as fit
    complete = [f for end, f in whole.blocks if f and end <= cut]
    at_boundary = cut == whole.open_end or any(end == cut for end, _ in whole.blocks) or cut == len(raw)
    if cut < 4:
        assert c is None and err.code == ErrorCode.FORMAT
    elif cut < whole.open_end:
        assert c is None and err.code in (ErrorCode.FORMAT, ErrorCode.TRUNCATED), (cut, err.code, err.message)
    else:
        assert c is not None, (cut, err.message)
        assert c.packets == len(complete), (cut, c.packets, len(complete))
        assert c.bytes == sum(max(f.wirelen, len(f.data)) for f in complete)
        assert c.captured_bytes == sum(len(f.data) for f in complete)
        check_counters(c)
        if at_boundary:
            assert err is None, (cut, err.message)
        elif whole.kind == "pcap":
            assert err is not None and err.code == ErrorCode.TRUNCATED, (cut, err)
        else:
            assert err is not None and err.code in (ErrorCode.TRUNCATED, ErrorCode.FORMAT), (cut, err)

    if not with_cli:
        return
    rc, out, err_lines = analyze_in_process(capsys, path)
    assert rc == (1 if err else 0)
    if err:
        assert len(err_lines) == 1 and err_lines[0].startswith("capbox: error: "), err_lines
    else:
        assert err_lines == []
    if c is not None and (c.packets or not err):
        report = json.loads(out)
        assert report["packets"] == c.packets and report["bytes"] == c.bytes
        assert (report["error"] or {}).get("code") == (err.code.name if err else None)
    else:
        assert out == ""


def _cuts(raw: bytes, whole: Capture) -> list:
    """A sample of offsets: around the header, the first, last and a few other
    record boundaries, and anywhere."""
    rng = random.Random(len(raw))
    ends = [end for end, _ in whole.blocks]
    ends = [0, 4, 24, whole.open_end] + ends[:3] + ends[-2:] + rng.sample(ends, min(10, len(ends)))
    near = {e + d for e in ends for d in (-17, -16, -1, 0, 1, 15, 16, 17)}
    return sorted(x for x in near | {rng.randrange(len(raw)) for _ in range(40)} if 0 <= x <= len(raw))


@pytest.mark.parametrize("name, every", [
    ("zeek__q-in-q.pcap", True),
    ("zeek__dns-two-responses.pcap", True),
    ("chrissanders__arp_resolution.pcapng", True),
    ("ndpi__tcp_scan.pcapng", False),  # a classic pcap despite its name
    ("chrissanders__http_ip4and6.pcapng", False),
    ("zeek__wikipedia.pcap", False),
    ("ndpi__1kxun.pcap", False),
])
def test_truncated_copies(capsys, tmp_path, name, every):
    """Cut at every offset of a tiny file (the CLI on every 8th and around
    boundaries), at a sample of offsets of bigger ones (the CLI on all)."""
    raw = open(pcap(name), "rb").read()
    whole = read_capture(raw)
    assert whole.frames and whole.error is None
    path = tmp_path / name
    shb_end = whole.blocks[0][0] if whole.kind == "pcapng" else None
    sample = set(_cuts(raw, whole))
    for cut in range(len(raw) + 1) if every else sorted(sample):
        if cut == shb_end:
            continue  # a section header alone: test_damaged_pcapng_header_is_a_format_error
        check_cut(capsys, path, raw, whole, cut, with_cli=cut in sample or cut % 8 == 0)


def _run_cli(path, stdin=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "agent", "analyze", "-" if stdin else str(path), "--json"],
                            cwd=ROOT, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_cli_on_damaged_files(tmp_path):
    """The real command, in its own process: exit 1, one line on stderr, no
    traceback, and the report of what was read before the damage."""
    q_in_q = open(pcap("zeek__q-in-q.pcap"), "rb").read()  # records end at 108, 192, 534, 876, 960
    ng = open(pcap("chrissanders__arp_resolution.pcapng"), "rb").read()  # packets end at 136, 216
    cases = {  # name: (bytes, packets reported, error code)
        "cut-in-third-record.pcap": (q_in_q[:400], 2, "TRUNCATED"),
        "cut-in-first-header.pcap": (q_in_q[:30], 0, "TRUNCATED"),
        "cut-in-file-header.pcap": (q_in_q[:10], 0, "TRUNCATED"),
        "cut-in-second-block.pcapng": (ng[:150], 1, "TRUNCATED"),
        "empty.pcap": (b"", 0, "FORMAT"),
        "garbage.pcap": (bytes(random.Random(7).randrange(256) for _ in range(5000)), 0, "FORMAT"),
        "huge-caplen.pcap": (write_pcap([(q_in_q[40:108], None, 1), (bytes(MAX_CAPLEN + 1), None, 2)]), 1, "FORMAT"),
        "stdin:cut-in-third-record.pcap": (q_in_q[:400], 2, "TRUNCATED"),  # libpcap reads pipes
    }
    procs = {}
    for name, (raw, _, _) in cases.items():
        path = tmp_path / name
        path.write_bytes(raw)
        if name.startswith("stdin:"):
            with open(path) as stdin:
                procs[name] = _run_cli(path, stdin=stdin)
        else:
            procs[name] = _run_cli(path)
    for name, (_, packets, code) in cases.items():
        out, err = procs[name].communicate(timeout=60)
        assert procs[name].returncode == 1, (name, out, err)
        assert "Traceback" not in err and len(err.splitlines()) == 1, (name, err)
        assert err.startswith("capbox: error: ")
        if packets:
            report = json.loads(out)
            assert report["packets"] == packets and report["error"]["code"] == code, (name, report)
        else:
            assert out == "", name


def _check_garbage(path, raw: bytes, budget: int = 0) -> None:
    c, err = read_with_session(path, budget)
    if raw[:4] in PCAP_MAGICS:
        expected = read_pcap(raw)
        if len(raw) < 24:
            assert c is None and err.code == ErrorCode.TRUNCATED
            return
        frames = expected.frames
        assert c is not None and c.packets == len(frames)
        assert c.bytes == sum(max(f.wirelen, len(f.data)) for f in frames)
        assert c.captured_bytes == sum(len(f.data) for f in frames)
        assert (err.code.name if err else None) == expected.error
        if frames and all(f.ts_ns for f in frames):  # see test_packet_at_the_epoch_starts_the_capture
            assert (c.first_ns, c.last_ns) == (min(f.ts_ns for f in frames), max(f.ts_ns for f in frames))
        check_counters(c)
    elif raw[:4] == PCAPNG_MAGIC:
        if c is not None:
            check_counters(c)
            assert c.packets <= len(raw) // 16
        if err is not None:
            assert err.code in (ErrorCode.FORMAT, ErrorCode.TRUNCATED, ErrorCode.OPEN), err.message
    else:
        assert c is None and err.code in (ErrorCode.FORMAT, ErrorCode.OPEN), err.message


@st.composite
def pcap_like(draw) -> bytes:
    """A classic pcap header (any byte order and precision, any link type) and
    records whose lengths are sometimes right, sometimes not, then garbage."""
    magic = draw(st.sampled_from(sorted(PCAP_MAGICS)))
    endian, _ = PCAP_MAGICS[magic]
    linktype = draw(st.one_of(st.sampled_from(KNOWN_LINKTYPES), st.integers(0, 2**32 - 1)))
    out = magic + struct.pack(endian + "HHiIII", 2, 4, 0, 0, draw(st.integers(0, 2**32 - 1)), linktype)
    for data in draw(st.lists(st.binary(max_size=200), max_size=6)):
        caplen = draw(st.one_of(st.just(len(data)), st.just(len(data)), st.integers(0, 2**32 - 1),
                                st.sampled_from([MAX_CAPLEN, MAX_CAPLEN + 1])))
        wirelen = draw(st.one_of(st.just(len(data)), st.integers(0, 2**32 - 1)))
        out += struct.pack(endian + "IIII", draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1)),
                           caplen, wirelen) + data
    return out + draw(st.binary(max_size=40))


@st.composite
def pcapng_like(draw) -> bytes:
    """A pcapng file built right, then damaged by a few mutations."""
    packets = draw(st.lists(st.tuples(st.binary(max_size=200), st.none()), max_size=5))
    raw = write_pcapng(packets, linktype=draw(st.sampled_from(KNOWN_LINKTYPES)))
    return mutate(raw, draw(MUTATIONS))


BUDGETS = st.sampled_from([0, 0, 1, 2, 3, 255, 256, 257])


@fuzz(300)
@given(raw=st.one_of(st.binary(max_size=3000), pcap_like(), pcapng_like()), budget=BUDGETS)
def test_garbage_files(scratch, raw, budget):
    path = scratch / "garbage"
    path.write_bytes(raw)
    _check_garbage(path, raw, budget)


@fuzz(200)
@given(data=st.data())
def test_real_files_mutated(scratch, data):
    """Header and record fields of small real captures, damaged."""
    small = [p for p in ALL_PCAPS if p.stat().st_size <= 8000]
    if not small:
        pytest.skip("no shared captures here")
    raw = data.draw(st.sampled_from(small)).read_bytes()
    mutations = data.draw(st.lists(st.one_of(
        st.tuples(st.just("flip"), st.integers(0, 600), st.integers(0, 7)),
        st.tuples(st.just("set"), st.integers(0, 600), st.sampled_from([0, 0xff, 0x7f, 0x80])),
        st.tuples(st.just("truncate"), st.integers(0, 8000))), min_size=1, max_size=4))
    raw = mutate(raw, mutations)
    path = scratch / "mutated"
    path.write_bytes(raw)
    _check_garbage(path, raw, data.draw(BUDGETS))


def test_truncated_copy_across_the_mapping_window(tmp_path):
    """Classic pcap is read through a 64 MiB window that slides: cut a file
    just over it around the window's end and the record that straddles it."""
    window = 64 << 20
    record = bytes(range(256)) * 256  # 65536 bytes
    raw = write_pcap([(record, None, 1 + i) for i in range(window // (16 + len(record)) + 3)])
    whole = read_pcap(raw)
    ends = [end for end, _ in whole.blocks]
    straddler = next(i for i, end in enumerate(ends) if end > window)
    start = ends[straddler - 1]
    path = tmp_path / "big.pcap"
    path.write_bytes(raw)
    with open(path, "r+b") as f:  # cut shorter and shorter, so the file is written once
        for cut in sorted({len(raw), len(raw) - 1, ends[straddler] + 1, ends[straddler], ends[straddler] - 1,
                           window + 1, window, window - 1, start + 16, start + 8, start}, reverse=True):
            f.truncate(cut)
            f.flush()
            expected = read_pcap(raw[:cut])
            for budget in (0, 1, 7):
                c, err = read_with_session(path, budget)
                assert c.packets == len(expected.blocks), (cut, budget)
                assert c.captured_bytes == sum(len(fr.data) for fr in expected.frames), (cut, budget)
                assert (err.code.name if err else None) == expected.error, (cut, budget)


def test_empty_and_tiny_files(tmp_path, capsys):
    for n in range(4):
        path = tmp_path / f"tiny{n}"
        path.write_bytes(b"\xd4\xc3\xb2\xa1"[:n])
        c, err = read_with_session(path)
        assert c is None and err.code == ErrorCode.FORMAT
        rc, out, err_lines = analyze_in_process(capsys, path)
        assert rc == 1 and out == "" and len(err_lines) == 1


def test_caplen_over_262144_is_a_format_error(tmp_path):
    good = bytes(60)
    cases = {
        "present.pcap": write_pcap([(good, None, 1), (bytes(MAX_CAPLEN + 1), None, 2)]),
        "absent.pcap": write_pcap([(good, None, 1), (good, None, 2, MAX_CAPLEN + 1)]),
        "huge.pcap": write_pcap([(good, None, 1), (good, None, 2, 0xffffffff)]),
        "swapped.pcap": write_pcap([(good, None, 1), (good, None, 2, MAX_CAPLEN + 1)], magic=b"\xa1\xb2\x3c\x4d"),
        "epb.pcapng": write_pcapng([(good, None), (bytes(MAX_CAPLEN + 1), None)]),
        "epb-claims.pcapng": write_pcapng([(good, None), (good, MAX_CAPLEN + 1)]),
    }
    for name, raw in cases.items():
        path = tmp_path / name
        path.write_bytes(raw)
        c, err = read_with_session(path)
        assert c is not None and c.packets == 1, name
        assert err is not None and err.code == ErrorCode.FORMAT, (name, err)
    path = tmp_path / "limit.pcap"  # exactly the limit is a record like any other
    path.write_bytes(write_pcap([(good, None, 1), (bytes(MAX_CAPLEN), None, 2)]))
    c, err = read_with_session(path)
    assert err is None and c.packets == 2 and c.captured_bytes == 60 + MAX_CAPLEN


def test_ndpi_fuzz_file_fails_gracefully(capsys):
    """MANIFEST v22: one record claiming 524,501 bytes (> 262144), cut short: a
    corrupt record, nothing read, one line of error."""
    path = pcap("ndpi__fuzz-2021-10-13.pcap")
    c, err = read_with_session(path)
    assert c is not None and c.packets == 0
    assert err.code == ErrorCode.FORMAT and "524501" in err.message
    rc, out, err_lines = analyze_in_process(capsys, path)
    assert rc == 1 and out == "" and len(err_lines) == 1


def test_ndpi_badpackets_metered_and_flagged(source):
    """MANIFEST v23: 93 DNS responses, each a first fragment whose IPv4 total
    length exceeds the bytes present, 7 of them snaplen-cut: all read, none
    malformed (the keys are intact), all truncated, every one metered."""
    path = pcap("ndpi__badpackets.pcap")
    c, err = read_with_session(path)
    assert err is None and c.packets == 93 and c.malformed == 0
    assert c.ip_packets == 93 and c.layer_packets["fragment"] == 93 and c.frag_orphans == 0
    assert c.truncated == 93 and c.truncated_by["ip_length"] == 93 and c.truncated_by["snaplen"] == 7
    assert c.flows_udp == 93
    frames = read_capture(open(path, "rb").read()).frames
    with Feed(source) as feed:
        for f in frames:
            assert feed.inject(f.data, f.linktype, f.ts_ns, f.wirelen) == "ip_packets"
        assert feed.finish().truncated == 93


# ---- bugs found: reproducers --------------------------------------------------------

def test_packet_at_the_epoch_starts_the_capture(tmp_path):
    path = tmp_path / "epoch.pcap"
    path.write_bytes(write_pcap([(bytes(60), None, 0), (bytes(60), None, 5)]))
    c, err = read_with_session(path)
    assert err is None and c.packets == 2
    assert (c.first_ns, c.last_ns) == (0, 5 * 10**9)  # capinfos: duration 5 s


def test_packet_at_the_epoch_starts_its_flow(source):
    udp = struct.pack(">BBHHHBBH4s4sHHHH", 0x45, 0, 28, 0, 0, 64, 17, 0, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]),
                      1024, 53, 8, 0)
    with Session(CaptureConfig(source=source, flow_ring=FLOW_RING)) as s:
        s.inject(udp, 12, ts_ns=0)
        s.inject(udp, 12, ts_ns=5 * 10**9)
        s.flush()
        (flow,) = s.read_flows()
    assert flow.total_packets == 2
    assert (flow.first_ns, flow.last_ns) == (0, 5 * 10**9)


PCAPNG_HEADER_DAMAGE = {
    # libpcap reads the section header and first interface block at open; these
    # messages are not among those open_pcap() maps to FORMAT, so they come out
    # as OPEN ("could not be opened"), while the same damage one block later is FORMAT
    "no-interface-block": lambda ng: ng[:28],
    "interface-block-trailer-mismatch": lambda ng: ng[:56] + struct.pack("<I", 36) + ng[60:],
    "version-2": lambda ng: ng[:12] + struct.pack("<H", 2) + ng[14:],
}


@pytest.mark.parametrize("damage", sorted(PCAPNG_HEADER_DAMAGE))
def test_damaged_pcapng_header_is_a_format_error(tmp_path, damage):
    ng = open(pcap("chrissanders__arp_resolution.pcapng"), "rb").read()
    path = tmp_path / "damaged.pcapng"
    path.write_bytes(PCAPNG_HEADER_DAMAGE[damage](ng))
    c, err = read_with_session(path)
    assert err is None or err.code in (ErrorCode.FORMAT, ErrorCode.TRUNCATED), err.message
