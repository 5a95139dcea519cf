"""What each operation answers, as JSON Schema for the OpenAPI document.

One table, RESPONSES, keyed "METHOD /path" as the routes declare them; the
records several operations share (a threat, a flow, a capture's status, an
exporter, a window, a call session, a job) are declared once above it.
Objects list the fields a client may rely on; they stay open
(additionalProperties) so that a new field is not a breaking change.
tests/agent/test_api_responses.py validates real answers against it."""
import dataclasses
import typing
from typing import Optional

from agent import config
from agent.logs.records import TYPES as LOG_TYPES

STR, INT, NUM, BOOL = {"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "boolean"}
COUNT = {"type": "integer", "minimum": 0}
TIME = {"type": "string", "format": "date-time"}            # ISO 8601, UTC, milliseconds
UNIX = {"type": "number", "minimum": 0, "description": "unix seconds"}
PERCENT = {"type": "number", "minimum": 0, "maximum": 100}
ANY_OBJECT = {"type": "object"}
SEVERITY = {"type": "string", "enum": ["low", "medium", "high", "critical"]}


def null(s: dict) -> dict:
    """s, or null (a value not known yet, or not applicable)."""
    if isinstance(s.get("type"), str) and "enum" not in s:
        return {**s, "type": [s["type"], "null"]}
    return {"anyOf": [s, {"type": "null"}]}


def arr(items: Optional[dict] = None) -> dict:
    return {"type": "array", "items": items} if items else {"type": "array"}


def obj(required: dict, optional: Optional[dict] = None, doc: str = "") -> dict:
    """An object with these fields always present (and these sometimes)."""
    s = {"type": "object", "required": sorted(required), "properties": {**required, **(optional or {})}}
    return {**s, "description": doc} if doc else s


def mapping(values: dict, doc: str = "") -> dict:
    """An object keyed by names (components, protocols, reasons) whose values all have one shape."""
    s = {"type": "object", "additionalProperties": values}
    return {**s, "description": doc} if doc else s


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


COUNTS = mapping(COUNT)
BINARY = {"type": "string", "contentMediaType": "application/octet-stream"}

RUN_STATS = obj({"packets": COUNT, "bytes": COUNT, "malformed": COUNT, "dropped": COUNT, "flows_created": COUNT,
                 "flows_active": COUNT, "events_dropped": COUNTS})
FLOW_METER = obj({"enabled": BOOL, "idle_timeout_s": COUNT, "active_timeout_s": COUNT, "sampling_rate": COUNT})
CAPTURE_STATUS = obj(
    {"running": BOOL, "state": {"type": "string", "enum": ["idle", "starting", "running", "stopping"]},
     "interface": null(STR), "backend": null(STR), "file": null(STR), "bpf": null(STR), "start_time": null(TIME),
     "duration": null(NUM)},
    {"run_id": COUNT, "source": null(STR), "start_ts": null(UNIX), "duration_limit": null(NUM),
     "output_file": null(STR), "flow_meter": FLOW_METER, "stats": RUN_STATS, "message": STR,
     "last_run": null(obj({"run_id": COUNT, "backend": null(STR), "source": null(STR), "start_time": null(TIME),
                           "stop_time": null(TIME), "reason": null(STR), "error": null(STR)},
                          {"interface": null(STR), "file": null(STR), "bpf": null(STR), "stats": null(RUN_STATS)})),
     "stopped": BOOL, "reason": STR},
    "a capture: what runs, from where, through which filter, and its counters")
THREAT = obj(
    {"id": {"type": "string", "pattern": "^thr_[0-9a-f]+$"}, "timestamp": TIME, "attack_type": STR,
     "severity": SEVERITY, "source_ip": STR, "dest_ip": STR, "protocol": STR, "description": STR, "verified": BOOL,
     "verification_status": STR, "confidence": {"type": "number", "minimum": 0, "maximum": 1},
     "score": {"type": "integer", "minimum": 0, "maximum": 100}, "attacker": STR, "attacker_mac": null(STR),
     "first_seen": TIME, "last_seen": TIME, "count": COUNT,
     "status": {"type": "string", "enum": ["new", "acknowledged", "confirmed", "false_positive"]},
     "response_action": STR, "deception_session_id": null(STR)},
    doc="a threat: one attacker against one target, however often it was seen")
THREAT_DETAIL = {"allOf": [ref("Threat"), obj(
    {"evidence": ANY_OBJECT, "verification_result": null(ANY_OBJECT), "note": null(STR),
     "deception_session": null(ANY_OBJECT), "correlation_id": null(STR),
     "packets": obj({"state": STR}, {"window": ANY_OBJECT, "files": arr(STR), "oldest_kept_ns": null(COUNT),
                                     "reason": STR}, "what the recordings still hold of it (GET /v1/pcap?threat=)"),
     "related_events": arr(obj({"event_type": STR, "timestamp": TIME, "channel": STR, "data": ANY_OBJECT}))})]}
FLOW = obj(
    {"id": COUNT, "src": STR, "dst": STR, "sport": COUNT, "dport": COUNT, "proto": STR, "vlan": COUNT,
     "packets": COUNT, "bytes": COUNT, "packets_fwd": COUNT, "packets_rev": COUNT, "bytes_fwd": COUNT,
     "bytes_rev": COUNT, "first": UNIX, "last": UNIX, "duration_s": NUM, "rtt_ms": null(NUM),
     "retransmissions": COUNT, "out_of_order": COUNT, "state": STR, "app": STR, "end": STR},
    {"vlan_inner": COUNT, "tunnel": null(STR), "tunnel_src": null(STR), "tunnel_dst": null(STR),
     "tunnel_id": null(INT), "tunnel_id_rev": null(INT)},
    "a flow: both directions of one conversation")
EXPORTER = obj(
    {"id": COUNT, "collector_ip": STR, "collector_port": {"type": "integer", "minimum": 1, "maximum": 65535},
     "version": {"type": "string", "enum": ["v5", "v9", "ipfix"]}, "transport": {"type": "string",
                                                                                "enum": ["udp", "tcp", "sctp"]},
     "export_interval_sec": COUNT, "template_refresh_sec": COUNT, "observation_domain": COUNT, "biflow": BOOL,
     "created": UNIX, "source": STR, "state": STR, "error": null(STR), "counters": COUNTS},
    {"connected": null(BOOL), "sequence": null(COUNT), "sample_rate": null(COUNT), "last_error": null(STR)},
    "a flow exporter: where records go, and how many went")
ENCRYPTION = obj({"enabled": BOOL, "cipher_suite": null(STR), "key_file": null(STR), "key_id": null(STR),
                  "cipher_suites": arr(STR), "key_dir": STR, "key_lost": null(STR), "applies_to": STR})
RECORDING = obj(
    {"enabled": BOOL, "recording": BOOL, "directory": STR,
     "settings": obj({"prefix": STR, "rotate_mb": COUNT, "rotate_s": COUNT, "keep_mb": COUNT, "keep_s": COUNT,
                      "bpf": STR, "bpf_outer": BOOL, "snaplen": COUNT}),
     "current_file": null(STR), "stats": null(ANY_OBJECT), "encryption": ENCRYPTION, "error": null(STR),
     "repaired": arr()})
RECORDING_FILE = obj({"name": STR, "size": COUNT, "modified_ts": UNIX, "encrypted": BOOL, "active": BOOL,
                      "key_id": null(STR), "complete": null(BOOL)})
WINDOW_SET = obj({"id": COUNT, "kind": {"type": "string", "enum": ["live", "pcap"]}, "source": null(STR),
                  "status": STR, "progress": PERCENT, "error": null(STR)},
                 {"window_s": COUNT, "window_size": COUNT, "created": {"type": ["string", "number"]},
                  "finished": {"type": ["string", "number", "null"]}, "window_count": COUNT})
TOP_HOSTS = arr(obj({"host": STR, "bytes": COUNT}))
WINDOW = obj(
    {"window_id": COUNT, "window_start": UNIX, "window_end": UNIX, "record_count": COUNT,
     "bandwidth": obj({"bytes": COUNT, "packets": COUNT, "avg_bps": NUM, "avg_pps": NUM},
                      {"duration_s": NUM, "top_src_bytes": TOP_HOSTS, "top_dst_bytes": TOP_HOSTS}),
     "latency": ANY_OBJECT, "connections": ANY_OBJECT, "protocol": ANY_OBJECT},
    {"first_packet": null(UNIX), "last_packet": null(UNIX), "skipped_before": COUNT, "tcp": COUNTS,
     "malformed": COUNT, "sources": arr(ANY_OBJECT)},
    "a traffic window: bandwidth, latency, connections and protocols of a span of time")
ANOMALY = obj({"window_id": COUNT, "type": STR, "severity": SEVERITY, "message": STR},
              {"value": NUM, "baseline": null(NUM), "score": NUM})
CALL = obj(
    {"session_id": STR, "type": STR, "call_id": null(STR), "state": STR, "from": null(STR), "to": null(STR),
     "start_time": null(TIME), "participants": arr(STR)},
    {"session_key": STR, "method": null(STR), "final_status": null(INT), "end_time": null(TIME),
     "start_ts": null(UNIX), "end_ts": null(UNIX), "metrics": ANY_OBJECT, "events_count": COUNT,
     "duration_ms": null(NUM), "packet_count": COUNT, "byte_count": COUNT, "streams": arr(ANY_OBJECT)},
    "a call (SIP session) with its media and quality")
CALL_DETAIL = {"allOf": [ref("Call"), obj({"events": arr(obj(
    {"event_id": STR, "timestamp": TIME, "protocol": STR, "message_type": STR, "source": STR,
     "destination": STR}, {"ts": UNIX, "method": null(STR), "status": null(INT), "transport": STR, "short": STR,
                           "retransmission": BOOL, "details": ANY_OBJECT})),
    "job_id": null(STR)})]}
JOB = obj({"job_id": STR, "status": {"type": "string", "enum": ["queued", "running", "completed", "failed"]},
           "progress": PERCENT, "created_at": TIME, "filename": STR, "size_bytes": COUNT},
          {"started_at": null(TIME), "completed_at": null(TIME), "total_packets": null(COUNT),
           "total_sessions": null(COUNT), "error": null(STR)},
          "an uploaded capture being processed")
API_KEY = obj({"id": STR, "kind": {"type": "string", "enum": ["sk", "pk", "tk"]},
               "access": STR, "name": STR, "scopes": arr(STR), "created": UNIX, "expires": null(UNIX),
               "revoked": null(UNIX)})
DECEPTION = obj(
    {"session_id": STR, "status": STR, "target_domain": STR, "attacker_ip": STR, "behavior_profile": STR,
     "duration_minutes": COUNT, "started_at": TIME, "estimated_end": TIME, "threat_id": null(STR)},
    {"stopped_at": null(TIME), "duration_seconds": NUM, "packets_sent": COUNT, "honeytokens_deployed": arr(),
     "statistics": COUNTS, "error": null(STR)},
    "a deception session: traffic played to an attacker, with honeytokens in it")
HONEYTOKEN = obj({"token": STR, "token_type": STR, "created_at": TIME, "triggered": BOOL},
                 {"domain": STR, "embedded_in": STR, "session_id": null(STR), "threat_id": null(STR),
                  "trigger_count": COUNT, "triggered_at": null(TIME)})
VERIFICATION = obj(
    {"verification_id": {"type": "string", "pattern": "^ver_"}, "timestamp": TIME, "attack_detected": BOOL,
     "confidence": NUM, "paths_checked": COUNT, "paths_succeeded": COUNT, "paths_agreed": COUNT,
     "consensus_percentage": PERCENT, "strategy": STR, "path_results": arr(ANY_OBJECT), "outliers": arr(),
     "recommendations": arr(STR), "verification_duration_ms": NUM},
    {"local_source": null(STR), "consensus": {}, "local": {}, "differences": {}},
    "a suspicion checked through independent paths, and whether they agree")
VERDICT = obj({"ok": BOOL, "reason": STR, "message": STR, "header": null(ANY_OBJECT), "key_id": null(STR)},
              {"trusted_comment": null(STR), "signature_algorithm": null(STR), "image_sha256": null(STR),
               "rollback_override": {}})
FIRMWARE_VERDICT = {"allOf": [VERDICT, obj({"valid": BOOL})]}

LOG_RECORD = obj({"ts": UNIX}, {"uid": STR, "community_id": STR, "id.orig_h": STR, "id.orig_p": COUNT,
                                "id.resp_h": STR, "id.resp_p": COUNT, "proto": STR},
                 "one protocol log record, Zeek's field names (docs/LOGS.md)")

SCHEMAS = {"Threat": THREAT, "Flow": FLOW, "CaptureStatus": CAPTURE_STATUS, "Exporter": EXPORTER,
           "Recording": RECORDING, "Encryption": ENCRYPTION, "Window": WINDOW, "WindowSet": WINDOW_SET,
           "Anomaly": ANOMALY, "Call": CALL, "Job": JOB, "ApiKey": API_KEY, "Deception": DECEPTION,
           "Verification": VERIFICATION}


def page(items: str, item: dict, **fields) -> dict:
    """A list answer: the items under their name, with counts."""
    return obj({items: arr(item), **fields})


def _config_schema() -> dict:
    """The running configuration: every [section] and key of agent/config.py, with its range or choices."""
    kinds = {str: STR, int: INT, float: NUM, bool: BOOL, tuple: arr()}
    sections = {}
    for name, cls in config.SECTIONS.items():
        hints = typing.get_type_hints(cls)
        keys = {}
        for f in dataclasses.fields(cls):
            rule = config.RULES.get(f"{name}.{f.name}", {})
            s = dict(kinds.get(hints[f.name], STR))
            if "choices" in rule:
                s["enum"] = list(rule["choices"])
            if "min" in rule:
                s |= {"minimum": rule["min"], "maximum": rule["max"]}
            keys[f.name] = s
        doc = cls.__doc__ or ""
        sections[name] = obj(keys, doc="" if doc.startswith(f"{cls.__name__}(") else " ".join(doc.split()))
    return obj(sections, doc="the running configuration, one object per [section] (docs/CONFIG.md)")


WINDOWS_PAGE = {"count": COUNT, "total": COUNT, "offset": COUNT, "limit": COUNT}
SSE = {"type": "string", "contentMediaType": "text/event-stream",
       "description": "Server-Sent Events: `id:`, `event:` and one JSON `data:` line each"}

# "METHOD /path" -> (status, schema, media type)
RESPONSES = {
    # platform
    "GET /v1/health": (200, obj({"status": {"type": "string", "enum": ["healthy", "degraded", "unhealthy"]},
                                 "timestamp": TIME, "version": STR, "mode": STR, "uptime_seconds": NUM,
                                 "components": mapping(obj({"status": STR, "critical": BOOL,
                                                            "last_heartbeat": null(UNIX), "error": null(STR)})),
                                 "losses": ANY_OBJECT, "system": ANY_OBJECT, "interfaces": arr(ANY_OBJECT)})),
    "GET /v1/ping": (200, obj({"pong": {"const": True}, "timestamp": TIME})),
    "GET /v1/status": (200, obj({"api": obj({"status": STR, "version": STR, "timestamp": TIME}),
                                 "system": obj({"mode": STR, "data_dir": STR, "window_size": COUNT}),
                                 "data": ANY_OBJECT, "capture": obj({"running": BOOL})})),
    "GET /v1/config": (200, _config_schema()),
    "GET /v1/logs/<kind>": (200, obj({"type": {"type": "string", "enum": list(LOG_TYPES)}, "records": arr(LOG_RECORD),
                                      "count": COUNT})),
    "GET /v1/logs": (200, obj({"type": STR, "limit": COUNT, "total": COUNT, "returned": COUNT, "count": COUNT,
                               "logs": arr(obj({"ts": UNIX, "level": STR, "logger": STR, "message": STR}))})),
    "GET /v1/stats": (200, obj({"period": STR, "timestamp": TIME, "since": UNIX,
                                "capture": obj({"packets_captured": COUNT, "packets_analyzed": COUNT,
                                                "packets_dropped": COUNT, "capture_rate_pps": NUM,
                                                "flows_active": COUNT, "running": BOOL}),
                                "detection": obj({"threats_detected": COUNT, "attack_types": COUNTS,
                                                  "severity_distribution": COUNTS}),
                                "verification": ANY_OBJECT, "deception": COUNTS, "top_attackers": arr(ANY_OBJECT),
                                "samples": ANY_OBJECT, "capture_runs": arr(ANY_OBJECT), "bus": ANY_OBJECT})),
    "GET /v1/keys": (200, page("keys", ref("ApiKey"), count=COUNT)),
    "POST /v1/keys": (201, {"allOf": [ref("ApiKey"), obj({"key": {"type": "string", "pattern": "^capbox_"}})]}),
    "DELETE /v1/keys/<key_id>": (200, obj({"revoked": BOOL, "id": STR})),
    "GET /v1/openapi.json": (200, obj({"openapi": STR, "info": ANY_OBJECT, "paths": ANY_OBJECT,
                                       "components": ANY_OBJECT}, doc="this document")),
    "GET /metrics": (200, {"type": "string", "description": "Prometheus text exposition"}, "text/plain"),
    "GET /docs/errors": (200, {"type": "string", "description": "HTML: one row, anchored by its code, per error"},
                         "text/html"),
    # capture
    "GET /v1/capture/backends": (200, page("backends", obj({"name": STR, "description": STR,
                                                            "capabilities": arr(STR), "available": BOOL,
                                                            "reason": STR}), count=COUNT)),
    "POST /v1/capture/start": (200, ref("CaptureStatus")),
    "POST /v1/capture/stop": (200, ref("CaptureStatus")),
    "POST /v1/capture/filter": (200, ref("CaptureStatus")),
    "GET /v1/capture/status": (200, ref("CaptureStatus")),
    "GET /v1/capture/metrics": (200, obj({"running": BOOL, "packets": COUNT, "bytes": COUNT, "pps": NUM,
                                          "bps": NUM, "drops": COUNTS, "drop_rate": NUM,
                                          "malformed": obj({"total": COUNT, "by_reason": COUNTS}),
                                          "flows": COUNTS, "protocols": COUNTS, "applications": COUNTS},
                                         {"backend": STR, "source": null(STR), "duration": NUM,
                                          "received": COUNT, "filtered_out": COUNT, "history": arr(ANY_OBJECT)})),
    "POST /v1/capture/flow-meter": (200, {"allOf": [FLOW_METER, obj({"applies_to": STR, "running": BOOL})]}),
    "GET /v1/capture/flows": (200, page("flows", ref("Flow"), count=COUNT, active=COUNT, sort=STR)),
    "POST /v1/capture/export": (201, ref("Exporter")),
    "GET /v1/capture/export": (200, page("exporters", ref("Exporter"), count=COUNT)),
    "GET /v1/capture/export/<exporter_id:int>": (200, ref("Exporter")),
    "DELETE /v1/capture/export/<exporter_id:int>": (200, ref("Exporter")),
    "POST /v1/capture/recording": (200, ref("Recording")),
    "GET /v1/capture/recording": (200, ref("Recording")),
    "POST /v1/capture/encryption": (200, ref("Encryption")),
    "GET /v1/capture/encryption": (200, ref("Encryption")),
    "GET /v1/recordings": (200, obj({"directory": STR, "count": COUNT, "total_bytes": COUNT,
                                     "recordings": arr(RECORDING_FILE), "recording": ref("Recording")})),
    "GET /v1/recordings/<name>": (200, {**BINARY, "contentMediaType": "application/x-pcapng"},
                                  "application/x-pcapng"),
    "DELETE /v1/recordings/<name>": (200, obj({"deleted": BOOL, "name": STR})),
    "GET /v1/pcap": (200, {**BINARY, "contentMediaType": "application/vnd.tcpdump.pcap-ng"},
                     "application/vnd.tcpdump.pcap-ng"),
    # detection
    "GET /v1/threats": (200, page("threats", ref("Threat"), total=COUNT, limit=COUNT, offset=COUNT, count=COUNT)),
    "GET /v1/threats/<threat_id>": (200, THREAT_DETAIL),
    "PATCH /v1/threats/<threat_id>": (200, THREAT_DETAIL),
    "GET /v1/events": (200, SSE, "text/event-stream"),
    "POST /v1/verify": (200, ref("Verification")),
    "POST /v1/verify-dns": (200, ref("Verification")),
    "POST /v1/verify-tls": (200, ref("Verification")),
    "GET /v1/paths": (200, obj({"total": COUNT, "available": COUNT, "by_kind": COUNTS, "local_resolver": null(STR),
                                "local_proxy": null(STR), "paths": arr(ANY_OBJECT)})),
    # deception
    "POST /v1/deception/start": (201, ref("Deception")),
    "POST /v1/deception/stop": (200, ref("Deception")),
    "GET /v1/deception/<session_id>": (200, ref("Deception")),
    "GET /v1/honeytokens": (200, page("tokens", HONEYTOKEN, total=COUNT, triggered_count=COUNT, limit=COUNT,
                                      offset=COUNT)),
    "POST /v1/honeytokens/trigger": (200, obj({"token": STR, "trigger_recorded": BOOL, "trigger_count": COUNT,
                                               "alert_sent": BOOL, "related_threat": null(STR)},
                                              {"session_id": null(STR)})),
    # analysis
    "GET /v1/windows": (200, obj({"set": ref("WindowSet"), "windows": arr(ref("Window")), **WINDOWS_PAGE})),
    "GET /v1/windows/summary": (200, obj({"set": ref("WindowSet"), "total_windows": COUNT, "time_span": NUM,
                                          "packets": COUNT, "bytes": COUNT, "bandwidth": ANY_OBJECT,
                                          "latency": ANY_OBJECT, "connections": ANY_OBJECT})),
    "GET /v1/windows/sets": (200, page("sets", ref("WindowSet"), count=COUNT)),
    "GET /v1/windows/jobs/<job_id:int>": (200, ref("WindowSet")),
    "GET /v1/windows/<window_id:int>": (200, ref("Window")),
    "POST /v1/windows/compute": (202, obj({"message": STR, "job_id": COUNT, "set": COUNT, "status": STR,
                                           "status_url": STR, "window_size": COUNT})),
    "GET /v1/anomalies": (200, obj({"set": COUNT, "filters": ANY_OBJECT, "anomalies": arr(ref("Anomaly")),
                                    **WINDOWS_PAGE})),
    "GET /v1/anomalies/by-type": (200, obj({"total": COUNT, "set": COUNT, "by_type": ANY_OBJECT})),
    "GET /v1/anomalies/top": (200, obj({"set": COUNT, "top": arr(ref("Anomaly"))})),
    "GET /v1/anomalies/window/<window_id:int>": (200, obj({"window_id": COUNT, "count": COUNT, "set": COUNT,
                                                           "anomalies": arr(ref("Anomaly"))})),
    "POST /v1/anomalies/detect": (200, obj({"message": STR, "anomaly_count": COUNT, "detection_time": NUM,
                                            "summary": obj({"by_type": COUNTS, "by_severity": COUNTS}),
                                            "windows": COUNT, "baseline": STR, "set": COUNT, "timestamp": TIME})),
    "GET /v1/baselines": (200, obj({"available": COUNT, "name": STR, "baseline_complete": BOOL,
                                    "baseline_duration_hours": NUM, "baselines": ANY_OBJECT,
                                    "learned_from": ANY_OBJECT, "timestamp": TIME})),
    "GET /v1/baselines/stats": (200, obj({"name": STR, "baseline_stats": mapping(ANY_OBJECT), "timestamp": TIME})),
    "GET /v1/baselines/<type_>": (200, obj({"type": STR, "name": STR, "baseline": ANY_OBJECT, "timestamp": TIME})),
    "POST /v1/baselines/generate": (200, obj({"message": STR, "name": STR, "generated": mapping(BOOL),
                                              "set": COUNT, "generation_time": NUM, "timestamp": TIME})),
    # jobs and calls
    "POST /v1/jobs": (201, obj({"job_id": STR, "status": STR})),
    "GET /v1/jobs": (200, page("jobs", ref("Job"), total=COUNT)),
    "GET /v1/jobs/<job_id>": (200, ref("Job")),
    "DELETE /v1/jobs/<job_id>": (200, obj({"message": STR, "job_id": STR, "cancelled": BOOL})),
    "GET /v1/jobs/<job_id>/sessions": (200, page("sessions", ref("Call"), job_id=STR, page=COUNT, limit=COUNT,
                                                 total=COUNT)),
    "GET /v1/jobs/<job_id>/events": (200, SSE, "text/event-stream"),
    "GET /v1/sessions/<session_id>": (200, CALL_DETAIL),
    "GET /v1/sessions/<session_id>/ladder": (200, obj({"session_id": STR, "text": STR})),
    "GET /v1/calls": (200, page("calls", ref("Call"), page=COUNT, limit=COUNT, total=COUNT, active=COUNT,
                                capturing=BOOL)),
    # what runs on the box
    "GET /v1/firmware": (200, obj({"card": obj({"present": BOOL}), "target": STR, "slots": ANY_OBJECT,
                                   "rollback_floor": ANY_OBJECT, "history": arr(ANY_OBJECT), "firmware_dir": STR,
                                   "keyring": obj({"dir": STR, "key_ids": arr(STR)})})),
    "GET /v1/firmware/verify": (200, FIRMWARE_VERDICT),
    "POST /v1/firmware/verify": (200, FIRMWARE_VERDICT),
    "POST /v1/firmware/load": (200, obj({"loaded": BOOL, "slot": STR, "verdict": VERDICT, "running": {}})),
    "GET /v1/system": (200, obj({"image": BOOL, "booted_slot": null(STR), "committed_slot": null(STR),
                                 "trial": null(ANY_OBJECT), "slots": ANY_OBJECT, "release": null(ANY_OBJECT),
                                 "history": arr(ANY_OBJECT)})),
    "POST /v1/system/update": (202, obj({"installed": BOOL, "slot": STR, "version": STR, "rebooting": BOOL,
                                         "reboot_in_seconds": null(NUM)})),
}
