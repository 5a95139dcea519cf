"""Per-key, per-route-class request limits over fixed one-minute windows."""
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
