"""The agent: one process, its services and named threads, start and shutdown.

Threads: capture and dispatcher (per capture run), store-writer, api (cheroot
and its workers), stats (samples, heartbeats, systemd watchdog), one per
service in SERVICES below (analysis, live calls, jobs; detectors, verifier)
and the jobs' workers (jobs-worker-N).  SIGINT/SIGTERM stop the capture (flows are
flushed onto the bus), the API, then the store."""
import json
import logging
import os
import ssl
import signal
import threading
import time

from agent import __version__, log as agentlog
from agent.api import analysis as analysis_routes
from agent.api import capture as capture_routes
from agent.api import deception as deception_routes
from agent.api import detection as detection_routes
from agent.api import events as event_routes
from agent.api import firmware as firmware_routes
from agent.api import export as export_routes
from agent.api import jobs as job_routes
from agent.api import pcap as pcap_routes
from agent.api import platform as platform_routes
from agent.api import system as system_routes
from agent.api import recording as recording_routes
from agent.api.app import Api
from agent.api.server import Limits, Server, Tls
from agent.auth import KeyStore
from agent.bus import Bus
from agent.capture.service import CaptureRequest, CaptureService
from agent.config import Config, ConfigError
from agent.console.service import ConsoleService
from agent.errors import AgentError
from agent.fwservice import FirmwareService
from agent.health import Health
from agent.ratelimit import AuthThrottle, RateLimiter
from agent.sdnotify import Notifier
from agent.analysis.service import AnalysisService
from agent.deception.service import DeceptionService
from agent.detectors.service import SERVICES as DETECTOR_SERVICES
from agent.threats import ThreatService
from agent.update.service import UpdateService
from agent.verify.verifier import Verifier
from agent.calls.service import CallsService
from agent.jobs.service import JobsService
from agent.outputs.forwarder import EveService
from agent.services import start_services
from agent.stats import system
from agent.stats.prometheus import Metrics, TallyService
from agent.store import Store

log = logging.getLogger(__name__)
ADMIN_KEY_FILE = "admin.key"
API_PROBE_S = 5.0        # GET /v1/health through the real socket this often (without a systemd watchdog)
# The services on the bus, in start order (agent.services: one thread each).
SERVICES = [AnalysisService, *DETECTOR_SERVICES, ThreatService, DeceptionService, CallsService, JobsService,
            EveService, TallyService, ConsoleService]


