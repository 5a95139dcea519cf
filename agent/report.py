"""Capture reports: a capture file (or an interface, for a while) through
the C core, summarised as packets, bytes, flows, malformed packets, protocol
mix and top talkers.  `capbox analyze`, `capbox flows`, `capbox capture`;
and what the core hands on: `capbox export` (the flows of a file sent to
collectors) and `capbox record` (its packets into rotating pcapng files).

Offline, a flow is a conversation (as tshark counts them): no idle timeout
unless asked for; a full table still evicts, so memory stays bounded.
"""
import dataclasses
import time
from typing import Callable, Iterator, Optional

from hwdrivers import CaptureConfig, CaptureError, RecordConfig, RunResult, Session
from hwdrivers.capture import PROGRESS_EVERY_MS

LINKTYPES = {0: "NULL", 1: "EN10MB", 12: "RAW", 14: "RAW", 101: "RAW", 108: "LOOP",
             113: "LINUX_SLL", 228: "IPV4", 229: "IPV6", 276: "LINUX_SLL2"}


@dataclasses.dataclass
class Options:
    bpf: str = ""
    top: int = 10
    idle_timeout_s: int = 0
    max_flows: int = 1 << 22
    window_s: int = 0             # traffic windows too, when > 0


@dataclasses.dataclass
class ExportOptions:
    active_timeout_s: int = 0     # 0: a conversation is one record, as `capbox flows` has it
    sample_rate: int = 1


@dataclasses.dataclass
class LiveOptions:
    backend: str = "afpacket"
    snaplen: int = 65535
    buffer_size_mb: int = 64
    promisc: bool = True
    fanout_group: Optional[int] = None
    duration_s: float = 0.0       # 0: until count or interrupted
    count: int = 0                # packets; 0: no limit


def _config(path: str, opts: Options, flow_ring: int = 0) -> CaptureConfig:
    return CaptureConfig(source=path, backend="pcapfile", bpf=opts.bpf, max_flows=opts.max_flows,
                         idle_timeout_s=opts.idle_timeout_s, active_timeout_s=0, window_s=opts.window_s,
                         window_ring=256, flow_ring=flow_ring, lossless=bool(flow_ring or opts.window_s))


def analyze(path: str, opts: Options = Options(),
            progress: Optional[Callable[[float], None]] = None) -> dict:
    """Report on a capture file.  Raises CaptureError when it cannot be read
    at all; damage later in the file ends the report there, with its error."""
    with Session(_config(path, opts)) as s:
        windows: list = []
        error = s.run_to_eof(lambda: windows.extend(s.read_windows()), progress)
        report = summarize(s, path, opts.top, error)
        if opts.window_s:
            while s.flush():
                windows.extend(s.read_windows())
            report["windows"] = windows + s.read_windows()
        return report


def _live_config(iface: str, opts: Options, live: LiveOptions) -> CaptureConfig:
    return CaptureConfig(source=iface, backend=live.backend, bpf=opts.bpf, snaplen=live.snaplen,
                         buffer_size_mb=live.buffer_size_mb, promisc=live.promisc,
                         fanout_group=live.fanout_group, max_flows=opts.max_flows,
                         idle_timeout_s=opts.idle_timeout_s, active_timeout_s=0)


def _drive_live(s: Session, live: LiveOptions, should_stop: Callable[[], bool]) -> Optional[CaptureError]:
    """Capture until live.duration_s, live.count packets or should_stop()
    (a KeyboardInterrupt also ends it cleanly); the error that ended it, if any."""
    deadline = time.monotonic() + live.duration_s if live.duration_s else None
    try:
        while not should_stop():
            left_ms = PROGRESS_EVERY_MS
            if deadline is not None:
                left_ms = min(left_ms, int((deadline - time.monotonic()) * 1000))
                if left_ms <= 0:
                    break
            done = s.counters().packets
            if live.count and done >= live.count:
                break
            s.run(max_packets=live.count - done if live.count else 0, timeout_ms=left_ms)
    except CaptureError as e:
        return e
    except KeyboardInterrupt:
        pass
    return None


def capture(iface: str, opts: Options = Options(), live: LiveOptions = LiveOptions(),
            should_stop: Callable[[], bool] = lambda: False) -> dict:
    """Report on live traffic: until live.duration_s, live.count packets or
    should_stop() (a KeyboardInterrupt also ends it cleanly)."""
    with Session(_live_config(iface, opts, live)) as s:
        error = _drive_live(s, live, should_stop)
        report = summarize(s, iface, opts.top, error)
    report["backend"] = live.backend
    return report


