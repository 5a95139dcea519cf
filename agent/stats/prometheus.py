"""Prometheus text exposition (format 0.0.4) of the agent's counters."""
import time


def _escape(v: str) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Writer:
    def __init__(self):
        self.lines: list = []

    def metric(self, name: str, kind: str, help_: str, samples) -> None:
        self.lines.append(f"# HELP {name} {help_}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lab = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            self.lines.append(f"{name}{{{lab}}} {value}" if lab else f"{name} {value}")


def exposition(agent) -> str:
    w = _Writer()
    c = agent.capture.counters()
    w.metric("capbox_up", "gauge", "1 while the agent answers", [({}, 1)])
    w.metric("capbox_capture_running", "gauge", "1 while a capture runs", [({}, int(c is not None))])
    health = agent.health.snapshot()
    w.metric("capbox_component_healthy", "gauge", "1 when a component is healthy",
             [({"component": n}, int(agent.health.components[n].healthy)) for n in health])
    if c is not None:
        w.metric("capbox_packets_total", "counter", "packets seen by the current capture", [({}, c.packets)])
        w.metric("capbox_bytes_total", "counter", "wire bytes seen by the current capture", [({}, c.bytes)])
        w.metric("capbox_dropped_total", "counter", "packets dropped, by cause",
                 [({"cause": "kernel"}, c.backend_dropped), ({"cause": "interface"}, c.backend_if_dropped),
                  ({"cause": "event_ring"}, sum(c.events_dropped.values())),
                  ({"cause": "flow_ring"}, c.flow_records_dropped), ({"cause": "flow_table"}, c.packets_not_metered)])
        w.metric("capbox_malformed_total", "counter", "malformed packets, by reason",
                 [({"reason": k}, v) for k, v in c.malformed_by.items()])
        w.metric("capbox_layer_packets_total", "counter", "packets by protocol layer",
                 [({"layer": k}, v) for k, v in c.layer_packets.items()])
        w.metric("capbox_flows_active", "gauge", "flows in the flow table", [({}, c.flows_active)])
        w.metric("capbox_flows_created_total", "counter", "flows created", [({}, c.flows_created)])
        w.metric("capbox_events_total", "counter", "packet events to Python, by kind",
                 [({"kind": k}, v) for k, v in c.events.items()])
    w.metric("capbox_lost_total", "counter", "data lost on its way to a consumer, by path and cause "
             "(event path: event ring of the current or last capture, bus subscribers)",
             [({"path": path, "cause": cause}, n) for path, lost in agent.health.losses().items()
              for cause, n in lost.items()])
    records = agent.capture.record_counters()
    if records:
        w.metric("capbox_records_total", "counter", "protocol records parsed in C, by kind",
                 [({"kind": k}, v) for k, v in records["parsed"].items()])
        w.metric("capbox_records_malformed_total", "counter", "payloads that gave no record, by reason",
                 [({"reason": k}, v) for k, v in records["malformed"].items()])
    exporters = agent.capture.exporters()
    if exporters:
        def per_exporter(key):
            return [({"exporter": str(e["id"]), "collector": f"{e['collector_ip']}:{e['collector_port']}",
                      "version": e["version"]}, e["counters"][key]) for e in exporters]
        w.metric("capbox_export_records_total", "counter", "flow records sent to a collector", per_exporter("records"))
        w.metric("capbox_export_records_dropped_total", "counter",
                 "flow records lost: socket full, collector unreachable", per_exporter("records_dropped"))
        w.metric("capbox_export_messages_total", "counter", "export messages sent", per_exporter("messages"))
    rec = agent.capture.recording_status()
    w.metric("capbox_recording", "gauge", "1 while packets are being recorded", [({}, int(rec["recording"]))])
    if rec["stats"]:
        st = rec["stats"]
        w.metric("capbox_recording_packets_total", "counter", "packets recorded (this or the last recording)",
                 [({}, st["packets"])])
        w.metric("capbox_recording_file_bytes_total", "counter", "bytes written to recording files",
                 [({}, st["file_bytes"])])
        w.metric("capbox_recording_dropped_total", "counter", "packets the recording lost", [({}, st["dropped"])])
    bus = agent.bus.stats()
    w.metric("capbox_bus_published_total", "counter", "bus messages published, by channel",
             [({"channel": k}, v) for k, v in sorted(bus["published"].items())])
    w.metric("capbox_bus_dropped_total", "counter", "bus messages a slow subscriber missed",
             [({"subscriber": s["name"] or "anonymous"}, s["dropped"]) for s in bus["subscribers"]])
    w.metric("capbox_store_pending", "gauge", "writes queued for the store", [({}, agent.store.pending)])
    w.metric("capbox_uptime_seconds", "gauge", "seconds since the agent started",
             [({}, round(time.time() - agent.health.started, 1))])
    return "\n".join(w.lines) + "\n"
