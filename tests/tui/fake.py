"""A Source with fixed answers, for snapshots and key tests without an agent."""
import copy

from agent.calls import ladder
from tui.source import SourceError

FLOWS = [{"src": f"10.0.0.{i}", "sport": 40000 + i, "dst": "192.0.2.1", "dport": 443 if i % 2 else 53,
          "proto": "tcp" if i % 2 else "udp", "vlan": 0, "packets": 100 - i, "bytes": 10000 - 100 * i,
          "packets_fwd": 60 - i, "packets_rev": 40, "bytes_fwd": 6000, "bytes_rev": 4000 - 100 * i,
          "first": 1000.0, "last": 1010.0, "duration_s": 10.0, "rtt_ms": 12.5 if i % 2 else None,
          "retransmissions": i % 3, "out_of_order": 0, "state": "established" if i % 2 else "",
          "app": "tls" if i % 2 else "dns", "end": "active", "id": i} for i in range(1, 9)]
HISTORY = [{"ts": 1000.0 + i, "pps": 100 + 10 * (i % 7), "bps": 8e5 + 1e4 * (i % 5), "dropped": 0} for i in range(60)]
WINDOWS = [{"window_id": i, "window_start": 1000.0 + 10 * i, "window_end": 1010.0 + 10 * i, "record_count": 100 + i,
            "bandwidth": {"avg_bps": 1e5 * (1 + i % 4), "bytes": 12500 * (1 + i % 4)}} for i in range(12)]
THREATS = [
    {"id": "thr_1a2b3c4d", "timestamp": "2026-11-23T10:00:05Z", "attack_type": "dns_hijack", "severity": "critical",
     "source_ip": "10.0.0.53", "dest_ip": "10.0.0.7", "protocol": "DNS",
     "description": "answer for bank.example differs from every independent path", "verified": True,
     "verification_status": "confirmed", "confidence": 0.9, "score": 90, "attacker": "10.0.0.53",
     "attacker_mac": "02:00:00:00:00:53", "first_seen": "2026-11-23T10:00:05Z", "last_seen": "2026-11-23T10:00:09Z",
     "count": 3, "status": "new", "response_action": None, "deception_session_id": None},
    {"id": "thr_5e6f7a8b", "timestamp": "2026-11-23T09:58:00Z", "attack_type": "tls_downgrade", "severity": "medium",
     "source_ip": "192.0.2.10", "dest_ip": "10.0.0.9", "protocol": "TLS",
     "description": "weak or downgraded TLS with 192.0.2.10:443: TLS 1.0 negotiated", "verified": False,
     "verification_status": "unverified", "confidence": 0.5, "score": 50, "attacker": "192.0.2.10",
     "attacker_mac": None, "first_seen": "2026-11-23T09:58:00Z", "last_seen": "2026-11-23T09:58:00Z", "count": 1,
     "status": "acknowledged", "response_action": None, "deception_session_id": None}]
THREAT_DETAIL = {**THREATS[0], "evidence": {"domain": "bank.example", "local_ips": ["10.0.0.66"],
                                            "consensus_ips": ["198.51.100.7"]},
                 "verification_result": {"verification_id": "ver_0123456789ab", "paths_checked": 5,
                                         "paths_succeeded": 5, "paths_agreed": 5, "consensus_percentage": 100.0,
                                         "attack_detected": True, "consensus_ips": ["198.51.100.7"],
                                         "local_ips": ["10.0.0.66"], "outliers": ["local"],
                                         "path_results": [{"path_id": f"dns_{i}", "status": "success",
                                                           "ips": ["198.51.100.7"]} for i in range(3)]},
                 "note": None, "deception_session": None, "correlation_id": "cor_1", "related_events": []}
