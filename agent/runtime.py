"""The agent: one process, its services and named threads, start and shutdown.

The core knows none of its faces: the entry point (agent.cli.box) builds the
REST face and the serial console and attaches them (Agent.attach); the agent
starts them after its services and stops them first.  Threads: capture and
dispatcher (per capture run), consumers (supervises the worker process that
runs the detectors: agent.consumers), store-writer, stats (samples, heartbeats,
systemd watchdog), one per service on the bus (the fields made in
Agent.__init__: analysis, detectors, deception, threats, calls, jobs, eve,
protologs, tally), the jobs' workers (jobs-worker-N), and the faces' own (api and its
workers, console).  SIGINT/SIGTERM stop the capture (flows are flushed onto
the bus), the faces, then the services and the store."""
import concurrent.futures
import logging
import platform
import shutil
import signal
import sys
import threading
import time

from agent import __version__, log as agentlog, memory
from agent.auth import KeyStore
from agent.bus import Bus, now_iso
from agent.capture.run import CaptureRequest
from agent.capture.control import CaptureService
from agent.capture.sources import await_interface
from agent.config import Config
from agent.consumers import Consumers
from agent.errors import AgentError, validation
from agent.firstboot import write_private
from agent.health import Health
from agent.sdnotify import Notifier
from agent.analysis.windowsets import AnalysisService
from agent.deception.sessions import DeceptionService
from agent.detectors.live import SERVICES as DETECTOR_SERVICES
from agent.threats import ThreatService
from agent.verify.verifier import Verifier
from agent.calls.live import CallsService
from agent.jobs.runner import JobsService
from agent.outputs.forwarder import EveService
from agent.logs.writer import LogService
from agent.services import Face, start_services
from agent.software import Software
from agent.stats import samples, system
from agent.stats.prometheus import Metrics, TallyService
from agent.store import Store

log = logging.getLogger(__name__)
ADMIN_KEY_FILE = "admin.key"
API_PROBE_S = 5.0        # probe the faces (GET /v1/health through the real socket) this often without a watchdog
PROBES_PER_WATCHDOG = 6  # with one: several tries per watchdog period, so one slow answer under load is no restart
TRIM_S = 60.0            # free heap pages go back to the kernel this often (agent.memory)


