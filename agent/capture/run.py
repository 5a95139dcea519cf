"""One capture run: what was asked for (CaptureRequest), its rates, and the
state its two threads share (agent.capture.control runs it)."""
import collections
import dataclasses
import threading
import time
from typing import Optional

from hwdrivers import CAPTURE_DEFAULTS, Session

RATE_HISTORY = 600      # one sample a second: the last ten minutes


@dataclasses.dataclass(frozen=True)
class CaptureRequest:
    """What POST /v1/capture/start (and the console, the TUI) can ask for."""

    source: str                     # an interface, a capture file, or "demo"
    backend: str = ""               # empty: pcapfile for files, afpacket (else pcap) for interfaces
    bpf: str = ""
    snaplen: int = CAPTURE_DEFAULTS.snaplen
    buffer_size_mb: int = CAPTURE_DEFAULTS.buffer_size_mb
    promisc: bool = CAPTURE_DEFAULTS.promisc
    fanout_group: int = CAPTURE_DEFAULTS.fanout_group
    pace: float = CAPTURE_DEFAULTS.pace     # files: 1.0 replays at the recorded pace
    loop: bool = CAPTURE_DEFAULTS.loop      # files: start over at the end
    duration: float = 0.0           # stop by itself after this many seconds; 0 = never
    trusted: bool = False           # named by the operator (command line, config file): any file, not only pcap_dirs


class Rates:
    """Packets and bytes per second from counter deltas, one sample a second."""

    def __init__(self):
        self.history: collections.deque = collections.deque(maxlen=RATE_HISTORY)
        self._last = None
        self.pps = self.bps = 0.0

    def sample(self, now: float, packets: int, bytes_: int, dropped: int) -> None:
        if self._last is not None:
            t0, p0, b0, _ = self._last
            dt = now - t0
            if dt > 0:
                self.pps = (packets - p0) / dt
                self.bps = 8 * (bytes_ - b0) / dt
                self.history.append({"ts": now, "pps": round(self.pps, 1), "bps": round(self.bps, 1),
                                     "dropped": dropped})
        self._last = (now, packets, bytes_, dropped)


class Run:
    """One capture from start to stop."""

    def __init__(self, req: CaptureRequest, backend: str, path: str, session: Session, run_id: int):
        self.req = req
        self.backend = backend
        self.path = path
        self.session = session
        self.id = run_id
        self.started = time.time()
        self.stopped: Optional[float] = None
        self.reason: Optional[str] = None
        self.error: Optional[str] = None
        self.rates = Rates()
        self.bus_dropped = 0
        self.ring = None         # hwdrivers.shring.SharedRing of the consumer worker, or None
        self.stop = threading.Event()
        self.threads: list = []
        self.final: Optional[dict] = None
        self.bpf = req.bpf
