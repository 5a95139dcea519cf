"""The agent's heap, kept to what it uses (glibc's malloc, through ctypes).

Dozens of threads (64 API workers, the capture, detectors, store) allocate
and free at packet rate; glibc gives busy threads arenas of their own and
returns little of the freed memory to the kernel: in a soak, mallinfo2
counted 72 MB free inside the arenas against 57 MB in use after 3 minutes,
and the free part kept growing.  Its mmap threshold is dynamic too: once a
large buffer is freed, buffers up to that size come from the heap instead
of their own mapping, and fragment it.  So: two arenas, a fixed 128 KiB
mmap threshold, and a trim every minute (with the store's read pool, RSS
after 3 minutes of the soak went from about 250 MB to 178 MB, and levels
off near 205 MB).  Elsewhere than glibc these are no-ops."""
import ctypes
import logging

log = logging.getLogger(__name__)
M_ARENA_MAX = -8          # mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
ARENAS = 2
MMAP_THRESHOLD = 128 << 10


def _libc():
    """The C library the process already has (dlopen(NULL)): ctypes.util.find_library runs ldconfig, a
    program started and paged in off the slot at every start of the agent (47 ms natively)."""
    try:
        libc = ctypes.CDLL(None)
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _libc()


def tune() -> None:
    """Call before threads start: later arenas are shared by all threads."""
    if _LIBC is None:
        return
    for param, value in ((M_ARENA_MAX, ARENAS), (M_MMAP_THRESHOLD, MMAP_THRESHOLD)):
        if not _LIBC.mallopt(param, value):
            log.warning("mallopt(%d, %d) refused", param, value)


def trim() -> None:
    """Give the free pages inside the heap back to the kernel."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