class Agent:
    def __init__(self, cfg: Config, console: bool = False):
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
        a = cfg.api
        self.ratelimit = RateLimiter({"get": a.rate_get, "write": a.rate_write, "verify": a.rate_verify,
                                      "verify_dns": a.rate_verify_dns, "threats": a.rate_threats,
                                      "deception_start": a.rate_deception_start})
        self.auth_throttle = AuthThrottle()
        self.capture = CaptureService(cfg, self.bus, self.store, self.health)
        self.verifier = Verifier(cfg.verify)
        self.firmware = FirmwareService(cfg)
        self.update = UpdateService(cfg)
        self.api = Api(self)
        for module in (platform_routes, capture_routes, export_routes, recording_routes, pcap_routes,
                       analysis_routes, event_routes, detection_routes, deception_routes, firmware_routes, job_routes,
                       system_routes):
            module.register(self.api)
        host, port = cfg.listen
        tls = Tls(a.tls_cert, a.tls_key, a.client_ca) if a.tls_cert else None
        try:
            self.server = Server(self.api.app, host, port, a.threads,
                                 Limits(a.max_connections, a.max_connections_per_client, a.idle_timeout_s,
                                        max(4, a.threads // 4)), tls)
        except ssl.SSLError as e:
            raise ConfigError("api.tls_cert", f"cannot load the TLS certificate and key: {e}") from None
        self.notifier = Notifier()
        self.admin_key_path = None

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

    def stats(self, period_s: int) -> dict:
        since = time.time() - period_s
        rows = self.store.query(
            "SELECT COUNT(*) AS samples, MIN(ts) AS first, MAX(ts) AS last, MAX(pps) AS max_pps, AVG(pps) AS avg_pps,"
            " MAX(bps) AS max_bps, AVG(bps) AS avg_bps, MAX(flows_active) AS max_flows_active,"
            " AVG(cpu_percent) AS avg_cpu_percent, MAX(memory_percent) AS max_memory_percent"
            " FROM stats_samples WHERE ts >= ?", (since,))[0]
        runs = self.store.query(
            "SELECT id, started, stopped, backend, source, reason, stats FROM capture_runs"
            " WHERE stopped IS NULL OR stopped >= ? ORDER BY id DESC LIMIT 20", (since,))
        runs = [{**r, "stats": json.loads(r["stats"]) if r["stats"] else None} for r in runs]
        # the runs that ended in the period (whole), and the one going on
        ended = self.store.query(
            "SELECT COALESCE(SUM(json_extract(stats, '$.packets')), 0) AS packets,"
            " COALESCE(SUM(json_extract(stats, '$.malformed')), 0) AS malformed,"
            " COALESCE(SUM(json_extract(stats, '$.dropped')), 0) AS dropped"
            " FROM capture_runs WHERE stopped >= ? AND stats IS NOT NULL", (since,))[0]
        c = self.capture.counters()
        run = self.capture.run
        packets = ended["packets"] + (c.packets if c else 0)
        capture = {"packets_captured": packets,
                   "packets_analyzed": packets - ended["malformed"] - (c.malformed if c else 0),
                   "packets_dropped": ended["dropped"] + ((c.backend_dropped + c.backend_if_dropped) if c else 0),
                   "capture_rate_pps": round(run.rates.pps, 1) if run else 0.0,
                   "flows_active": c.flows_active if c else 0, "running": run is not None}
        threats = self.threats.stats(since)
        verification = self.verifier.stats(since)
        verification.update(attacks_confirmed=threats.pop("attacks_confirmed"),
                            attacks_refuted=threats.pop("attacks_refuted"))
        return {"since": since, "capture": capture, "detection": threats["detection"], "verification": verification,
                "path_statistics": verification["path_statistics"], "deception": self.deception.stats(since),
                "top_attackers": threats["top_attackers"], "samples": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in rows.items()},
                "capture_runs": runs, "bus": self.bus.stats(),
                "store": {"pending_writes": self.store.pending, "written": self.store.written,
                          "dropped": self.store.dropped}}

    # ---- lifecycle ------------------------------------------------------------------

    def ensure_admin_key(self) -> None:
        """First start with no keys: an admin key in a 0600 file in the data dir."""
        if self.keys.count():
            return
        token, key = self.keys.create("sk", "admin (first start)")
        path = self.cfg.data_dir / ADMIN_KEY_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        os.chmod(path, 0o600)
        self.admin_key_path = path
        print(f"capbox: first start: an admin API key was written to {path}", flush=True)
        log.info("admin key %s written to %s", key.id, path)

    def start(self) -> None:
        self.store.start()
        self.ensure_admin_key()
        self.services = start_services(self, SERVICES)   # before the API: routes read them
        api = self.health.register("api", critical=True, detail=lambda: {
            "listen": f"{self.server.scheme}://{self.server.host}:{self.server.port}",
            "event_streams": self.sse_slots.total(), "connections": self.server.connections(),
            "auth": dict(self.keys.counts)})
        self._api_component = api
        self.health.spawn(api, lambda c: self.server.serve(c))
        stats = self.health.register("stats", critical=False)
        self.health.spawn(stats, self._stats_loop)
        self.firmware.reload()              # before a capture on the card starts
        cap = self.cfg.capture
        if cap.autostart and cap.source:
            try:
                self.capture.start(CaptureRequest(
                    source=cap.source, backend=cap.backend, bpf=self.capture.autostart_bpf(), snaplen=cap.snaplen,
                    buffer_size_mb=cap.buffer_size_mb, promisc=cap.promisc, fanout_group=cap.fanout_group,
                    pace=cap.pace, loop=cap.loop, trusted=True))
            except AgentError as e:
                log.error("capture did not start: %s", e.message)
        self.notifier.send(ready=1, status=f"capbox {__version__} on {self.server.host}:{self.server.port}")

    def _stats_loop(self, component) -> None:
        interval = self.cfg.store.stats_interval_s
        watchdog = self.notifier.watchdog_s / 2 if self.notifier.watchdog_s else 0
        tick = min(1.0, watchdog) if watchdog else 1.0
        next_sample = time.monotonic() + interval
        next_probe = 0.0
        while not component.stop.wait(tick):
            component.beat()
            self._store_component.beat("running" if self.store.alive else "failed")
            if time.monotonic() >= next_probe:
                next_probe = time.monotonic() + (watchdog or API_PROBE_S)
                # the API is alive only if it answers through its own socket; systemd restarts a
                # box whose API does not (a dead server thread, every worker stuck)
                if self.server.ready and self.server.probe():
                    self._api_component.beat()
                    if watchdog:
                        self.notifier.send(watchdog=1)
            if time.monotonic() >= next_sample:
                next_sample += interval
                self._sample()

    def _sample(self) -> None:
        sysinfo = system.system(str(self.cfg.data_dir))
        run = self.capture.run
        c = self.capture.counters()
        row = (time.time(), c.packets if c else 0, c.bytes if c else 0,
               (c.backend_dropped + c.backend_if_dropped) if c else 0, c.flows_active if c else 0,
               run.rates.pps if run else 0.0, run.rates.bps if run else 0.0,
               sysinfo["cpu_percent"], sysinfo["memory"]["percent"])
        self.store.submit_nowait(lambda conn: conn.execute(
            "INSERT INTO stats_samples VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row))
        status = self.health.status()
        self.bus.publish("system:health", "health", {"status": status, "cpu_percent": sysinfo["cpu_percent"],
                                                      "memory_percent": sysinfo["memory"]["percent"],
                                                      "pps": row[5], "bps": row[6]}, source="agent")
        self.notifier.send(status=f"{status}; {self.mode()}; {row[5]:.0f} pps")

    def shutdown(self) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()
        self.notifier.send(stopping=1)
        log.info("shutting down")
        self.capture.stop("shutdown")
        self.server.stop()
        self.health.stop_all(timeout=5)
        self.verifier.close()
        self.store.close()
        log.info("stopped")

    def run_with_console(self) -> int:
        """The agent and the Textual console in this process (a terminal at the box)."""
        from tui.app import CapboxApp
        from tui.source import local
        self.start()
        app = CapboxApp(local(self))
        for sig in (signal.SIGTERM,):
            signal.signal(sig, lambda signum, frame: app.call_from_thread(app.exit))
        try:
            app.run()
        finally:
            self.shutdown()
        return 0

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
