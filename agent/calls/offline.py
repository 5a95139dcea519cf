"""Calls of a capture file, in two passes of the C core.

Pass 1 hands Python the SIP packets (events) and rebuilds the calls; their
SDP names the RTP and RTCP endpoints, each from the packet that announced
it.  Pass 2 registers those endpoints with the core and reads the file
again: every packet to or from an endpoint, from its announcement on, is
measured per SSRC in C.  Two passes because in one, RTP that follows its
SDP within the same batch (or while the SIP event waits in the ring) would
be seen before Python could name it; tshark, which decodes RTP only after
the SDP frame, is matched exactly this way (docs/CALLS.md)."""
import dataclasses
from typing import Callable, Optional

from agent.calls.dialogs import Tracker
from hwdrivers import CaptureConfig, CaptureError, ErrorCode, Session


@dataclasses.dataclass
class Result:
    tracker: Tracker
    packets: int = 0
    bytes: int = 0
    error: Optional[CaptureError] = None
    rtp: dict = dataclasses.field(default_factory=dict)

    @property
    def calls(self) -> list:
        return self.tracker.ordered()


@dataclasses.dataclass(frozen=True)
class Limits:
    max_flows: int = 1 << 20
    max_streams: int = 1 << 16
    max_calls: int = 100000
    event_ring: int = 4096


def _run(session: Session, pass_no: int, on_batch, progress, cancelled, read: Optional[tuple] = None) -> None:
    """Read the whole file (pass 0 or 1); progress is by bytes read over both passes, with the packets
    and bytes read by pass 0 (`read`, its totals, once it is done: counts never go back)."""
    def report(done: float) -> None:
        c = session.counters()
        progress((pass_no + done) / 2, *(read or (c.packets, c.bytes)))
    error = session.run_to_eof(on_batch, report if progress else None, cancelled)
    if error is not None:
        raise error


def analyse(path: str, progress: Optional[Callable[[float, int, int], None]] = None,
            cancelled: Optional[Callable[[], bool]] = None, limits: Limits = Limits()) -> Result:
    """The calls of a capture file.  CaptureError when it cannot be read at all; a file damaged
    part-way gives the calls before the damage with Result.error set.  hwdrivers.errors.Cancelled
    if asked to stop (cancelled() true between two chunks of a pass)."""
    if path == "-":
        raise CaptureError(ErrorCode.ARG, "calls are read from a file in two passes: standard input will not do")
    tracker = Tracker(max_calls=limits.max_calls)
    res = Result(tracker)
    base = dict(source=path, backend="pcapfile", idle_timeout_s=0, active_timeout_s=0, max_flows=limits.max_flows)
    with Session(CaptureConfig(**base, events=frozenset({"sip"}), event_ring=limits.event_ring,
                               lossless=True)) as s:
        def drain():
            for ev in s.read_events():
                tracker.feed(ev)
        try:
            _run(s, 0, drain, progress, cancelled)
        except CaptureError as e:
            res.error = e
        drain()
        c = s.counters()
        res.packets, res.bytes = c.packets, c.bytes
    endpoints = tracker.endpoints()
    if endpoints and res.error is None:
        with Session(CaptureConfig(**base)) as s:
            s.rtp_init(max_endpoints=len(endpoints) + 16, max_streams=limits.max_streams)
            for e in endpoints:
                s.rtp_watch(e)
            _run(s, 1, None, progress, cancelled, (res.packets, res.bytes))
            tracker.attach(s.rtp_streams())
            res.rtp = s.rtp_stats()
    if progress:
        progress(1.0, res.packets, res.bytes)
    return res
