"""Prometheus metrics through prometheus_client: the process's own
(process_*, python_info), capbox_build_info, the capture's counters read at
each scrape (kept at 0 while idle, so no series vanishes), and counters of
what the services found, tallied from the bus (threats, anomalies,
verifications, jobs, calls)."""
import collections
import dataclasses
import platform
import threading
import time

from agent import __version__
from agent.services import Service
from hwdrivers import dnsgate, zero_counters

JOB_STATES = ("queued", "completed", "failed")


@dataclasses.dataclass(frozen=True)
class Registry:
    """The agent's registry and the counters the bus feeds."""
    registry: object
    threats: object
    anomalies: object
    verifications: object
    jobs: object
    calls: object


class Metrics:
    """One registry per agent (tests run several agents in one process), made on first use (a count or a
    scrape): prometheus_client is some 30 modules, about a second of a box's start under TCG, and it has
    nothing to count before the agent runs."""

    def __init__(self, agent):
        self.agent = agent
        self._lock = threading.Lock()
        self._made = None

    def made(self) -> Registry:
        with self._lock:
            if self._made is None:
                self._made = _registry(self.agent)
            return self._made

    def exposition(self) -> tuple:
        """The scrape's body and its content type."""
        import prometheus_client
        return prometheus_client.generate_latest(self.made().registry), prometheus_client.CONTENT_TYPE_LATEST


def _registry(agent) -> Registry:
    import prometheus_client
    from prometheus_client import CollectorRegistry, Counter, Info, PlatformCollector, ProcessCollector
    prometheus_client.disable_created_metrics()
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    Info("capbox_build", "the running capbox build", registry=registry).info(
        {"version": __version__, "python": platform.python_version(), "machine": platform.machine()})
    labelled = lambda name, help_, labels: Counter(name, help_, labels, registry=registry)
    made = Registry(
        registry,
        threats=labelled("capbox_threats", "threats raised, by attack type and severity", ["type", "severity"]),
        anomalies=labelled("capbox_anomalies", "traffic anomalies found live, by type and severity",
                           ["type", "severity"]),
        verifications=labelled("capbox_verifications", "threats verified, by attack type and verdict",
                               ["type", "status"]),
        jobs=labelled("capbox_jobs", "offline jobs, by what happened to them", ["status"]),
        calls=labelled("capbox_calls", "live calls seen, by the state they reached", ["state"]))
    registry.register(_AgentCollector(agent))
    return made


class TallyService(Service):
    """Counts what the bus carries into Metrics' counters (a consumer like any other: bounded, drops counted)."""
    name = "metrics"
    channels = ("threats:raised", "anomalies:detected", "attacks:verified", "jobs:progress", "calls:updated")

    def start(self, agent) -> None:
        self.m = agent.metrics
        self._calls: collections.OrderedDict = collections.OrderedDict()   # session -> states counted
        self._lock = threading.Lock()

    def handle(self, env) -> None:
        d, m = env.data, self.m.made()
        if env.channel == "threats:raised":
            if not d.get("repeat"):
                m.threats.labels(d["attack_type"], d["severity"]).inc()
        elif env.channel == "anomalies:detected":
            m.anomalies.labels(d["type"], d["severity"]).inc()
        elif env.channel == "attacks:verified":
            m.verifications.labels(d["attack_type"], d["status"]).inc()
        elif env.channel == "jobs:progress":
            if env.event_type == "status" and d.get("status") in JOB_STATES:
                m.jobs.labels(d["status"]).inc()
        elif env.channel == "calls:updated":
            seen = self._calls.setdefault(d["session_id"], set())
            self._calls.move_to_end(d["session_id"])
            if d["state"] not in seen:
                seen.add(d["state"])
                m.calls.labels(d["state"]).inc()
            while len(self._calls) > 100_000:
                self._calls.popitem(last=False)


def _detail(agent, component: str) -> dict:
    c = agent.health.components.get(component)
    return c.detail() if c is not None and c.detail else {}


def _record_families(records: dict):
    """The C core's protocol records: parsed, malformed, and the DNS gate's and answer templates' counters."""
    gate = records.get("dns_gate", {})
    yield _family("counter", "capbox_records", "protocol records parsed in C, by kind",
                  [((k,), v) for k, v in records["parsed"].items()], ["kind"])
    yield _family("counter", "capbox_records_malformed", "payloads that gave no record, by reason",
                  [((k,), v) for k, v in records["malformed"].items()], ["reason"])
    yield _family("counter", "capbox_dns_queries_gated", "DNS queries the C core held back (held), folded into the "
                  "next DNS event (folded), sent as they were (released), dropped at a full event ring (dropped)",
                  [((k,), v) for k, v in gate.items() if k in dnsgate.GATE], ["state"])
    yield _family("counter", "capbox_dns_answer_templates", "DNS answers the C core marked as repeats of a "
                  "template (repeats); templates made (templates), of those replacing one whose answer changed "
                  "(changed) or another name's (evicted); folded answers too big for one (unfit)",
                  [((k,), v) for k, v in gate.items() if k not in dnsgate.GATE],
                  ["state"])


