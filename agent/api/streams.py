"""Open event streams, bounded per key and in all: a stream holds a server worker
for its whole life, so some workers always stay free for other requests."""
import threading

from agent.errors import AgentError

RESERVED_WORKERS = 8


class StreamSlots:
    """Open streams per key, bounded; and in all, since a stream holds a
    server worker thread for its whole life."""

    def __init__(self, limit: int, total: int):
        self.limit = limit
        self.total_limit = total
        self._open: dict = {}
        self._lock = threading.Lock()

    def acquire(self, key_id: str) -> bool:
        with self._lock:
            if self._open.get(key_id, 0) >= self.limit or sum(self._open.values()) >= self.total_limit:
                return False
            self._open[key_id] = self._open.get(key_id, 0) + 1
            return True

    def release(self, key_id: str) -> None:
        with self._lock:
            self._open[key_id] -= 1

    def total(self) -> int:
        with self._lock:
            return sum(self._open.values())


def too_many_streams(slots: StreamSlots) -> AgentError:
    return AgentError("RATE_LIMIT_EXCEEDED",
                      f"too many event streams (at most {slots.limit} per key, {slots.total_limit} in all)",
                      {"limit": slots.limit, "total_limit": slots.total_limit, "window_seconds": 0,
                       "retry_after_seconds": 5, "reason": "too_many_streams"})
