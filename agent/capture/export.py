"""Flow exporters of the agent: collectors configured in capbox.toml
(export.collectors) or over REST.  Each applies to the running capture at
once and to every capture started later; the C core encodes and sends, this
keeps the list, the ids and the counters across captures.  Those added over
REST are kept in the store and come back, with their ids, after a restart
(the configured ones come from the configuration each time, first)."""
import dataclasses
import ipaddress
import json
import logging
import socket
import threading
import time
from typing import Optional

from agent.addresses import parse_collector
from agent.config import Config
from agent.errors import AgentError, not_found, validation
from hwdrivers import CaptureError, ErrorCode, ExporterConfig, Session
from hwdrivers.export import MAX_EXPORTERS

log = logging.getLogger(__name__)

COUNTERS = ("flows", "records", "messages", "bytes", "template_sends", "records_dropped", "records_skipped",
            "send_errors", "reconnects")


@dataclasses.dataclass
class Exporter:
    id: int
    config: ExporterConfig
    created: float
    source: str                                  # "config" or "api"
    totals: dict = dataclasses.field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    core_id: Optional[int] = None                # its id in the running session
    error: Optional[str] = None                  # why the running capture does not export to it

    def describe(self, live=None) -> dict:
        c = self.config
        d = {"id": self.id, "collector_ip": c.host, "collector_port": c.port, "version": c.version,
             "transport": c.transport, "export_interval_sec": c.export_interval_ms // 1000,
             "template_refresh_sec": c.template_refresh_s, "observation_domain": c.observation_domain,
             "biflow": c.biflow, "created": self.created, "source": self.source,
             "state": "error" if self.error else "exporting" if self.core_id is not None else "waiting for a capture",
             "error": self.error, "connected": None, "sequence": None, "sample_rate": None, "last_error": None}
        counters = dict(self.totals)
        if live is not None:
            for k in COUNTERS:
                counters[k] += getattr(live, k)
            d.update(connected=live.connected, sequence=live.sequence, sample_rate=live.sample_rate,
                     last_error=live.last_error or None)
        d["counters"] = counters
        return d


