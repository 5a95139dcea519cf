"""Capture control: start and stop the C core on a file or an interface, and
everything the faces ask of a running capture (status, metrics, flows, flow
export, recording).

Two threads per capture: `capture` stays in C (hw_session_run, GIL
released) and never waits on Python; `dispatcher` moves events to the consumer
worker's shared ring and the bus (agent.consumers.dispatch_events), drains the flow
and window rings onto the bus (non-blocking, drops counted) and keeps the rates.
Exporters and the recorder are C too (agent/capture/export.py and
recording.py keep their settings across captures)."""
import dataclasses
import ipaddress
import json
import logging
import pathlib
import socket
import threading
import time
from typing import Optional

import hwdrivers
from agent.bus import EVENT_CHANNELS, iso
from agent.capture.export import ExportManager
from agent.capture.run import CaptureRequest, Run
from agent.capture.recording import RecordingManager
from agent.consumers import dispatch_events
from agent.config import DEMO_PCAP, Config
from agent.errors import AgentError, validation
from agent.events import CaptureState, FlowExpired, WindowClosed
from agent.confine import confine
from agent.store import settings
from agent.store.settings import Settings
from hwdrivers import CaptureConfig, CaptureError, ErrorCode, RunResult, Session

log = logging.getLogger(__name__)

FLOW_RING = 1 << 16
FLOW_SEARCH = 100000     # flows looked through for one id (the table holds up to flows.max_flows)
FLOW_SORTS = ("bytes", "packets", "last", "first")


