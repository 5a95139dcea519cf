"""Capture sessions: the Python face of the C core.

A Session owns one backend, the parser, the flow table and the rings.  One
thread calls run() (the GIL is released while C loops over packets); any
other thread may read counters, flows and events meanwhile.  Nothing here
touches single packets: Python sees counters, flow records and events.
"""
import contextlib
import dataclasses
import enum
import os
import threading
from typing import Callable, Optional

from hwdrivers import dnsgate as _dnsgate
from hwdrivers import events as _events
from hwdrivers import export as _export
from hwdrivers import record as _record
from hwdrivers import records as _records
from hwdrivers import flows as _flows
from hwdrivers import rtp as _rtp
from hwdrivers import windows as _windows
from hwdrivers._hw import ffi, lib
from hwdrivers.capconfig import FANOUT_MODES, CaptureConfig
from hwdrivers.errors import Cancelled, CaptureError, ErrorCode, check

_CAPS = {
    "file": lib.HW_CAP_FILE, "live": lib.HW_CAP_LIVE, "bpf": lib.HW_CAP_BPF,
    "promisc": lib.HW_CAP_PROMISC, "fanout": lib.HW_CAP_FANOUT, "pace": lib.HW_CAP_PACE,
    "buffer": lib.HW_CAP_BUFFER, "hwtstamp": lib.HW_CAP_HWTSTAMP, "flowoffload": lib.HW_CAP_FLOWOFFLOAD,
}

PROGRESS_EVERY_MS = 200     # run_to_eof: a chunk of run() between progress reports
PCAP_HEADER = 24            # classic pcap: file header bytes
PCAP_RECORD = 16            # and per-record header bytes
_COPIED = ("snaplen", "buffer_size_mb", "block_size_kb", "block_timeout_ms", "pace", "max_flows", "max_hosts",
           "idle_timeout_s", "active_timeout_s", "event_ring", "flow_ring", "window_s", "window_ring", "long_flow_s",
           "sample_rate")         # CaptureConfig fields struct hw_config takes as they are


def _errbuf():
    return ffi.new("char[]", lib.HW_ERRBUF_SIZE)


class RunResult(enum.IntEnum):
    BUDGET = lib.HW_RUN_BUDGET
    TIMEOUT = lib.HW_RUN_TIMEOUT
    EOF = lib.HW_RUN_EOF
    DRAIN = lib.HW_RUN_DRAIN
    BREAK = lib.HW_RUN_BREAK


@dataclasses.dataclass(frozen=True)
class BackendInfo:
    name: str
    description: str
    capabilities: tuple
    available: bool
    reason: str


def backends() -> list:
    """Every backend compiled in, with whether it can run on this machine."""
    out = []
    info = ffi.new("struct hw_backend_info *")
    errbuf = _errbuf()
    for i in range(lib.hw_backend_count()):
        lib.hw_backend_info(i, info)
        name = ffi.string(info.name).decode()
        rc = lib.hw_backend_available(info.name, errbuf)
        out.append(BackendInfo(
            name=name, description=ffi.string(info.description).decode(),
            capabilities=tuple(k for k, bit in _CAPS.items() if info.caps & bit),
            available=rc == 0, reason="" if rc == 0 else ffi.string(errbuf).decode()))
    return out


def check_filter(bpf: str, linktype: int = 1) -> None:
    """CaptureError(FILTER) when a BPF expression does not compile for the link type (1: Ethernet)."""
    errbuf = _errbuf()
    check(lib.hw_bpf_check(linktype, bpf.encode(), errbuf), errbuf)


def backend_names() -> tuple:
    """The backends compiled in, in the registry's order (nothing probed: see backends())."""
    info = ffi.new("struct hw_backend_info *")
    names = []
    for i in range(lib.hw_backend_count()):
        lib.hw_backend_info(i, info)
        names.append(ffi.string(info.name).decode())
    return tuple(names)


TUNNEL_NAMES = _flows.TUNNEL_NAMES


def _counter_names():
    """Array counters in struct hw_counters, each index named by the C core."""
    def names(fn, n):
        return [ffi.string(fn(i)).decode() for i in range(n)]
    mal = names(lib.hw_malformed_name, lib.HW_MAL_COUNT)
    trunc = names(lib.hw_truncated_name, lib.HW_TRUNC_COUNT)
    layers = names(lib.hw_layer_name, lib.HW_L_COUNT)
    apps = names(lib.hw_app_name, lib.HW_APP_COUNT)
    return {"malformed_by": mal, "truncated_by": trunc, "layer_packets": layers,
            "layer_bytes": layers, "app_packets": apps, "app_bytes": apps,
            "events": _events.KINDS, "events_dropped": _events.KINDS, "tunnel_packets": TUNNEL_NAMES}


