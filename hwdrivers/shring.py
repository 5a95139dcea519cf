"""The shared event ring: packed event records in a memfd that the agent and
its consumer worker both map (cdef/shring.h, src/shring.c).

The agent's dispatcher moves events from a session's C ring into it in
batches (in C, one copy of the bytes each event uses, GIL released); the
worker process turns them into PacketEvents where they lie.  A record holds
only what its event uses, and no record its reader never reads (take's bare):
on large.pcap a DNS event is about 0.75 kB and an HTTP one 0.5 kB where a
struct hw_event is 6.7 kB.  The live producer never waits: events that find
the ring full are dropped and counted by kind (`dropped`); `capbox detect`'s
waits for room."""
import collections
import mmap
import os
import struct

from hwdrivers import events as _events
from hwdrivers._hw import ffi, lib
from hwdrivers.errors import CaptureError, ErrorCode

SIZE = _events.SIZE
_KIND = _events._EVENT.offsets["kind"]
_HEADER = ffi.sizeof("struct hw_shrec")
_DNS = _events.KINDS.index("dns")
_U64 = struct.Struct("=Q").unpack_from
_KINDS_MASK = (1 << _events.PAYLOAD_SHIFT) - 1   # of a reader's bare: its KIND_BITS
_SCRATCH = 256          # events taken out of the C ring at once while this ring is full (then dropped)
_BATCH = 1024           # records moved per C call


class SharedRing:
    """records > 0: a new ring of about that many struct hw_event's bytes (the producer's side; it holds more
    events than that, each packed); fd: the memfd of a ring another process made (the consumer's side)."""

    def __init__(self, records: int = 0, fd: int = -1):
        if fd < 0:
            self.fd = os.memfd_create("capbox-events", os.MFD_CLOEXEC)
            size = lib.HW_SHRING_HEADER + max(records, 2) * SIZE
            os.ftruncate(self.fd, size)
        else:
            self.fd = fd
            size = os.fstat(fd).st_size
        self.map = mmap.mmap(self.fd, size)
        self.closed = False
        self._mem = ffi.from_buffer(self.map)
        n = lib.hw_shring_init(self._mem, size) if fd < 0 else lib.hw_shring_attach(self._mem, size)
        if n < 0:
            self.close()
            raise CaptureError(ErrorCode.ARG, f"not a shared event ring of packed events ({size} bytes)")
        self.capacity = n       # bytes
        self._offsets = ffi.new("uint64_t[]", _BATCH)
        self._next = ffi.new("uint64_t *")
        self._full = ffi.new("int *")
        self._scratch = ffi.new("struct hw_event[]", _SCRATCH)
        self._scratch_view = memoryview(ffi.buffer(self._scratch))   # indexing gives ints, as mmap
        self._kept = self._unread = 0   # KIND_BITS last told the ring (hw_shring_kept, hw_shring_unread)
        self.moved = 0
        self.dropped: collections.Counter = collections.Counter()   # by kind: the ring was full
        self.unreadable = 0     # the consumer's: events that gave no PacketEvent (never seen from the C core)

    # ---- the producer (the agent's dispatcher thread) -----------------------

    def fill(self, session, limit: int = 4096, keep: frozenset = frozenset(), wait=None) -> tuple:
        """Move up to limit events from session's C ring into this ring.  (events taken, the taken events
        of a kind in keep as PacketEvents: for consumers in this process too).  wait: lossless (a capture
        file), wait() is called while the ring is full, until there is room; without, what finds it full
        is dropped."""
        taken, kept, view = 0, [], self.map
        bits = sum(_events.KIND_BITS[k] for k in keep)
        if bits != self._kept:          # their records are read here: none left out
            self._kept = bits
            lib.hw_shring_kept(self._mem, bits)
        while taken < limit:
            n = session.events_to_ring(self._mem, min(_BATCH, limit - taken), self._offsets, self._full)
            if keep and n:
                for at in ffi.unpack(self._offsets, n):
                    if _events.KINDS[view[at + _HEADER + _KIND]] in keep:
                        kept.append(_events.from_packed(view, at))
            self.moved += n
            taken += n
            if self._full[0] and taken < limit:
                if wait is not None:
                    wait()
                    continue
                n = self._drop(session, min(_SCRATCH, limit - taken), keep, kept)   # what the C ring holds now
                taken += n
            if not n:
                break
        return taken, kept

    def _drop(self, session, limit: int, keep: frozenset, kept: list) -> int:
        n = session.events_into(self._scratch, limit)
        view = self._scratch_view
        for i in range(n):
            at = i * SIZE
            kind = _events.KINDS[view[at + _KIND]]
            self.dropped[kind] += 1
            if kind == "dns" and _U64(view, at + _events.FOLD_AT)[0]:
                self.dropped["dns_query"] += 1      # the query it carried is lost with it
            if kind in keep:
                kept.append(_events.from_buffer(view, at))
        return n

    # ---- the consumer (the worker process) ------------------------------------

    def take(self, limit: int = 1024, kinds: frozenset = frozenset(), repeats: bool = False, bare: int = 0) -> tuple:
        """Up to limit queued events, freed from the ring: (how many, those of a kind in kinds as PacketEvents;
        with repeats, DNS answers that repeat a known template as DnsRepeats; bare: events.from_buffer's, its
        KIND_BITS told the producer: the records of those kinds are left out from its next fill on)."""
        if bare != self._unread:
            self._unread = bare
            lib.hw_shring_unread(self._mem, bare & _KINDS_MASK)
        if limit > len(self._offsets):
            self._offsets = ffi.new("uint64_t[]", limit)
        n = lib.hw_shring_peek(self._mem, limit, self._offsets, self._next)
        view, out, names, head = self.map, [], _events.KINDS, _HEADER + _KIND
        convert, shrec = _events.from_buffer, _events.SHREC_UNPACK
        for at in ffi.unpack(self._offsets, n):
            try:
                if names[view[at + head]] in kinds:      # (events.from_packed, without its call)
                    _len, rec, fold = shrec(view, at)
                    out.append(convert(view, at + _HEADER, repeats, rec, fold, bare, True))
            except Exception:   # one that cannot be read: counted and skipped, never read again by a new worker
                self.unreadable += 1
        if n:
            lib.hw_shring_release(self._mem, self._next[0], n)
        return n, out

    def used(self) -> int:
        return 0 if self.closed else lib.hw_shring_used(self._mem)

    def close(self) -> None:
        self.closed = True
        ffi.release(self._mem)
        self.map.close()
        os.close(self.fd)