A, B = "10.0.0.5:5060", "192.0.2.20:5060"
CALL_EVENTS = [(0.0, A, B, "INVITE", True), (0.02, B, A, "100 Trying", False), (0.9, B, A, "180 Ringing", False),
               (3.1, B, A, "200 OK", True), (3.12, A, B, "ACK", False), (33.0, A, B, "BYE", False),
               (33.03, B, A, "200 OK", False)]
CALL = {"session_id": "c0ffee00-0000-4000-8000-000000000001", "type": "SIP", "call_id": "a84b4c76e66710@10.0.0.5",
        "method": "INVITE", "state": "completed", "from": "sip:alice@example.net", "to": "sip:bob@example.org",
        "start_time": "2026-11-23T10:00:00.000Z", "start_ts": 1795168800.0, "participants": [A, B],
        "metrics": {"duration_ms": 33030.0, "setup_time_ms": 3100.0, "mos": 4.2, "packets": 3007},
        "events_count": 7, "active": False}
CALL_DETAIL = {**CALL, "events": [{"ts": CALL["start_ts"] + t, "source": s, "destination": d, "message_type": m,
                                   "details": {"sdp": sdp}, "retransmission": False}
                                  for t, s, d, m, sdp in CALL_EVENTS],
               "streams": [{"kind": "rtp", "src": "10.0.0.5", "sport": 4000, "dst": "192.0.2.20", "dport": 5004,
                            "packets": 1500, "lost": 3, "mean_jitter_ms": 1.25,
                            "first_ns": int((CALL["start_ts"] + 3.2) * 1e9)}]}
ANSWERS = {
    "/v1/capture/status": {"running": True, "backend": "afpacket", "interface": "eth1", "file": None, "bpf": "",
                           "stats": {"packets": 5000}},
    "/v1/capture/metrics": {"pps": 123.0, "bps": 880000.0, "packets": 5000, "bytes": 3300000,
                            "drops": {"kernel": 0, "interface": 0, "event_ring": 0, "flow_ring": 0, "flow_table": 0,
                                      "bus_subscribers": 0},
                            "flows": {"active": 8, "created": 20, "evicted": 0}, "malformed": {"total": 2},
                            "history": HISTORY},
    "/v1/capture/backends": {"backends": [{"name": "pcapfile", "available": True},
                                          {"name": "afpacket", "available": True}]},
    "/v1/capture/flows": {"flows": FLOWS, "active": 8},
    "/v1/anomalies/by-type": {"total": 3, "by_type": {"port_scan": {"count": 1, "by_severity": {"high": 1}},
                                                      "packet_loss": {"count": 2, "by_severity": {"medium": 2}}}},
    "/v1/anomalies": {"anomalies": [
        {"window_id": 3, "severity": "high", "type": "port_scan", "flow_src": "203.0.113.9",
         "message": "Port scan from 203.0.113.9: 300 ports on 1 host(s), 280 refused or unreachable"},
        {"window_id": 5, "severity": "medium", "type": "packet_loss", "flow_src": "10.0.0.3:40003",
         "message": "High packet loss detected: 30.00% (3 retrans / 10 sent)"}]},
    "/v1/windows": {"total": 12, "set": {"window_size": 10, "kind": "live", "source": "eth1"}, "windows": WINDOWS},
    "/v1/baselines": {"available": 4, "name": "default", "baseline_duration_hours": 24,
                      "baselines": {"bandwidth": {"median": 2e5, "p95": 4e5}, "latency": {"median": 20.0},
                                    "connection": {"median": 30}}},
    "/v1/threats": {"total": 2, "limit": 200, "offset": 0, "count": 2, "threats": THREATS},
    "/v1/threats/thr_1a2b3c4d": THREAT_DETAIL,
    "/v1/calls": {"page": 1, "limit": 200, "total": 2, "active": 1, "capturing": True,
                  "calls": [{**CALL, "session_id": "c0ffee00-0000-4000-8000-000000000002", "state": "in_call",
                             "active": True, "start_time": "2026-11-23T10:05:00.000Z", "events_count": 5,
                             "metrics": {**CALL["metrics"], "mos": None}}, CALL]},
    "/v1/sessions/c0ffee00-0000-4000-8000-000000000001": CALL_DETAIL,
    "/v1/sessions/c0ffee00-0000-4000-8000-000000000002": {**CALL_DETAIL, "state": "in_call", "active": True,
                                                          "session_id": "c0ffee00-0000-4000-8000-000000000002"},
    "/v1/system": {"image": True, "release": {"version": "1.1.0", "build_id": "b42"}, "booted_slot": "b",
                   "committed_slot": "a", "trial": {"slot": "b", "version": "1.1.0"},
                   "slots": {"a": {"status": "good", "version": "1.0.0", "booted": False, "committed": True,
                                   "reason": None},
                             "b": {"status": "trying", "version": "1.1.0", "booted": True, "committed": False,
                                   "reason": None}}},
    "/v1/firmware": {"target": "capbox-fpga1", "rollback_floor": {"capbox-fpga1": 4},
                     "card": {"present": True, "target": "capbox-fpga1", "device": "/dev/capbox-fpga0",
                              "firmware_state": "running", "firmware_version": "2.0.0", "last_load_error": None,
                              "link_up": True}},
    "/v1/logs": {"logs": [{"level": "info", "logger": "agent.capture.control", "message": "capture 1 started"},
                          {"level": "warning", "logger": "agent.analysis.windowsets", "message": "a warning"}]},
}# the ladder route answers with the text the agent draws from each session (agent.calls.ladder)
ANSWERS.update({f"{path}/ladder": {"session_id": detail["session_id"], "text": ladder.text(detail)}
                for path, detail in list(ANSWERS.items()) if path.startswith("/v1/sessions/")})
