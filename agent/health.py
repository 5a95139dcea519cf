"""Components and their threads: each named, with its own stop Event,
reporting heartbeats.  A thread that raises marks its component failed (in
/v1/health), is logged once, and the agent goes on."""
import logging
import threading
import time
from typing import Callable, Optional

log = logging.getLogger(__name__)

HEARTBEAT_STALE_S = 30.0


class Component:
    def __init__(self, name: str, critical: bool, detail: Optional[Callable[[], dict]] = None):
        self.name = name
        self.critical = critical
        self.detail = detail
        self.state = "starting"
        self.error: Optional[str] = None
        self.last_heartbeat = time.time()
        self.stop = threading.Event()
        self.thread: Optional[threading.Thread] = None

    def beat(self, state: str = "running") -> None:
        self.last_heartbeat = time.time()
        self.state = state

    def fail(self, error: str) -> None:
        self.state = "failed"
        self.error = error

    @property
    def healthy(self) -> bool:
        if self.state == "failed":
            return False
        if self.thread is not None and self.state == "running":
            return time.time() - self.last_heartbeat < HEARTBEAT_STALE_S
        return True

    def snapshot(self) -> dict:
        out = {"status": self.state if self.healthy or self.state == "failed" else "stalled",
               "critical": self.critical, "last_heartbeat": self.last_heartbeat, "error": self.error}
        if self.detail:
            try:
                out.update(self.detail())
            except Exception as e:  # a detail must never break /v1/health
                out["detail_error"] = str(e)
        return out


class Health:
    def __init__(self):
        self.components: dict = {}
        self.started = time.time()
        self.loss_sources: dict = {}   # name -> () -> {cause: count}: data lost on its way (never silent)

    def register_losses(self, name: str, counts: Callable[[], dict]) -> None:
        """A path whose drops turn the agent degraded while any is non-zero."""
        self.loss_sources[name] = counts

    def losses(self) -> dict:
        """{path: {cause: count}} of every path that lost something."""
        out = {}
        for name, counts in list(self.loss_sources.items()):   # a copy: paths register while the agent runs
            try:
                lost = {k: v for k, v in counts().items() if v}
            except Exception as e:  # a counter must never break /v1/health
                lost = {"error": str(e)}
            if lost:
                out[name] = lost
        return out

    def register(self, name: str, critical: bool = True, detail=None) -> Component:
        c = self.components[name] = Component(name, critical, detail)
        return c

    def spawn(self, component: Component, target: Callable[[Component], None]) -> threading.Thread:
        """Run target(component) in a thread named after the component."""
        def run():
            component.beat()
            try:
                target(component)
                if component.state != "failed":
                    component.state = "stopped"
            except Exception as e:
                component.fail(f"{type(e).__name__}: {e}")
                log.exception("component %s failed", component.name)
        t = threading.Thread(target=run, name=component.name, daemon=True)
        component.thread = t
        t.start()
        return t

    def status(self) -> str:
        """healthy, degraded (a non-critical part is down, or data was lost) or unhealthy."""
        bad = [c for c in list(self.components.values()) if not c.healthy]
        if any(c.critical for c in bad):
            return "unhealthy"
        return "degraded" if bad or self.losses() else "healthy"

    def snapshot(self) -> dict:
        return {name: c.snapshot() for name, c in list(self.components.items())}   # details run Python: copy first

    def stop_all(self, timeout: float = 10.0, wake=None) -> None:
        """Stop every component's thread; wake() rouses those blocked on a queue so none waits out its poll."""
        for c in self.components.values():
            c.stop.set()
        if wake is not None:
            wake()
        deadline = time.monotonic() + timeout
        for c in self.components.values():
            if c.thread is not None and c.thread is not threading.current_thread():
                c.thread.join(max(0.0, deadline - time.monotonic()))