_ARRAY_NAMES = _counter_names()
_COUNTER_FIELDS = [name for name, _ in ffi.typeof("struct hw_counters").fields]
# The counters' fields come from the C struct, so Python never lists them twice.
Counters = dataclasses.make_dataclass(
    "Counters", [(name, dict if name in _ARRAY_NAMES else int) for name in _COUNTER_FIELDS],
    frozen=True)
Counters.__doc__ = "A snapshot of struct hw_counters; arrays become dicts keyed by name."


def zero_counters() -> "Counters":
    """Counters of no capture: every series a collector expects, at 0."""
    return Counters(**{name: dict.fromkeys(_ARRAY_NAMES[name], 0) if name in _ARRAY_NAMES else 0
                       for name in _COUNTER_FIELDS})


def _counters_from_cdata(c) -> "Counters":
    values = {}
    for name in _COUNTER_FIELDS:
        v = getattr(c, name)
        if name in _ARRAY_NAMES:
            values[name] = {k: v[i] for i, k in enumerate(_ARRAY_NAMES[name])}
        else:
            values[name] = v
    return Counters(**values)


class Session:
    """One running capture.  Use as a context manager, or call close()."""

    def __init__(self, config: CaptureConfig):
        unknown = set(config.events) - set(_events.KIND_BITS)
        if unknown:
            raise CaptureError(ErrorCode.ARG, f"unknown event kinds: {', '.join(sorted(unknown))}")
        if config.fanout_mode not in FANOUT_MODES:
            raise CaptureError(ErrorCode.ARG, f"unknown fanout mode {config.fanout_mode!r}")
        self.config = config
        self._file_size: Optional[int] = None
        cfg = ffi.new("struct hw_config *")
        lib.hw_config_init(cfg)
        keep = [ffi.new("char[]", config.backend.encode()), ffi.new("char[]", config.source.encode()),
                ffi.new("char[]", config.bpf.encode())]
        cfg.backend, cfg.source, cfg.bpf = keep
        for name in _COPIED:
            setattr(cfg, name, getattr(config, name))
        cfg.promisc, cfg.loop, cfg.lossless = int(config.promisc), int(config.loop), int(config.lossless)
        cfg.fanout_group = -1 if config.fanout_group is None else config.fanout_group
        cfg.fanout_mode = FANOUT_MODES[config.fanout_mode]
        cfg.event_mask = sum(_events.KIND_BITS[k] for k in config.events)
        config.tunnels.fill(cfg)
        out = ffi.new("struct hw_session **")
        errbuf = _errbuf()
        check(lib.hw_session_open(cfg, out, errbuf), errbuf)
        self._s = out[0]
        self._users = 0
        self._closed = False
        self._cond = threading.Condition()
        self._event_buf = ffi.new("struct hw_event[]", 256)
        self._event_view = ffi.buffer(self._event_buf)
        self._flow_buf = ffi.new("struct hw_flow_record[]", 1024)
        self._window_buf = ffi.new("struct hw_window[]", 16)
        self.linktype = lib.hw_session_linktype(self._s)
        self.dns_fold = False     # DNS queries folded into the next DNS event (hwdrivers.dnsgate)

    @contextlib.contextmanager
    def _use(self):
        """Every C call goes through here, so close() can wait for calls in
        other threads to leave the core before it frees the session."""
        with self._cond:
            if self._closed:
                raise CaptureError(ErrorCode.STATE, "capture session is closed")
            self._users += 1
        try:
            yield self._s
        finally:
            with self._cond:
                self._users -= 1
                self._cond.notify_all()

    def run(self, max_packets: int = 0, timeout_ms: int = -1) -> RunResult:
        """Capture until max_packets, timeout_ms, end of input, a ring to drain, or stop()."""
        with self._use() as s:
            errbuf = _errbuf()
            return RunResult(check(lib.hw_session_run(s, max_packets, timeout_ms, errbuf), errbuf))

    def run_to_eof(self, on_batch: Optional[Callable[[], None]] = None,
                   progress: Optional[Callable[[float], None]] = None,
                   cancelled: Optional[Callable[[], bool]] = None, every_ms: int = PROGRESS_EVERY_MS):
        """Run a capture file to its end, every_ms at a time: on_batch() after each (drain the rings),
        progress(fraction of the file read), and stop early when cancelled() says so.  Returns None at
        the end, the CaptureError of a file damaged part-way (after one more on_batch: what came before
        the damage is kept); raises Cancelled when cancelled() said so."""
        while True:
            if cancelled is not None and cancelled():
                raise Cancelled()
            try:
                result = self.run(timeout_ms=every_ms)
            except CaptureError as e:
                if on_batch is not None:
                    on_batch()
                return e
            if on_batch is not None:
                on_batch()
            if progress is not None:
                done = self.fraction_read()
                if done is not None:
                    progress(done)
            if result == RunResult.EOF:
                return None

    def fraction_read(self) -> Optional[float]:
        """How much of the capture file was read, 0..1 (None: not a file): the one progress formula,
        bytes read by counters (classic pcap: a file header, and a header per record)."""
        if self._file_size is None:
            path = self.config.source
            self._file_size = os.path.getsize(path) if os.path.isfile(path) else 0
        if not self._file_size:
            return None
        c = self.counters()
        return min(1.0, (PCAP_HEADER + c.captured_bytes + PCAP_RECORD * c.packets) / self._file_size)

    def stop(self) -> None:
        """Make a run() in another thread return (RunResult.BREAK) within ~100 ms."""
        with self._use() as s:
            lib.hw_session_break(s)

    def inject(self, data: bytes, linktype: int = 1, ts_ns: int = 0, wirelen: Optional[int] = None) -> None:
        """Feed one packet through the parser and the flow table."""
        with self._use() as s:
            lib.hw_session_inject(s, linktype, data, len(data), len(data) if wirelen is None else wirelen, ts_ns)

    def set_tokens(self, tokens) -> None:
        """Search every IP payload for these byte strings (honeytokens); a packet
        carrying one becomes a "token" event (with "token" in the config's events).
        An empty list stops the search.  CaptureError(ARG) for a bad length."""
        tokens = [bytes(t) for t in tokens]
        keep = [ffi.new("uint8_t[]", t) for t in tokens]
        ptrs = ffi.new("uint8_t *[]", keep) if keep else ffi.NULL
        lens = ffi.new("uint32_t[]", [len(t) for t in tokens]) if tokens else ffi.NULL
        with self._use() as s:
            errbuf = _errbuf()
            check(lib.hw_tokens_set(s, ptrs, lens, len(tokens), errbuf), errbuf)

    def set_filter(self, bpf: str) -> None:
        """Replace the BPF filter; a bad expression raises CaptureError(FILTER)."""
        with self._use() as s:
            errbuf = _errbuf()
            check(lib.hw_session_set_filter(s, bpf.encode(), errbuf), errbuf)

    def flush(self) -> int:
        """Expire every flow; returns how many remain (lossless: drain, then call again)."""
        with self._use() as s:
            return lib.hw_session_flush(s)

    def counters(self) -> "Counters":
        with self._use() as s:
            c = ffi.new("struct hw_counters *")
            lib.hw_session_counters(s, c)
            return _counters_from_cdata(c)

    def record_counters(self) -> dict:
        """{"parsed": {kind: n}, "malformed": {reason: n}, "dns_gate": hwdrivers.dnsgate.counters}: the protocol
        records parsed in C, and the DNS queries folded into the next DNS event."""
        with self._use() as s:
            c = ffi.new("struct hw_rec_counters *")
            lib.hw_records_counters(s, c)
            return {"parsed": {k: c.parsed[i] for i, k in enumerate(_events.KINDS) if c.parsed[i]},
                    "malformed": {k: c.malformed[i] for i, k in enumerate(_records.MALFORMED_NAMES)
                                  if i and c.malformed[i]}, "dns_gate": _dnsgate.counters(self)}

    def _drain(self, read, buf, convert, limit):
        """Records from a C ring, converted; with convert None only counted (and dropped)."""
        out, seen = [], 0
        with self._use() as s:
            while seen < limit:
                n = read(s, buf, min(limit - seen, len(buf)))
                seen += n
                if convert is not None:
                    out.extend(convert(buf[i]) for i in range(n))
                if n < len(buf):
                    break
        return seen if convert is None else out

    def read_events(self, limit: int = 1 << 30, repeats: bool = False, bare: int = 0) -> list:
        """Queued packet events (kinds chosen in the config), oldest first; with repeats, DnsRepeat answers;
        bare: the kinds whose records are left unread (events.from_buffer)."""
        out = []
        size, convert, view = _events.SIZE, _events.from_buffer, self._event_view
        with self._use() as s:
            while len(out) < limit:
                n = lib.hw_events_read(s, self._event_buf, min(limit - len(out), len(self._event_buf)))
                out += [convert(view, at, repeats, bare=bare) for at in range(0, n * size, size)]   # (no generator)
                if n < len(self._event_buf):
                    break
        return out

    def events_to_ring(self, mem, limit: int, offsets, full) -> int:
        """Move up to limit queued events into a shared ring of packed records (hwdrivers.shring), oldest first,
        until one does not fit (full[0] 1); their offsets in offsets.  How many."""
        with self._use() as s:
            return lib.hw_shring_fill(mem, s, limit, offsets, full)

    def events_into(self, dst, limit: int) -> int:
        """Copy up to limit queued events to dst (struct hw_event slots: hwdrivers.shring), oldest first; how many."""
        with self._use() as s:
            return lib.hw_events_read(s, ffi.cast("struct hw_event *", dst), limit)

    def set_logger(self, logger, flows: bool = False) -> None:
        """Log the DNS messages into a hwdrivers.logs.Logger as the core parses them (before run: from the
        first packet); None detaches.  flows: the expired flows too, as they leave the table (conn lines made in
        C, not after the flow ring and Python, which see only those it leaves).  The session keeps it alive."""
        with self._use() as s:
            if lib.hw_session_set_logger(s, logger._lg if logger else ffi.NULL) or \
                    (logger and flows and lib.hw_session_log_flows(s)):
                raise CaptureError(ErrorCode.NOMEM, "no memory for the logger's event")
            self._logger = logger

    def flows_through(self, take) -> list:
        """Expired flows, each batch offered raw to take(struct hw_flow_record array, n) first (a C consumer
        such as hwdrivers.logs.Logger: no Python object per flow); the indexes it returns come back as
        FlowRecords."""
        out, buf = [], self._flow_buf
        with self._use() as s:
            while True:
                n = lib.hw_flows_read(s, buf, len(buf))
                out.extend(_flows.from_cdata(buf[i]) for i in take(buf, n))
                if n < len(buf):
                    return out

    def read_flows(self, limit: int = 1 << 30) -> list:
        """Expired flow records (needs flow_ring > 0), oldest first."""
        return self._drain(lib.hw_flows_read, self._flow_buf, _flows.from_cdata, limit)

    def skip_flows(self, limit: int = 1 << 30) -> int:
        """Drop expired flow records from the ring without making Python objects of them; how many."""
        return self._drain(lib.hw_flows_read, self._flow_buf, None, limit)

    def read_windows(self, limit: int = 1 << 30) -> list:
        """Closed traffic windows (needs window_s > 0), oldest first, as dicts."""
        size = self.config.window_s
        return self._drain(lib.hw_windows_read, self._window_buf, lambda w: _windows.from_cdata(w, size), limit)

    def active_flows(self, limit: int = 100, order: str = "bytes") -> list:
        """The top `limit` flows still in the table by bytes, packets, last or first."""
        if order not in _flows.ORDERS:
            raise CaptureError(ErrorCode.ARG, f"unknown order {order!r}; use one of {', '.join(_flows.ORDERS)}")
        with self._use() as s:
            buf = ffi.new("struct hw_flow_record[]", max(limit, 1))
            n = lib.hw_flows_active(s, buf, limit, _flows.ORDERS[order])
            return [_flows.from_cdata(buf[i]) for i in range(n)]

    def top_hosts(self, limit: int = 10) -> list:
        """Talkers by total bytes, from flows that left the table (flush() first for all)."""
        with self._use() as s:
            buf = ffi.new("struct hw_host[]", max(limit, 1))
            n = lib.hw_hosts_top(s, buf, limit)
            return [_flows.host_from_cdata(buf[i]) for i in range(n)]

    def offload_flows(self) -> list:
        """Conversations the hardware metered (backend fpga: the card's flow
        cache); CaptureError(UNSUPPORTED) on a backend without one."""
        from hwdrivers import fpga
        with self._use() as s:
            buf = ffi.new("struct hw_offload_flow[]", 1 << 16)
            while True:
                n = lib.hw_session_offload_flows(s, buf, len(buf))
                if n == lib.HW_E_UNSUPPORTED:
                    raise CaptureError(ErrorCode.UNSUPPORTED,
                                       f"backend {self.config.backend} meters no flows in hardware")
                if n < len(buf):
                    return [fpga.offload_flow_from_cdata(buf[i]) for i in range(n)]
                buf = ffi.new("struct hw_offload_flow[]", 2 * len(buf))

    def add_exporter(self, config: "_export.ExporterConfig") -> int:
        """Export this session's flows to a collector as they expire; the exporter's id."""
        c, keep = _export.to_cdata(config)
        with self._use() as s:
            errbuf = _errbuf()
            rc = check(lib.hw_export_add(s, c, errbuf), errbuf)
        del keep
        return rc

    def remove_exporter(self, exporter_id: int) -> "_export.ExporterStats":
        """Send what the exporter holds and remove it; its last counters."""
        with self._use() as s:
            last = ffi.new("struct hw_export_stats *")
            if lib.hw_export_remove(s, exporter_id, last) < 0:
                raise CaptureError(ErrorCode.ARG, f"no exporter {exporter_id}")
            return _export.stats_from_cdata(last)

    def exporters(self) -> list:
        """Every exporter with its counters (ExporterStats)."""
        with self._use() as s:
            buf = ffi.new("struct hw_export_stats[]", _export.MAX_EXPORTERS)
            n = lib.hw_export_list(s, buf, _export.MAX_EXPORTERS)
            return [_export.stats_from_cdata(buf[i]) for i in range(n)]

    def start_recording(self, config: "_record.RecordConfig", key: Optional[bytes] = None) -> None:
        """Write this session's packets to rotating pcapng files (encrypted with a 32-byte key)."""
        c, keep = _record.to_cdata(config, key)
        with self._use() as s:
            errbuf = _errbuf()
            check(lib.hw_record_start(s, c, errbuf), errbuf)
        del keep

    def stop_recording(self) -> "_record.RecordStats":
        """Close the current file (fsynced) and stop; the final counters."""
        with self._use() as s:
            errbuf = _errbuf()
            check(lib.hw_record_stop(s, errbuf), errbuf)
        return self.recording()

    def rotate_recording(self) -> None:
        """Close the current file now; the next packet starts another."""
        with self._use() as s:
            errbuf = _errbuf()
            check(lib.hw_record_rotate(s, errbuf), errbuf)

    def set_recording_key(self, key: Optional[bytes]) -> None:
        """Encrypt the files from now on with `key` (None: plain); the current file ends here."""
        _record.check_key(key)
        with self._use() as s:
            errbuf = _errbuf()
            k = ffi.new("uint8_t[]", bytes(key)) if key is not None else ffi.NULL
            check(lib.hw_record_set_key(s, k, errbuf), errbuf)

    def recording(self) -> "_record.RecordStats":
        """The recorder's counters (of the last recording when none runs)."""
        with self._use() as s:
            st = ffi.new("struct hw_record_stats *")
            lib.hw_record_stats(s, st)
            return _record.stats_from_cdata(st)

    # ---- RTP and RTCP on the endpoints named (rtp.c) ----

    def rtp_init(self, max_endpoints: int = 16384, max_streams: int = 16384) -> None:
        """Turn RTP tracking on (once): the tables are sized here, never on the packet path."""
        with self._use() as s:
            errbuf = _errbuf()
            check(lib.hw_rtp_init(s, max_endpoints, max_streams, errbuf), errbuf)

    def rtp_watch(self, endpoint: "_rtp.Endpoint") -> None:
        """Analyse packets to or from this endpoint (from endpoint.from_ns on)."""
        c = _rtp.endpoint_to_cdata(endpoint)
        with self._use() as s:
            errbuf = _errbuf()
            check(lib.hw_rtp_watch(s, c, errbuf), errbuf)

    def rtp_forget(self, tag: int) -> int:
        """Drop a call's endpoints and streams; returns how many endpoints went."""
        with self._use() as s:
            return lib.hw_rtp_forget(s, tag)

    def rtp_streams(self, tag: int = 0) -> list:
        """The streams of a call (tag 0: of every call)."""
        with self._use() as s:
            st = ffi.new("struct hw_rtp_stats *")
            lib.hw_rtp_stats(s, st)
            buf = ffi.new("struct hw_rtp_stream[]", max(1, st.streams))
            n = lib.hw_rtp_read(s, tag, buf, st.streams)
            return [_rtp.stream_from_cdata(buf[i]) for i in range(n)]

    def rtp_stats(self) -> dict:
        with self._use() as s:
            st = ffi.new("struct hw_rtp_stats *")
            lib.hw_rtp_stats(s, st)
            return _rtp.stats_from_cdata(st)

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            if self._users:
                lib.hw_session_break(self._s)
            while self._users:
                self._cond.wait(0.1)
            lib.hw_session_close(self._s)
            self._s = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_s", None) is not None and not getattr(self, "_closed", True):
            self.close()