class CaptureService:
    def __init__(self, cfg: Config, bus, store, health, consumers=None):
        self.cfg = cfg
        self.consumers = consumers             # agent.consumers.Consumers, or None: every event goes on the bus
        self.bus = bus
        self.store = store
        self.health = health
        self._lock = threading.RLock()
        self.run: Optional[Run] = None
        self.last: Optional[Run] = None
        self.settings = Settings(store)
        meter = {"enabled": cfg.flows.enabled, "idle_timeout_s": cfg.flows.idle_timeout_s,
                 "active_timeout_s": cfg.flows.active_timeout_s, "sampling_rate": cfg.flows.sampling_rate}
        saved = self.settings.get(settings.FLOW_METER, {})
        self.flow_meter = {k: saved.get(k, v) for k, v in meter.items()}
        self.window_s = cfg.analysis.window_s  # traffic windows of the captures started from now on
        self.tokens: list = []                 # honeytokens the C core searches payloads for (deception)
        self.export = ExportManager(cfg, store)
        self.recording = RecordingManager(cfg, self.settings)
        self.session_hooks: list = []          # fn(session) for each new session before its first packet (logs)
        self.component = health.register("capture", critical=True, detail=self._health_detail)
        health.register_losses("event_path", self.event_losses)
        self.component.state = "idle"

    # ---- what can run here ----------------------------------------------------

    def backends(self) -> list:
        return [dataclasses.asdict(b) for b in hwdrivers.backends()]

    def _resolve(self, req: CaptureRequest) -> tuple:
        """(backend, source path or interface) for a request, or AgentError."""
        source = req.source.strip()
        if req.backend == "fpga":   # the card, by its device path: the configured one only
            device = self.cfg.firmware.device
            if source and source != device:
                raise AgentError("FORBIDDEN", f"{source!r} is not this box's capture card ({device})",
                                 {"field": "interface", "device": device})
            return "fpga", device
        if not source:
            raise validation("give an interface or a file", field="interface")
        if source == "demo":
            source = str(DEMO_PCAP)
        names = {b["name"]: b for b in self.backends()}
        if req.backend and req.backend not in names:
            raise validation(f"unknown backend {req.backend!r}", field="backend", choices=sorted(names))
        is_file = req.backend == "pcapfile" or "/" in source or source.endswith((".pcap", ".pcapng", ".cap"))
        if is_file:
            if req.backend and req.backend != "pcapfile":
                raise validation(f"backend {req.backend} captures from interfaces, not files", field="backend")
            if req.trusted and pathlib.Path(source).is_file():   # a path the operator named; else a capture dir's file
                return "pcapfile", str(pathlib.Path(source).resolve())
            return "pcapfile", self._confine(source)
        try:
            socket.if_nametoindex(source)
        except OSError:
            raise validation(f"no interface named {source!r}", field="interface") from None
        backend = req.backend or ("afpacket" if names["afpacket"]["available"] else "pcap")
        if not names[backend]["available"]:
            raise AgentError("BACKEND_UNAVAILABLE", f"backend {backend} cannot run here: {names[backend]['reason']}",
                             {"backend": backend})
        return backend, source

    def _confine(self, name: str) -> str:
        return confine(name, self.cfg.pcap_dirs(), "file", "capture file")

    # ---- start / stop -------------------------------------------------------

    def start(self, req: CaptureRequest) -> dict:
        with self._lock:
            if self.run is not None:
                raise AgentError("ALREADY_CAPTURING", "a capture is already running; stop it first",
                                 {"backend": self.run.backend, "source": self.run.path})
            backend, path = self._resolve(req)
            meter = self.flow_meter
            cfg = CaptureConfig(
                source=path, backend=backend, bpf=req.bpf, snaplen=req.snaplen,
                buffer_size_mb=req.buffer_size_mb, promisc=req.promisc,
                fanout_group=None if req.fanout_group < 0 else req.fanout_group,
                pace=req.pace if backend == "pcapfile" else 0.0, loop=req.loop and backend == "pcapfile",
                max_flows=self.cfg.flows.max_flows, idle_timeout_s=meter["idle_timeout_s"],
                active_timeout_s=meter["active_timeout_s"], events=frozenset(EVENT_CHANNELS),
                event_ring=self.cfg.capture.event_ring, flow_ring=FLOW_RING, sample_rate=meter["sampling_rate"],
                window_s=self.window_s, long_flow_s=self.cfg.analysis.long_lived_s, tunnels=self.cfg.tunnels)
            try:
                session = Session(cfg)
                if self.tokens:
                    session.set_tokens(self.tokens)
            except CaptureError as e:
                raise _capture_error(e) from None
            # before the first packet: exporters and the recorder see all of them
            self.export.attach(session)
            self.recording.attach(session, path if backend != "pcapfile" else pathlib.Path(path).name)
            for hook in self.session_hooks:
                hook(session)
            run_id = self.store.write(lambda c: c.execute(
                "INSERT INTO capture_runs (started, backend, source, bpf) VALUES (?, ?, ?, ?)",
                (time.time(), backend, path, req.bpf)).lastrowid)
            run = Run(req, backend, path, session, run_id)
            if self.consumers is not None:
                run.ring = self.consumers.ensure_started()
            self.run = run
            for name, target in (("capture", self._capture_loop), ("dispatcher", self._dispatch_loop)):
                t = threading.Thread(target=self._guard, args=(run, target), name=f"{name}-{run_id}", daemon=True)
                run.threads.append(t)
            log.info("capture %d started: %s on %s%s", run_id, backend, path, f" filter {req.bpf!r}" if req.bpf else "")
            # said before the threads run: a consumer sees the start before the run's first window or flow
            self.bus.publish("capture:state", "capture_started", CaptureState(**self._describe(run)), source="capture")
            for t in run.threads:
                t.start()
            self.component.beat("running")
            return self.status()

    def autostart_bpf(self) -> str:
        """The filter of the capture that starts with the agent: the last one set over REST, else the file's."""
        return self.settings.get(settings.CAPTURE_BPF, self.cfg.capture.bpf)

    def set_tokens(self, tokens: list) -> None:
        """The honeytokens to look for, in this capture and the next ones."""
        with self._lock:
            self.tokens = list(tokens)
            if (run := self.run) is not None:
                try:
                    run.session.set_tokens(self.tokens)
                except CaptureError as e:
                    log.error("honeytokens not searched for: %s", e.message)

    def stop(self, reason: str = "manual") -> dict:
        with self._lock:
            if (run := self.run) is None:
                return {**self.status(), "stopped": False, "message": "no active capture"}
            self._finish(run, reason)
            return {**self.status(), "stopped": True, "reason": reason}

    def _finish(self, run: Run, reason: str) -> None:
        """Stop the threads, flush the flows onto the bus, record the run."""
        with self._lock:
            if run.stopped is not None:
                return
            run.reason = reason
            run.stop.set()
            try:
                run.session.stop()
            except CaptureError:
                pass
        for t in run.threads:
            if t is not threading.current_thread():
                t.join(10)
        with self._lock:
            self._drain(run, final=True)
            self.recording.detach(run.session)
            self.export.detach(run.session)
            counters = run.session.counters()
            run.stopped = time.time()
            run.session.close()
            run.final = self._counter_summary(counters)
            if self.run is run:
                self.run = None
            self.last = run
            self.component.beat("idle")
        self.store.submit_nowait(lambda c, stats=json.dumps(run.final): c.execute(
            "UPDATE capture_runs SET stopped = ?, reason = ?, stats = ? WHERE id = ?",
            (run.stopped, reason, stats, run.id)))
        log.info("capture %d stopped (%s): %d packets", run.id, reason, counters.packets)
        self.bus.publish("capture:state", "capture_stopped", CaptureState(**self._describe(run), reason=reason),
                         source="capture")

    def _guard(self, run: Run, target) -> None:
        """A capture thread that fails stops its capture and says why; the agent goes on."""
        try:
            target(run)
        except Exception as e:
            log.exception("capture %d: %s failed", run.id, threading.current_thread().name)
            run.error = f"{type(e).__name__}: {e}"
            self.component.fail(run.error)
            threading.Thread(target=self._finish, args=(run, "error"), daemon=True).start()

    def _capture_loop(self, run: Run) -> None:
        deadline = time.monotonic() + run.req.duration if run.req.duration > 0 else None
        while not run.stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                threading.Thread(target=self._finish, args=(run, "duration"), daemon=True).start()
                return
            try:
                result = run.session.run(timeout_ms=200)
            except CaptureError as e:
                run.error = e.message
                log.error("capture %d: %s", run.id, e.message)
                threading.Thread(target=self._finish, args=(run, "error"), daemon=True).start()
                return
            if result == RunResult.EOF:
                threading.Thread(target=self._finish, args=(run, "eof"), daemon=True).start()
                return

    def _dispatch_loop(self, run: Run) -> None:
        next_sample = 0.0
        while not run.stop.is_set():
            busy = self._drain(run)
            now = time.time()
            if now >= next_sample:
                c = run.session.counters()
                run.rates.sample(now, c.packets, c.bytes, c.backend_dropped + c.backend_if_dropped)
                next_sample = now + 1.0
                self.component.beat("running")
            if not busy:
                run.stop.wait(0.02)

    def _drain(self, run: Run, final: bool = False) -> bool:
        """Move events and expired flows from the C rings onto the bus (and the consumer worker's ring)."""
        folding = self.consumers.folding if self.consumers is not None else None    # the worker's DNS folding
        if final:
            while run.session.flush():      # the last flows and TCP source summaries, as the rings take them
                self._take_flows(run, 1 << 30)
                dispatch_events(run.session, run.ring, self.bus, 1 << 30, folding=folding)
        taken = dispatch_events(run.session, run.ring, self.bus, folding=folding)
        flows = self._take_flows(run, 4096)
        for w in (windows := run.session.read_windows(64)):
            self.bus.publish("windows:closed", "window_closed", WindowClosed(w, run.id), source="capture")
        return bool(taken or flows or windows)

    def _take_flows(self, run: Run, limit: int) -> int:
        """Expired flows onto flows:expired; while nobody subscribes (or the meter is off) they are dropped from
        the ring without becoming Python objects (at full rate, most of the dispatcher's time).  How many."""
        if not (self.flow_meter["enabled"] and self.bus.listening("flows:expired")):
            return run.session.skip_flows(limit)
        flows = run.session.read_flows(limit)
        for f in flows:
            self.bus.publish("flows:expired", "flow_expired", FlowExpired(f), source="capture")
        return len(flows)

    # ---- what the faces read ---------------------------------------------------

    def _describe(self, run: Run) -> dict:
        return {"run_id": run.id, "backend": run.backend, "source": run.path,
                "interface": None if run.backend == "pcapfile" else run.path,
                "file": run.path if run.backend == "pcapfile" else None, "bpf": run.bpf}

    @staticmethod
    def _counter_summary(c) -> dict:
        return {"packets": c.packets, "bytes": c.bytes, "malformed": c.malformed,
                "dropped": c.backend_dropped + c.backend_if_dropped, "flows_created": c.flows_created,
                "flows_active": c.flows_active, "events_dropped": {k: v for k, v in c.events_dropped.items() if v}}

    def status(self) -> dict:
        with self._lock:
            run = self.run
            if run is None:
                last = self.last
                return {"running": False, "state": "idle", "interface": None, "backend": None, "file": None,
                        "bpf": None, "start_time": None, "duration": None, "output_file": None,
                        "message": "no active capture",
                        "last_run": None if last is None else {
                            **self._describe(last), "start_time": iso(last.started), "stop_time": iso(last.stopped),
                            "reason": last.reason, "error": last.error, "stats": last.final}}
            c = run.session.counters()
        return {"running": True, "state": "running", **self._describe(run), "start_time": iso(run.started),
                "start_ts": run.started,
                "duration": round(time.time() - run.started, 3), "duration_limit": run.req.duration or None,
                "output_file": self.recording.current_path(run.session), "flow_meter": dict(self.flow_meter),
                "stats": self._counter_summary(c)}

    def _require_run(self) -> Run:
        run = self.run
        if run is None:
            raise AgentError("NOT_CAPTURING", "no active capture", {"hint": "POST /v1/capture/start"})
        return run

    def metrics(self) -> dict:
        run = self._require_run()
        c = run.session.counters()
        bus_dropped = sum(s["dropped"] for s in self.bus.stats()["subscribers"])
        return {
            "running": True, "backend": run.backend, "source": run.path,
            "duration": round(time.time() - run.started, 3),
            "pps": round(run.rates.pps, 1), "bps": round(run.rates.bps, 1),
            "packets": c.packets, "bytes": c.bytes, "captured_bytes": c.captured_bytes,
            "received": c.backend_received, "filtered_out": c.backend_filtered,
            "drops": {
                "kernel": c.backend_dropped, "interface": c.backend_if_dropped,
                "event_ring": sum(c.events_dropped.values()), "flow_ring": c.flow_records_dropped,
                "flow_table": c.packets_not_metered, "bus_subscribers": bus_dropped,
                "shared_ring": self.consumers.dropped() if self.consumers is not None else 0,
            },
            "drop_rate": round((c.backend_dropped + c.backend_if_dropped) / c.backend_received, 6)
            if c.backend_received else 0.0,
            "malformed": {"total": c.malformed, "by_reason": {k: v for k, v in c.malformed_by.items() if v}},
            "truncated": {"total": c.truncated, "by_reason": {k: v for k, v in c.truncated_by.items() if v}},
            "flows": {"active": c.flows_active, "created": c.flows_created, "expired_idle": c.flows_expired_idle,
                      "expired_active": c.flows_expired_active, "ended": c.flows_expired_end,
                      "evicted": c.flows_evicted},
            "events": {k: c.events[k] for k in c.events if c.events[k]},
            "rings": {"event_ring_capacity": run.session.config.event_ring, "flow_ring_capacity": FLOW_RING,
                      "events_dropped": {k: v for k, v in c.events_dropped.items() if v}},
            "protocols": {k: c.layer_packets[k] for k in c.layer_packets if c.layer_packets[k]},
            "applications": {k: c.app_packets[k] for k in c.app_packets if c.app_packets[k]},
            "history": list(run.rates.history)[-60:],
        }

    def flows(self, limit: int = 100, min_packets: int = 0, sort: str = "bytes", proto: str = "",
              host: str = "", port: int = 0, vlan: int = -1) -> dict:
        run = self._require_run()
        if sort not in FLOW_SORTS:
            raise validation(f"sort must be one of {', '.join(FLOW_SORTS)}", field="sort")
        if host:
            try:
                host = str(ipaddress.ip_address(host))
            except ValueError:
                raise validation(f"{host!r} is not an IP address", field="host") from None
        filtered = bool(min_packets or proto or host or port or vlan >= 0)
        # the C core picks the top flows; filters then look at a wider top
        rows = run.session.active_flows(limit=50000 if filtered else limit, order=sort)

        def keep(f) -> bool:
            return (f.total_packets >= min_packets and (not proto or f.proto_name == proto)
                    and (not host or host in (f.src, f.dst)) and (not port or port in (f.sport, f.dport))
                    and (vlan < 0 or f.vlan == vlan))
        out = [f.as_dict() for f in rows if keep(f)][:limit]
        return {"count": len(out), "active": run.session.counters().flows_active, "sort": sort, "flows": out}

    def flow(self, flow_id: int):
        """A flow still in the running capture's table (the most recently active FLOW_SEARCH), by its id."""
        run = self.run
        if run is not None:
            for f in run.session.active_flows(limit=FLOW_SEARCH, order="last"):
                if f.id == flow_id:
                    return f
        raise AgentError("FLOW_NOT_FOUND", f"flow {flow_id} is not in the running capture's flow table",
                         {"flow_id": flow_id, "hint": "an ended flow's packets: ?since&until&bpf= with its hosts"})

    def set_filter(self, bpf: str) -> dict:
        """Replace the running capture's BPF filter ("" for none)."""
        run = self._require_run()
        try:
            run.session.set_filter(bpf)
        except CaptureError as e:
            raise _capture_error(e) from None
        run.bpf = bpf
        self.settings.put(settings.CAPTURE_BPF, bpf)
        log.info("capture %d: filter %r", run.id, bpf)
        return self.status()

    def set_flow_meter(self, enabled: bool, idle_timeout_s: int, active_timeout_s: int,
                       sampling_rate: int = 1) -> dict:
        """Timeouts and sampling apply to the next capture started; enabling controls flows:expired."""
        with self._lock:
            self.flow_meter = {"enabled": enabled, "idle_timeout_s": idle_timeout_s,
                               "active_timeout_s": active_timeout_s, "sampling_rate": sampling_rate}
            self.settings.put(settings.FLOW_METER, self.flow_meter)
            applies = "next capture" if self.run else "next capture started"
            return {**self.flow_meter, "applies_to": applies, "running": self.run is not None}

    # ---- flow export and recording (applied to the running capture and the next) ----

    def _session(self):
        return self.run.session if self.run is not None else None

    def add_exporter(self, **fields) -> dict:
        with self._lock:
            return self.export.add(self._session(), **fields)

    def remove_exporter(self, exporter_id: int) -> dict:
        with self._lock:
            return self.export.remove(self._session(), exporter_id)

    def exporter(self, exporter_id: int) -> dict:
        with self._lock:
            return self.export.get(self._session(), exporter_id)

    def exporters(self) -> list:
        with self._lock:
            return self.export.list(self._session())

    def _source_name(self) -> str:
        run = self.run
        if run is None:
            return ""
        return run.path if run.backend != "pcapfile" else pathlib.Path(run.path).name

    def start_recording(self, **settings) -> dict:
        with self._lock:
            return self.recording.start(self._session(), self._source_name(), **settings)

    def stop_recording(self) -> dict:
        with self._lock:
            return self.recording.stop(self._session())

    def recording_status(self) -> dict:
        with self._lock:
            return self.recording.status(self._session())

    def set_encryption(self, enable: bool, cipher_suite: str, key_file: str) -> dict:
        with self._lock:
            return self.recording.set_encryption(self._session(), enable, cipher_suite, key_file)

    def recordings(self) -> dict:
        with self._lock:
            out = self.recording.list(self._session())
            out["recording"] = self.recording.status(self._session())
            return out

    def packets(self, window, full_key: bool) -> tuple:
        with self._lock:
            current = self._session()
        return self.recording.packets(current, window, full_key)

    def kept(self, window) -> dict:
        with self._lock:
            current = self._session()
        return self.recording.kept(current, window)

    def delete_recording(self, name: str) -> dict:
        with self._lock:
            return self.recording.delete(self._session(), name)

    def counters(self):
        run = self.run
        return None if run is None else run.session.counters()

    def record_counters(self) -> Optional[dict]:
        run = self.run
        return None if run is None else run.session.record_counters()

    def event_losses(self) -> dict:
        """Packets and events lost between the wire and the detectors: the kernel or interface, a full event
        ring (this capture or the last), the worker's ring or restarts, a bus subscriber (since the start)."""
        with self._lock:
            run = self.run
            c = run.session.counters() if run is not None else None
            last = self.last.final if run is None and self.last is not None and self.last.final else {}
        ring = c.events_dropped if c is not None else last.get("events_dropped", {})
        ring = {f"event_ring:{k}": v for k, v in ring.items() if v}
        if c is not None:  # before the event path: the kernel's or the interface's
            ring.update({k: v for k, v in (("kernel", c.backend_dropped), ("interface", c.backend_if_dropped)) if v})
        elif last.get("dropped"):
            ring["kernel_or_interface"] = last["dropped"]
        bus = {f"bus:{s['name'] or 'anonymous'}": s["dropped"] for s in self.bus.stats()["subscribers"] if s["dropped"]}
        worker = self.consumers.losses() if self.consumers is not None else {}
        return {**ring, **worker, **bus}

    def _health_detail(self) -> dict:
        run = self.run
        if run is None:
            return {"capturing": False}
        c = run.session.counters()
        return {"capturing": True, "backend": run.backend, "packets_captured": c.packets,
                "dropped": c.backend_dropped + c.backend_if_dropped}


def _capture_error(e: CaptureError) -> AgentError:
    code = e.code
    if code in (ErrorCode.ARG, ErrorCode.FILTER, ErrorCode.FORMAT, ErrorCode.TRUNCATED, ErrorCode.NODEV):
        field = {ErrorCode.FILTER: "bpf", ErrorCode.NODEV: "interface"}.get(code, "file")
        return validation(e.message, field=field, capture_error=code.name)
    if code == ErrorCode.STATE:   # e.g. the card runs no firmware yet, or is in use
        return AgentError("CONFLICT", e.message, {"capture_error": code.name})
    if code in (ErrorCode.PERM, ErrorCode.UNSUPPORTED):
        return AgentError("BACKEND_UNAVAILABLE", e.message, {"capture_error": code.name})
    if code == ErrorCode.OPEN:
        return validation(e.message, field="interface", capture_error=code.name)
    return AgentError("CAPTURE_ERROR", e.message, {"capture_error": getattr(code, "name", str(code))})