def export(path: str, collectors: list, opts: Options = Options(),
           xopts: ExportOptions = ExportOptions(), progress: Optional[Callable[[float], None]] = None) -> dict:
    """Send every flow of a file to the collectors (ExporterConfig, made
    lossless here: offline, waiting for a socket loses nothing).  The flows
    leave the C core as they end and the rest at the end of the file."""
    cfg = CaptureConfig(source=path, backend="pcapfile", bpf=opts.bpf, max_flows=opts.max_flows,
                        idle_timeout_s=opts.idle_timeout_s, active_timeout_s=xopts.active_timeout_s,
                        sample_rate=xopts.sample_rate)
    with Session(cfg) as s:
        for c in collectors:
            s.add_exporter(dataclasses.replace(c, lossless=True))
        error = s.run_to_eof(None, progress)
        s.flush()
        c = s.counters()
        return {"file": path, "packets": c.packets, "flows": c.flows_created,
                "packets_unsampled": c.packets_unsampled,
                "exporters": [e.as_dict() for e in s.exporters()],
                "error": None if error is None else {"code": error.code.name, "message": error.message}}


def record(source: str, rec: RecordConfig, key: Optional[bytes] = None, opts: Options = Options(),
           live: Optional[LiveOptions] = None, should_stop: Callable[[], bool] = lambda: False) -> dict:
    """Record a capture file (every packet: the recorder waits for its writer)
    or an interface (live: until live.duration_s, live.count or should_stop)."""
    if live is None:
        cfg = _config(source, opts)
        rec = dataclasses.replace(rec, lossless=True)
    else:
        cfg = _live_config(source, opts, live)
    with Session(cfg) as s:
        s.start_recording(rec, key)
        started = time.monotonic()
        try:
            error = s.run_to_eof() if live is None else _drive_live(s, live, should_stop)
        except KeyboardInterrupt:
            error = None
        stats = s.stop_recording()
        c = s.counters()
    return {"source": source, "directory": rec.directory, "packets_captured": c.packets,
            "seconds": round(time.monotonic() - started, 3), "recording": stats.as_dict(),
            "error": None if error is None else {"code": error.code.name, "message": error.message}}


def summarize(s: Session, source: str, top: int, error: Optional[CaptureError]) -> dict:
    """Flush the flows and turn the session's counters into the report."""
    s.flush()
    c = s.counters()
    hosts = s.top_hosts(top)
    duration = (c.last_ns - c.first_ns) / 1e9 if c.packets else 0.0

    def mix(packets: dict, bytes_: dict) -> dict:
        return {k: {"packets": packets[k], "bytes": bytes_[k]} for k in packets if packets[k]}

    return {
        "file": source,
        "linktype": s.linktype,
        "link": LINKTYPES.get(s.linktype, str(s.linktype)),
        "packets": c.packets,
        "bytes": c.bytes,
        "captured_bytes": c.captured_bytes,
        "duration_s": round(duration, 6),
        "first_ts": c.first_ns / 1e9 if c.packets else None,
        "last_ts": c.last_ns / 1e9 if c.packets else None,
        "avg_pps": round(c.packets / duration, 3) if duration > 0 else None,
        "avg_bps": round(8 * c.bytes / duration, 3) if duration > 0 else None,
        "flows": c.flows_created,
        "flows_by_proto": {"tcp": c.flows_tcp, "udp": c.flows_udp, "icmp": c.flows_icmp,
                           "other": c.flows_other},
        "flows_evicted": c.flows_evicted,
        "malformed": {"total": c.malformed, "by_reason": {k: v for k, v in c.malformed_by.items() if v}},
        "truncated": {"total": c.truncated, "by_reason": {k: v for k, v in c.truncated_by.items() if v}},
        "tunnels": {k: v for k, v in c.tunnel_packets.items() if v},   # packets decapsulated, by tunnel type
        "fragments_unmatched": c.frag_orphans,
        "filtered_out": c.backend_filtered,
        "received": c.backend_received,
        "dropped": c.backend_dropped + c.backend_if_dropped,
        "protocols": {"layers": mix(c.layer_packets, c.layer_bytes),
                      "applications": mix(c.app_packets, c.app_bytes)},
        "top_talkers": [h.as_dict() for h in hosts],
        "error": None if error is None else {"code": error.code.name, "message": error.message},
    }


def flows(path: str, opts: Options = Options(), errors: Optional[list] = None,
          progress: Optional[Callable[[float], None]] = None) -> Iterator:
    """Every flow of the file as it ends (FlowRecord).  A damaged file yields
    the flows read before the damage; its error is appended to `errors`."""
    with Session(_config(path, opts, flow_ring=1 << 16)) as s:
        while True:        # not run_to_eof: flows stream out as the file is read
            try:
                result = s.run(timeout_ms=PROGRESS_EVERY_MS)
            except CaptureError as e:
                if errors is not None:
                    errors.append(e)
                break
            yield from s.read_flows()
            if progress is not None and (done := s.fraction_read()) is not None:
                progress(done)
            if result == RunResult.EOF:
                break
        while True:
            left = s.flush()
            yield from s.read_flows()
            if not left:
                break