def _family(kind, name: str, help_: str, samples, labels=()):
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    f = (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(name, help_, labels=list(labels))
    for values, value in samples:
        f.add_metric(list(values), value)
    return f


class _AgentCollector:
    """The capture's and the agent's figures, read from the services at each scrape."""

    def __init__(self, agent):
        self.agent = agent

    def collect(self):
        a = self.agent
        c = a.capture.counters()
        running = c is not None
        c = c if running else zero_counters()
        yield _family("gauge", "capbox_up", "1 while the agent answers", [((), 1)])
        yield _family("gauge", "capbox_capture_running", "1 while a capture runs", [((), int(running))])
        yield _family("gauge", "capbox_component_healthy", "1 when a component is healthy",
                      [((n,), int(comp.healthy)) for n, comp in a.health.components.items()], ["component"])
        yield _family("counter", "capbox_packets", "packets seen by the current capture", [((), c.packets)])
        yield _family("counter", "capbox_bytes", "wire bytes seen by the current capture", [((), c.bytes)])
        yield _family("counter", "capbox_dropped", "packets or records lost, by where (event_path: not seen by a "
                      "consumer)", [
                          (("kernel",), c.backend_dropped), (("interface",), c.backend_if_dropped),
                          (("event_ring",), sum(c.events_dropped.values())),
                          (("shared_ring",), a.consumers.dropped() if a.consumers is not None else 0),
                          (("flow_ring",), c.flow_records_dropped), (("flow_table",), c.packets_not_metered),
                          (("bus",), sum(s["dropped"] for s in a.bus.stats()["subscribers"])),
                          (("syslog",), _detail(a, "eve").get("syslog_dropped", 0))], ["cause"])
        yield _family("counter", "capbox_malformed", "malformed packets, by reason",
                      [((k,), v) for k, v in c.malformed_by.items()], ["reason"])
        yield _family("counter", "capbox_layer_packets", "packets by protocol layer",
                      [((k,), v) for k, v in c.layer_packets.items()], ["layer"])
        yield _family("gauge", "capbox_flows_active", "flows in the flow table", [((), c.flows_active)])
        yield _family("counter", "capbox_flows_created", "flows created", [((), c.flows_created)])
        yield _family("counter", "capbox_events", "packet events to Python, by kind",
                      [((k,), v) for k, v in c.events.items()], ["kind"])
        yield _family("counter", "capbox_lost", "data lost on its way to a consumer, by path and cause (event "
                      "path: event ring of the current or last capture, bus subscribers)",
                      [((path, cause), n) for path, lost in a.health.losses().items() for cause, n in lost.items()],
                      ["path", "cause"])
        yield from _record_families(a.capture.record_counters() or {"parsed": {}, "malformed": {}})
        exporters = a.capture.exporters()
        ex_labels = ["exporter", "collector", "version"]

        def per_exporter(key):
            return [((str(e["id"]), f"{e['collector_ip']}:{e['collector_port']}", e["version"]), e["counters"][key])
                    for e in exporters]
        yield _family("counter", "capbox_export_records", "flow records sent to a collector",
                      per_exporter("records"), ex_labels)
        yield _family("counter", "capbox_export_records_dropped",
                      "flow records lost: socket full, collector unreachable", per_exporter("records_dropped"),
                      ex_labels)
        yield _family("counter", "capbox_export_messages", "export messages sent", per_exporter("messages"),
                      ex_labels)
        rec = a.capture.recording_status()
        st = rec["stats"] or {"packets": 0, "file_bytes": 0, "dropped": 0}
        yield _family("gauge", "capbox_recording", "1 while packets are being recorded", [((), int(rec["recording"]))])
        yield _family("counter", "capbox_recording_packets", "packets recorded (this or the last recording)",
                      [((), st["packets"])])
        yield _family("counter", "capbox_recording_file_bytes", "bytes written to recording files",
                      [((), st["file_bytes"])])
        yield _family("counter", "capbox_recording_dropped", "packets the recording lost", [((), st["dropped"])])
        bus = a.bus.stats()
        yield _family("counter", "capbox_bus_published", "bus messages published, by channel",
                      [((k,), v) for k, v in sorted(bus["published"].items())], ["channel"])
        yield _family("counter", "capbox_bus_dropped", "bus messages a slow subscriber missed",
                      [((s["name"] or "anonymous",), s["dropped"]) for s in bus["subscribers"]], ["subscriber"])
        logs = _detail(a, "logs")
        yield _family("counter", "capbox_log_records", "protocol log records written, by type",
                      [((k,), v) for k, v in sorted(logs.get("written", {}).items())], ["type"])
        yield _family("counter", "capbox_log_dropped", "capture output the protocol logs lost (their queue was full)",
                      [((), logs.get("dropped", 0))])
        yield _family("gauge", "capbox_store_pending", "writes queued for the store", [((), a.store.pending)])
        conns = _detail(a, "api").get("connections", {})     # the REST face's, when it runs
        yield _family("counter", "capbox_api_refused", "API connections closed at accept (over the connection caps) "
                      "and requests answered 503 (their address held its share of the workers)",
                      [(("connection_cap",), conns.get("refused", 0)),
                       (("busy_per_client",), conns.get("busy_refused", 0))],
                      ["cause"])
        yield _family("gauge", "capbox_uptime_seconds", "seconds since the agent started",
                      [((), round(time.time() - a.health.started, 1))])
