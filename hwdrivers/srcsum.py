"""TCP source summaries (hwdrivers/src/srcsum.c): a source's SYNs and RSTs over a span, counted in C, so that
Python reads one record per source and span where it read every SYN (issue 17: scans and floods)."""
import dataclasses
import struct

from hwdrivers import records
from hwdrivers._hw import ffi
from hwdrivers.layout import Layout

_MACS = records._MACS    # raw -> text, kept (records.mac), read inline as events.from_buffer reads them


@dataclasses.dataclass(slots=True)
class SourcePair:
    src_mac: str
    dst_mac: str
    dst: str           # the latest destination SYNs with these Ethernet addresses went to


SOURCE_REASONS = ("new", "changed", "interval", "evicted", "end")


@dataclasses.dataclass(slots=True)
class TcpSourceRecord:
    """A TCP source over a span (hwdrivers/src/srcsum.c): what its SYNs and RSTs did."""
    first_ts: float
    last_ts: float
    syns: int          # SYNs sent (without ACK)
    rsts_sent: int
    rsts_received: int
    hosts: int         # distinct hosts its SYNs went to (estimate)
    ports: int         # distinct (host, port) pairs (estimate)
    reason: str        # why it was sent: SOURCE_REASONS
    pairs: tuple       # SourcePair: the Ethernet address pairs its SYNs showed in the span


_SRC = Layout("struct hw_rec_tcpsrc")
_SRC_UNPACK = _SRC.struct.unpack_from
_SRC_PAIRS = _SRC.offsets["pairs"]
_PAIR_UNPACK = struct.Struct("=6s6s16s").unpack_from
_PAIR_SIZE = ffi.sizeof("struct hw_src_pair")


def tcpsrc_from_buffer(buf, at: int, family: int) -> TcpSourceRecord:
    """The struct hw_rec_tcpsrc at byte offset `at` of a buffer (one unpack, and one per address pair; a source
    shows one pair in nearly every span: 39,921 of large.pcap's 39,925, read without a list's steps)."""
    first_ns, last_ns, syns, rsts_sent, rsts_received, hosts, ports, reason, n_pairs = _SRC_UNPACK(buf, at)
    known = records._TEXT6 if family == 6 else records._TEXT4
    if n_pairs == 1:            # (the tables read inline, as events.from_buffer reads them)
        smac, dmac, dst = _PAIR_UNPACK(buf, at + _SRC_PAIRS)
        pairs = (SourcePair(_MACS.get(smac) or records.mac(smac), _MACS.get(dmac) or records.mac(dmac),
                            known.get(dst) or (records.ipv6 if family == 6 else records.ipv4)(dst)),)
    else:
        text = records.ipv6 if family == 6 else records.ipv4
        pairs = tuple(SourcePair(records.mac(smac), records.mac(dmac), text(dst)) for smac, dmac, dst in
                      (_PAIR_UNPACK(buf, at + _SRC_PAIRS + i * _PAIR_SIZE) for i in range(n_pairs)))
    return TcpSourceRecord(first_ns / 1e9, last_ns / 1e9, syns, rsts_sent, rsts_received, hosts, ports,
                           SOURCE_REASONS[reason], pairs)