class ExportManager:
    def __init__(self, cfg: Config, store=None):
        self.cfg = cfg
        self.store = store
        self._lock = threading.Lock()
        self._next = 1
        self.exporters: dict = {}
        for url in cfg.export.collectors:
            version, transport, host, port = parse_collector(url)
            self._add(self._config(host, port, version, transport, cfg.export.export_interval_s,
                                   cfg.export.template_refresh_s, cfg.export.observation_domain, False), "config")
        if store is not None:
            self._restore()

    def _restore(self) -> None:
        """The exporters added over REST before the last stop, with their ids; one whose id a configured
        exporter took now gets a new one, one now configured in capbox.toml is dropped from the store."""
        displaced = []
        for row in self.store.query("SELECT id, settings, created FROM exporters ORDER BY id"):
            try:
                config = self._config(**json.loads(row["settings"]))
            except (AgentError, TypeError, ValueError) as e:
                log.error("exporter %d kept in the store cannot be restored: %s", row["id"], e)
                continue
            if any(x.config == config for x in self.exporters.values()) or row["id"] in self.exporters:
                self.store.write(lambda c, i=row["id"]: c.execute("DELETE FROM exporters WHERE id = ?", (i,)))
                if not any(x.config == config for x in self.exporters.values()):
                    displaced.append(config)
                continue
            self.exporters[row["id"]] = Exporter(row["id"], config, row["created"], "api")
            self._next = max(self._next, row["id"] + 1)
        for config in displaced:
            self._persist(self._add(config, "api"))

    def _persist(self, e: Exporter) -> None:
        if self.store is None:
            return
        c = e.config
        settings = json.dumps({"host": c.host, "port": c.port, "version": c.version, "transport": c.transport,
                               "interval_s": c.export_interval_ms // 1000, "refresh_s": c.template_refresh_s,
                               "domain": c.observation_domain, "biflow": c.biflow})
        self.store.write(lambda conn: conn.execute("INSERT OR REPLACE INTO exporters (id, settings, created) "
                                                   "VALUES (?, ?, ?)", (e.id, settings, e.created)))

    def _config(self, host: str, port: int, version: str, transport: str, interval_s: int, refresh_s: int,
                domain: int, biflow: bool) -> ExporterConfig:
        try:
            addr = str(ipaddress.ip_address(host))
        except ValueError:
            try:
                addr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0][4][0]
            except socket.gaierror as e:
                raise validation(f"cannot resolve collector {host!r}: {e.strerror}", field="collector_ip") from None
            except UnicodeError:   # a label over 63 characters, or not IDNA
                raise validation(f"{host!r} is not a host name", field="collector_ip") from None
        if transport == "tcp" and version != "ipfix":
            raise validation("only IPFIX is exported over TCP", field="transport")
        if biflow and version != "ipfix":
            raise validation("biflow records are IPFIX only (RFC 5103)", field="biflow")
        return ExporterConfig(host=addr, port=port, version=version, transport=transport, biflow=biflow,
                              observation_domain=domain, export_interval_ms=interval_s * 1000,
                              template_refresh_s=refresh_s, mtu=self.cfg.export.mtu)

    def _add(self, config: ExporterConfig, source: str) -> Exporter:
        e = Exporter(self._next, config, time.time(), source)
        self._next += 1
        self.exporters[e.id] = e
        return e

    def add(self, session: Optional[Session], *, collector_ip: str, collector_port: int, version: str,
            transport: str, export_interval_sec: int, template_refresh_sec: int, observation_domain: int,
            biflow: bool) -> dict:
        config = self._config(collector_ip, collector_port, version, transport, export_interval_sec,
                              template_refresh_sec, observation_domain, biflow)
        with self._lock:
            if any(x.config == config for x in self.exporters.values()):
                raise AgentError("CONFLICT", "an exporter to that collector with these settings exists",
                                 {"collector_ip": config.host, "collector_port": config.port})
            if len(self.exporters) >= MAX_EXPORTERS:
                raise validation(f"at most {MAX_EXPORTERS} exporters", field="collector_ip")
            core_id = None
            if session is not None:  # the running capture: errors are the caller's to see now
                try:
                    core_id = session.add_exporter(config)
                except CaptureError as err:
                    raise _export_error(err) from None
            e = self._add(config, "api")
            e.core_id = core_id
            self._persist(e)
            log.info("exporter %d: %s to %s:%d over %s", e.id, version, config.host, config.port, transport)
            return e.describe(self._live(session, e))

    def remove(self, session: Optional[Session], exporter_id: int) -> dict:
        with self._lock:
            e = self.exporters.get(exporter_id)
            if e is None:
                raise not_found("exporter", exporter_id)
            last = None
            if session is not None and e.core_id is not None:
                try:
                    last = session.remove_exporter(e.core_id)  # what it still held is sent
                except CaptureError:
                    pass
            final = {**e.describe(last), "state": "removed"}
            del self.exporters[exporter_id]
            if self.store is not None:
                self.store.write(lambda c: c.execute("DELETE FROM exporters WHERE id = ?", (exporter_id,)))
            log.info("exporter %d removed%s", exporter_id,
                     " (it is in capbox.toml: back at the next start)" if e.source == "config" else "")
            return final

    def get(self, session: Optional[Session], exporter_id: int) -> dict:
        with self._lock:
            e = self.exporters.get(exporter_id)
            if e is None:
                raise not_found("exporter", exporter_id)
            return e.describe(self._live(session, e))

    def list(self, session: Optional[Session]) -> list:
        with self._lock:
            live = {s.id: s for s in session.exporters()} if session is not None else {}
            return [e.describe(live.get(e.core_id)) for e in self.exporters.values()]

    @staticmethod
    def _live(session: Optional[Session], e: Exporter):
        if session is None or e.core_id is None:
            return None
        return next((s for s in session.exporters() if s.id == e.core_id), None)

    def attach(self, session: Session) -> None:
        """A capture starts: every exporter joins it (one that cannot says why in its state)."""
        with self._lock:
            for e in self.exporters.values():
                try:
                    e.core_id, e.error = session.add_exporter(e.config), None
                except CaptureError as err:
                    e.core_id, e.error = None, err.message
                    log.error("exporter %d cannot export this capture: %s", e.id, err.message)

    def detach(self, session: Session) -> None:
        """A capture ends (its flows already flushed): keep the counters."""
        with self._lock:
            live = {s.id: s for s in session.exporters()}
            for e in self.exporters.values():
                s = live.get(e.core_id)
                if s is not None:
                    for k in COUNTERS:
                        e.totals[k] += getattr(s, k)
                e.core_id = None


def _export_error(err: CaptureError) -> AgentError:
    if err.code == ErrorCode.OPEN:
        return validation(err.message, field="collector_port", capture_error=err.code.name)
    if err.code == ErrorCode.ARG:
        return validation(err.message, field="collector_ip", capture_error=err.code.name)
    return AgentError("CAPTURE_ERROR", err.message, {"capture_error": getattr(err.code, "name", str(err.code))})
