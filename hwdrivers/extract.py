"""The packets behind an answer, out of the recordings (hwdrivers/src/extract.c):
a block index per recording, and the packets of a time window that pass a
BPF filter written as one pcapng to a descriptor.  Packets stay in C."""
import dataclasses
from typing import NamedTuple, Optional, Sequence

from hwdrivers._hw import ffi, lib
from hwdrivers.errors import check
from hwdrivers.record import check_key

NO_TIME = (1 << 64) - 1
SPAN = 256 << 10        # bytes of blocks a plain recording's index entry covers


class Mark(NamedTuple):
    """Bytes [offset, end) of a recording: whole blocks, or one encrypted chunk (its index `chunk`).
    A named tuple: a day of recordings has tens of thousands, made from their index at each query."""
    offset: int
    end: int
    chunk: int
    first_ns: int
    last_ns: int
    packets: int


@dataclasses.dataclass(frozen=True)
class FileIndex:
    first_ns: Optional[int]       # None: no packet
    last_ns: Optional[int]
    packets: int
    size: int                     # bytes indexed
    complete: bool
    marks: tuple


@dataclasses.dataclass(frozen=True)
class Source:
    path: str
    marks: Sequence[Mark]
    key: Optional[bytes] = None


@dataclasses.dataclass(frozen=True)
class ExtractStats:
    packets: int
    examined: int
    bytes_read: int
    bytes_out: int
    ranges: int
    files: int


def index_file(path: str, key: Optional[bytes] = None, span: int = SPAN) -> FileIndex:
    """Walk a recording once: its time span and its ranges (CaptureError when it cannot be read)."""
    check_key(key)
    ix = ffi.new("struct hw_pcap_index *")
    err = ffi.new("char[]", lib.HW_ERRBUF_SIZE)
    ckey = ffi.new("uint8_t[]", bytes(key)) if key is not None else ffi.NULL
    check(lib.hw_pcap_index_file(str(path).encode(), ckey, span, ix, err), err)
    try:
        marks = tuple(Mark(m.offset, m.end, m.chunk, m.first_ns, m.last_ns, m.packets)
                      for m in (ix.marks[i] for i in range(ix.n)))
    finally:
        lib.hw_pcap_index_free(ix)
    empty = ix.first_ns == NO_TIME
    return FileIndex(None if empty else ix.first_ns, None if empty else ix.last_ns, ix.packets, ix.size,
                     bool(ix.complete), marks)


def extract(sources: Sequence[Source], since_ns: int, until_ns: int, bpf: str, fd: int) -> ExtractStats:
    """Write the matching packets of the sources' ranges to fd as one pcapng (CaptureError
    FILTER for a bad filter, before anything is written)."""
    keep = []
    csrc = ffi.new("struct hw_pcap_source[]", max(1, len(sources)))
    for i, s in enumerate(sources):
        check_key(s.key)
        path = ffi.new("char[]", str(s.path).encode())
        marks = ffi.new("struct hw_pcap_mark[]", max(1, len(s.marks)))
        for j, m in enumerate(s.marks):
            c = marks[j]
            c.offset, c.end, c.chunk, c.first_ns, c.last_ns, c.packets = (m.offset, m.end, m.chunk, m.first_ns,
                                                                          m.last_ns, m.packets)
        keep += [path, marks]
        csrc[i].path, csrc[i].marks, csrc[i].n_marks = path, marks, len(s.marks)
        if s.key is not None:
            k = ffi.new("uint8_t[]", bytes(s.key))
            keep.append(k)
            csrc[i].key = k
    st = ffi.new("struct hw_pcap_extract_stats *")
    err = ffi.new("char[]", lib.HW_ERRBUF_SIZE)
    cbpf = ffi.new("char[]", (bpf or "").encode())
    check(lib.hw_pcap_extract(csrc, len(sources), max(0, since_ns), min(NO_TIME, until_ns), cbpf, fd, st, err), err)
    return ExtractStats(st.packets, st.examined, st.bytes_read, st.bytes_out, st.ranges, st.files)
