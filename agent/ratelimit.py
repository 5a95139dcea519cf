"""Per-key, per-route-class request limits over fixed one-minute windows, and
a backoff per client address after failed authentications."""
import dataclasses
import threading
import time

WINDOW_S = 60


@dataclasses.dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset: int          # unix time the window ends
    retry_after: int    # seconds, when not allowed

    def headers(self) -> dict:
        h = {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining),
             "X-RateLimit-Reset": str(self.reset)}
        if not self.allowed:
            h["Retry-After"] = str(self.retry_after)
        return h


class RateLimiter:
    def __init__(self, limits: dict):
        self.limits = dict(limits)   # route class -> requests per window
        self._counts: dict = {}
        self._lock = threading.Lock()

    def check(self, who: str, route_class: str, now: float = None) -> Verdict:
        now = time.time() if now is None else now
        limit = self.limits[route_class]
        start = int(now // WINDOW_S) * WINDOW_S
        reset = start + WINDOW_S
        key = (who, route_class)
        with self._lock:
            window, used = self._counts.get(key, (start, 0))
            if window != start:
                window, used = start, 0
            allowed = used < limit
            if allowed:
                used += 1
            self._counts[key] = (window, used)
            if len(self._counts) > 100000:  # forget old windows
                self._counts = {k: v for k, v in self._counts.items() if v[0] == start}
        return Verdict(allowed, limit, max(0, limit - used), reset, max(1, int(reset - now + 0.999)))


class AuthThrottle:
    """Failed authentications per client address: the first FREE cost nothing,
    then each further one doubles the wait before the next attempt (up to
    MAX_WAIT_S).  Ten minutes without a failure forget them; a success does
    not (a read-only key must not reset the count of someone guessing a full one)."""
    FREE = 5
    MAX_WAIT_S = 60.0
    FORGET_S = 600.0
    MAX_ADDRS = 100000

    def __init__(self):
        self._fails: dict = {}           # addr -> (failures, time of the last, time the next is allowed)
        self._lock = threading.Lock()

    def retry_after(self, addr: str, now: float = None) -> int:
        """0 when addr may try now; otherwise seconds to wait."""
        now = time.monotonic() if now is None else now
        with self._lock:
            entry = self._fails.get(addr)
        if not entry or entry[2] <= now:
            return 0
        return max(1, int(entry[2] - now + 0.999))

    def failed(self, addr: str, now: float = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            n, last, _ = self._fails.get(addr, (0, now, now))
            if now - last > self.FORGET_S:
                n = 0
            n += 1
            wait = 0.0 if n <= self.FREE else min(self.MAX_WAIT_S, 2.0 ** (n - self.FREE - 1))
            self._fails[addr] = (n, now, now + wait)
            if len(self._fails) > self.MAX_ADDRS:   # forget the quiet ones first
                cut = sorted(self._fails.items(), key=lambda kv: kv[1][1])[: self.MAX_ADDRS // 2]
                for k, _ in cut:
                    del self._fails[k]

    def failures(self, addr: str) -> int:
        with self._lock:
            return self._fails.get(addr, (0, 0, 0))[0]