class Agent:
    def __init__(self, cfg: Config, console: bool = False):
        memory.tune()
        self.cfg = cfg
        for d in (cfg.data_dir, cfg.data_dir / "pcaps"):   # 0700, also where an older version made them 0755
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
            d.chmod(0o700)
        agentlog.setup(cfg.agent.log_level, stderr=not console)
        self.logs = agentlog.recent
        self.stopping = threading.Event()
        self.health = Health()
        self.bus = Bus(cfg.api.sse_backlog)
        self.store = Store(cfg.db_path)
        self.logs.store = self.store
        store_component = self.health.register("store", critical=True, detail=lambda: {
            "pending_writes": self.store.pending, "written": self.store.written, "dropped": self.store.dropped,
            "schema_version": self.store.version})
        self._store_component = store_component
        self.keys = KeyStore(self.store)
        self.metrics = Metrics(self)
        # the detectors: in the consumer worker (a process of their own), else each in a thread here
        self.consumers = Consumers(cfg, self.bus, self.health) if Consumers.wanted(cfg) else None
        self.capture = CaptureService(cfg, self.bus, self.store, self.health, self.consumers)
        self.verifier = Verifier(cfg.verify)
        self.software = Software(cfg)        # what runs on the box: the card's firmware, the system's slots
        # the services on the bus (agent.services: one thread each), in dependency and start order;
        # each binds to the agent in start(), the faces and the other services call them by these names
        self.analysis = AnalysisService()
        self.detectors = [] if self.consumers else [cls() for cls in DETECTOR_SERVICES]
        self.deception = DeceptionService()
        self.threats = ThreatService()        # calls deception and the verifier
        self.calls = CallsService()
        self.jobs = JobsService()
        self.eve = EveService()
        self.protologs = LogService()         # the protocol logs (self.logs: the agent's own log records)
        self.tally = TallyService()           # reads metrics
        self.faces: list = []
        self.notifier = Notifier()
        self.admin_key_path = None

    def attach(self, face: Face) -> None:
        """A face the entry point built on this agent; started in the order attached."""
        self.faces.append(face)

    # ---- facts the faces share ---------------------------------------------------

    def mode(self) -> str:
        run = self.capture.run
        if run is None:
            return "idle"
        if run.path.endswith("demo.pcap"):
            return "demo"
        return "file" if run.backend == "pcapfile" else "live"

    def data_available(self) -> dict:
        def count(table: str) -> int:
            return self.store.query(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"]
        runs, samples, windows, anomalies = (count(t) for t in ("capture_runs", "stats_samples", "windows",
                                                                  "anomalies"))
        baselines = self.store.query("SELECT COUNT(DISTINCT type) AS n FROM baselines")[0]["n"]
        return {"capture_runs": runs > 0, "stats": samples > 0, "metrics": windows > 0, "anomalies": anomalies > 0,
                "baselines": baselines > 0, "flows": self.capture.run is not None, "capture_run_count": runs,
                "stats_sample_count": samples, "metric_count": windows, "anomaly_count": anomalies}

    def health_report(self) -> dict:
        """GET /v1/health's document (the REST face answers 503 when its status is unhealthy)."""
        return {"status": self.health.status(), "timestamp": now_iso(), "version": __version__, "mode": self.mode(),
                "uptime_seconds": round(time.time() - self.health.started, 1),
                "components": self.health.snapshot(), "losses": self.health.losses(),
                "system": system.system(str(self.cfg.data_dir)), "interfaces": system.interfaces()}

    def status_report(self) -> dict:
        """GET /v1/status: the agent, its mode and which data it has."""
        cap = self.capture.status()
        return {
            "api": {"status": "running", "version": __version__, "timestamp": now_iso()},
            "system": {"mode": self.mode(), "pcap_file": cap.get("file"), "interface": cap.get("interface"),
                       "data_dir": str(self.cfg.data_dir), "window_size": self.capture.window_s,
                       "python_version": platform.python_version(),
                       "platform": sys.platform, "tshark_available": shutil.which("tshark") is not None},
            "data": self.data_available(),
            "capture": {"running": cap["running"], "start_time": cap["start_time"],
                        "interface": cap.get("interface"), "backend": cap.get("backend")},
        }

    def compute_windows(self, source: str, pcap_file: str = "", window_size: int = 0, force: bool = False):
        """POST /v1/windows/compute: a capture file's windows in the background ((status, body) from the
        analysis), or (source live) the window size of the next live capture."""
        size = window_size or self.cfg.analysis.window_s
        if source == "live":
            self.capture.window_s = size
            return {"message": "live windows are computed as traffic comes; the size applies to the next capture",
                    "window_size": size, "capturing": self.capture.run is not None,
                    "live_set": self.analysis.live_set}
        if not pcap_file:
            raise validation("pcap_file is required when source is pcap", field="pcap_file")
        return self.analysis.compute(pcap_file, size, force)

    def stats(self, period_s: int) -> dict:
        """/v1/stats: the samples, capture runs and findings of the last period_s seconds."""
        return samples.summary(self, period_s)

    # ---- lifecycle ------------------------------------------------------------------

    def ensure_admin_key(self) -> None:
        """First start with no keys: an admin key in a 0600 file in the data dir (whole or not at all: a
        client may read it as soon as it appears)."""
        if self.keys.count():
            return
        token, key = self.keys.create("sk", "admin (first start)")
        path = self.cfg.data_dir / ADMIN_KEY_FILE
        write_private(path, (token + "\n").encode())
        self.admin_key_path = path
        print(f"capbox: first start: an admin API key was written to {path}", flush=True)
        log.info("admin key %s written to %s", key.id, path)

    def start(self) -> None:
        self.store.start()
        # a first start's admin key: its scrypt (16 MiB, 50 ms natively; the GIL released) runs on the other
        # CPU while the services, faces and capture start; there before READY
        admin_key = concurrent.futures.ThreadPoolExecutor(1, "admin-key")
        made = admin_key.submit(self.ensure_admin_key)
        admin_key.shutdown(wait=False)
        self.services = start_services(self, [self.analysis, *self.detectors, self.deception, self.threats,
                                               self.calls, self.jobs, self.eve, self.protologs, self.tally])
        for face in self.faces:              # after the services: faces call them
            face.start()
        stats = self.health.register("stats", critical=False)
        self.health.spawn(stats, self._stats_loop)
        self.software.start(self.health)    # before a capture on the card starts: its firmware reloaded
        cap = self.cfg.capture
        if cap.autostart and cap.source:
            if not await_interface(cap.source, cap.interface_wait_s):
                log.warning("no interface %s after %d s", cap.source, cap.interface_wait_s)
            try:
                self.capture.start(CaptureRequest(
                    source=cap.source, backend=cap.backend, bpf=self.capture.autostart_bpf(), snaplen=cap.snaplen,
                    buffer_size_mb=cap.buffer_size_mb, promisc=cap.promisc, fanout_group=cap.fanout_group,
                    pace=cap.pace, loop=cap.loop, trusted=True))
            except AgentError as e:
                log.error("capture did not start: %s", e.message)
        made.result()                       # what ensure_admin_key raised, raised here
        where = " ".join(w for w in (face.where() for face in self.faces) if w)
        self.notifier.send(ready=1, status=f"capbox {__version__}" + (f" on {where}" if where else ""))

    def _stats_loop(self, component) -> None:
        interval = self.cfg.store.stats_interval_s
        watchdog = self.notifier.watchdog_s / PROBES_PER_WATCHDOG
        tick = min(1.0, watchdog) if watchdog else 1.0
        next_sample = time.monotonic() + interval
        next_probe = 0.0
        next_trim = time.monotonic() + TRIM_S
        while not component.stop.wait(tick):
            component.beat()
            self._store_component.beat("running" if self.store.alive else "failed")
            if time.monotonic() >= next_probe:
                next_probe = time.monotonic() + (watchdog or API_PROBE_S)
                if all([face.probe(max(3.0, watchdog)) for face in self.faces]) and watchdog:   # every face probed
                    self.notifier.send(watchdog=1)
            if time.monotonic() >= next_sample:
                next_sample += interval
                self._sample()
            if time.monotonic() >= next_trim:
                next_trim = time.monotonic() + TRIM_S
                memory.trim()

    def _sample(self) -> None:
        status, pps = samples.sample(self.cfg.data_dir, self.capture, self.store, self.bus, self.health)
        self.notifier.send(status=f"{status}; {self.mode()}; {pps:.0f} pps")

    def shutdown(self) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()
        self.notifier.send(stopping=1)
        log.info("shutting down")
        self.capture.stop("shutdown")
        for face in reversed(self.faces):
            face.stop()
        if self.consumers is not None:     # after the faces: nothing reads its ring any more
            self.consumers.stop()
        self.health.stop_all(timeout=5, wake=self.bus.wake_all)
        self.verifier.close()
        self.store.close()
        log.info("stopped")

    def run_forever(self) -> int:
        """Serve until SIGINT or SIGTERM."""
        signalled = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, frame: signalled.set())
        self.start()
        try:
            while not signalled.wait(0.5):
                pass
        finally:
            self.shutdown()
        return 0
