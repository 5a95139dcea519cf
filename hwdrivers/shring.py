"""The shared event ring: struct hw_event records in a memfd that the agent
and its consumer worker both map (cdef/shring.h, src/shring.c).

The agent's dispatcher moves events from a session's C ring into it in
batches (one copy, in C, GIL released); the worker process turns them into
PacketEvents where they lie.  The producer never waits: events that find the
ring full are dropped and counted by kind (`dropped`)."""
import collections
import mmap
import os
import struct

from hwdrivers import events as _events
from hwdrivers._hw import ffi, lib
from hwdrivers.errors import CaptureError, ErrorCode

SIZE = _events.SIZE
_KIND = _events._EVENT.offsets["kind"]
_DNS = _events.KINDS.index("dns")
_U64 = struct.Struct("=Q").unpack_from
_SCRATCH = 256          # events taken out of the C ring at once while this ring is full (then dropped)


class SharedRing:
    """records > 0: a new ring for about that many events (the producer's side);
    fd: the memfd of a ring another process made (the consumer's side)."""

    def __init__(self, records: int = 0, fd: int = -1):
        if fd < 0:
            n = 2
            while n < records:
                n <<= 1
            self.fd = os.memfd_create("capbox-events", os.MFD_CLOEXEC)
            size = lib.HW_SHRING_HEADER + n * SIZE
            os.ftruncate(self.fd, size)
        else:
            self.fd = fd
            size = os.fstat(fd).st_size
        self.map = mmap.mmap(self.fd, size)
        self.closed = False
        self._mem = ffi.from_buffer(self.map)
        n = (lib.hw_shring_init if fd < 0 else lib.hw_shring_attach)(self._mem, size, SIZE)
        if n < 0:
            self.close()
            raise CaptureError(ErrorCode.ARG, f"not a shared event ring of {SIZE}-byte events ({size} bytes)")
        self.capacity = n
        self._at = ffi.new("uint64_t *")
        self._scratch = ffi.new("struct hw_event[]", _SCRATCH)
        self._scratch_view = memoryview(ffi.buffer(self._scratch))   # indexing gives ints, as mmap
        self.moved = 0
        self.dropped: collections.Counter = collections.Counter()   # by kind: the ring was full
        self.unreadable = 0     # the consumer's: events that gave no PacketEvent (never seen from the C core)

    # ---- the producer (the agent's dispatcher thread) -----------------------

    def fill(self, session, limit: int = 4096, keep: frozenset = frozenset()) -> tuple:
        """Move up to limit events from session's C ring into this ring.  (events taken, the taken events
        of a kind in keep as PacketEvents: for consumers in this process too)."""
        taken, kept = 0, []
        while taken < limit:
            free = lib.hw_shring_reserve(self._mem, self._at)
            if free:
                at = self._at[0]
                n = session.events_into(self._mem + at, min(free, limit - taken))
                view = self.map
            else:
                at = 0
                n = session.events_into(self._scratch, min(_SCRATCH, limit - taken))
                view = self._scratch_view
            if n <= 0:
                break
            if keep or not free:
                for i in range(n):
                    k = view[at + i * SIZE + _KIND]
                    kind = _events.KINDS[k]
                    if not free:
                        self.dropped[kind] += 1
                        if k == _DNS and _U64(view, at + i * SIZE + _events.FOLD_AT)[0]:
                            self.dropped["dns_query"] += 1      # the query it carried is lost with it
                    if kind in keep:
                        kept.append(_events.from_buffer(view, at + i * SIZE))
            if free:
                lib.hw_shring_commit(self._mem, n)
                self.moved += n
            taken += n
        return taken, kept

    # ---- the consumer (the worker process) ------------------------------------

    def take(self, limit: int = 1024, kinds: frozenset = frozenset(), repeats: bool = False) -> tuple:
        """Up to limit queued events, freed from the ring: (how many, those of a kind in kinds as PacketEvents;
        with repeats, DNS answers that repeat a known template as DnsRepeats)."""
        n = min(lib.hw_shring_peek(self._mem, self._at), limit)
        at, view, out = self._at[0], self.map, []
        for i in range(n):
            try:
                if _events.KINDS[view[at + i * SIZE + _KIND]] in kinds:
                    out.append(_events.from_buffer(view, at + i * SIZE, repeats))
            except Exception:   # one that cannot be read: counted and skipped, never read again by a new worker
                self.unreadable += 1
        if n:
            lib.hw_shring_release(self._mem, n)
        return n, out

    def used(self) -> int:
        return 0 if self.closed else lib.hw_shring_used(self._mem)

    def close(self) -> None:
        self.closed = True
        ffi.release(self._mem)
        self.map.close()
        os.close(self.fd)
