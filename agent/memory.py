"""The agent's heap, kept to what it uses (glibc's malloc, through ctypes).

Dozens of threads (64 API workers, the capture, detectors, store) allocate
and free at packet rate; glibc gives busy threads arenas of their own and
returns little of the freed memory to the kernel, so RSS grew with the
free space trapped in the arenas (a soak: 150 -> 290 MB in 3 minutes with
about 50 MB in use).  Two arenas, and a trim every minute, keep RSS near
what is used.  Elsewhere than glibc both are no-ops."""
import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)
M_ARENA_MAX = -8          # mallopt parameter (malloc.h)
ARENAS = 2


def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _libc()


def limit_arenas() -> None:
    """Call before threads start: later arenas are shared by all threads."""
    if _LIBC is not None and not _LIBC.mallopt(M_ARENA_MAX, ARENAS):
        log.warning("mallopt(M_ARENA_MAX) refused")


def trim() -> None:
    """Give the free pages inside the heap back to the kernel."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