HEALTH = {"status": "healthy", "version": "0.1.0", "mode": "live",
          "system": {"cpu_percent": 12.0, "load_average": [0.5, 0.4, 0.3], "memory": {"percent": 40.0},
                     "disk": {"percent": 25.0}, "process": {"rss_bytes": 60_000_000}},
          "interfaces": [{"name": "eth1", "up": True, "counters": {"bytes_recv": 5_000_000, "bytes_sent": 1000,
                                                                   "dropin": 0}}],
          "components": {n: {"status": "running", "critical": n != "stats", "last_heartbeat": 0, "error": None}
                         for n in ("store", "capture", "api", "stats", "analysis")}}


# the client methods the screens call, and the route whose answer above each one stands for
READS = {"capture_status": "/v1/capture/status", "capture_metrics": "/v1/capture/metrics",
         "capture_backends": "/v1/capture/backends", "capture_flows": "/v1/capture/flows",
         "anomalies_by_type": "/v1/anomalies/by-type", "anomalies": "/v1/anomalies", "windows": "/v1/windows",
         "baselines": "/v1/baselines", "list_threats": "/v1/threats", "get_threat": "/v1/threats/{}",
         "calls": "/v1/calls", "call_ladder": "/v1/sessions/{}/ladder", "system": "/v1/system",
         "firmware": "/v1/firmware", "recent_logs": "/v1/logs", "log_records": "/v1/logs/{}"}


class FakeSource:
    where = "fake"

    def __init__(self):
        self.answers = copy.deepcopy(ANSWERS)
        self.posted = []        # (method, args, kwargs) of every action

    def call(self, method: str, *args, **kwargs):
        if method not in READS:
            self.posted.append((method, args, kwargs))
            if method == "capture_filter" and args == ("tcp port",):
                raise SourceError("bad filter \"tcp port\": syntax error (bpf)")
            return {}
        path = READS[method].format(*args)
        if path not in self.answers:
            raise SourceError(f"no route {path}")
        return copy.deepcopy(self.answers[path])

    def optional(self, method: str, *args, **kwargs):
        return copy.deepcopy(self.answers.get(READS[method].format(*args)))

    def health(self) -> dict:
        return copy.deepcopy(HEALTH)
