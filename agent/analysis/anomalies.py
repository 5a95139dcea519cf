"""Anomalies in traffic windows: traffic_spike, port_scan, high_latency,
packet_loss, protocol_anomaly, long_lived_conn.

One Detector per window series: it remembers a few windows (for a spike
without a baseline, and scans spread over time) and compares each window
with the baseline when there is one, with the configured defaults when not.
Every anomaly says what it measured (metric, current_value, threshold) and,
where a flow or a host is to blame, which (flow_src/flow_dst)."""
import collections
from typing import Optional

from agent.config import AnalysisSection as Thresholds  # the thresholds are configuration

TYPES = ("traffic_spike", "port_scan", "high_latency", "packet_loss", "protocol_anomaly", "long_lived_conn")
SEVERITIES = ("medium", "high")


def _anomaly(w: dict, type_: str, severity: str, message: str, metric: str, value, threshold,
             flow_src: Optional[str] = None, flow_dst: Optional[str] = None, key: str = "") -> dict:
    return {"type": type_, "severity": severity, "window_id": w["window_id"],
            "window_start": w["window_start"], "window_end": w["window_end"], "message": message,
            "metric": metric, "current_value": value, "threshold": threshold,
            "flow_src": flow_src, "flow_dst": flow_dst, "key": key or message}


def _endpoint(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


class Detector:
    def __init__(self, thresholds: Thresholds = Thresholds(), baseline: Optional[dict] = None):
        self.t = thresholds
        self.baseline = baseline or {}
        self.recent_bps: collections.deque = collections.deque(maxlen=30)
        self.sources: collections.deque = collections.deque(maxlen=thresholds.scan_memory)
        self.reported_scans: dict = {}   # host -> (severity, window_id) of its last report, oldest first

    def detect(self, w: dict) -> list:
        """The anomalies of one window, in window order (call for each window once)."""
        found = []
        for check in (self._spike, self._scan, self._latency, self._loss, self._protocol, self._long_lived):
            found.extend(check(w))
        if w["record_count"]:
            self.recent_bps.append(w["bandwidth"]["avg_bps"])
        return found

    # ---- the checks ------------------------------------------------------------

    def _spike(self, w: dict) -> list:
        bps = w["bandwidth"]["avg_bps"]
        base = self.baseline.get("bandwidth")
        if base and base.get("count"):
            threshold = max(base["p99"], base["mean"] + 3 * base["std"]) * (self.t.spike_factor / 3 + 2 / 3)
            against = "the baseline"
        elif len(self.recent_bps) >= self.t.spike_history:
            med = sorted(self.recent_bps)[len(self.recent_bps) // 2]
            threshold = med * self.t.spike_factor
            against = "the recent median"
        else:
            return []
        threshold = max(threshold, self.t.spike_min_bps)
        if bps <= threshold:
            return []
        severity = "high" if bps > 2 * threshold else "medium"
        top = w["bandwidth"]["top_src_bytes"][:1]
        return [_anomaly(w, "traffic_spike", severity,
                         f"Traffic spike: {bps / 1e6:.2f} Mbit/s, over {threshold / 1e6:.2f} Mbit/s from {against}",
                         "avg_bps", round(bps, 1), round(threshold, 1), top[0]["host"] if top else None, None,
                         key="traffic_spike")]

    def _scan(self, w: dict) -> list:
        self.sources.append({s["host"]: s for s in w["sources"]})
        # a report older than scan_memory windows holds nothing back: forgotten, so that
        # sources that scanned once (spoofed ones, by the million) do not pile up here
        reported = self.reported_scans
        while reported and w["window_id"] - next(iter(reported.values()))[1] >= self.t.scan_memory:
            del reported[next(iter(reported))]
        out = []
        for host in sorted({s["host"] for s in w["sources"]}):
            seen = [win[host] for win in self.sources if host in win]
            total = {k: sum(s[k] for s in seen) for k in ("new_flows", "odd_flag_flows", "rst_received",
                                                           "unreachable_received", "tcp_syn_flows")}
            ports, hosts = max(s["ports"] for s in seen), max(s["hosts"] for s in seen)
            refused = total["rst_received"] + total["unreachable_received"]
            share = refused / total["new_flows"] if total["new_flows"] else 0.0
            severity, why, metric, value, threshold = None, "", "", 0, 0
            if total["odd_flag_flows"]:
                severity = "high" if total["odd_flag_flows"] >= 2 or refused >= 3 else "medium"
                why, metric, value, threshold = (f"{total['odd_flag_flows']} FIN/NULL/Xmas probes",
                                                 "odd_flag_flows", total["odd_flag_flows"], 1)
            # a vertical scan reaches many ports of few hosts; peer-to-peer traffic, a
            # port or two on each of many hosts: ports and hosts grow together there
            vertical = ports >= 5 * max(hosts, 1)
            if ports >= self.t.scan_ports and vertical:
                severity = "high"
                why, metric, value, threshold = (f"{ports} ports on {hosts} host(s), {refused} refused or unreachable",
                                                 "distinct_ports", ports, self.t.scan_ports)
            elif hosts >= self.t.scan_hosts and share >= self.t.scan_refused_share:
                severity = "high"
                why, metric, value, threshold = (f"{hosts} hosts, {share:.0%} refused or unreachable",
                                                 "distinct_hosts", hosts, self.t.scan_hosts)
            elif ports >= 15 and vertical and share >= self.t.scan_refused_share and not severity:
                severity = "medium"
                why, metric, value, threshold = (f"{ports} ports on {hosts} host(s), {share:.0%} refused or unreachable",
                                                 "distinct_ports", ports, 15)
            if not severity:
                continue
            # one report per source and severity while the probes go on
            last = self.reported_scans.get(host)
            if last is not None and SEVERITIES.index(last[0]) >= SEVERITIES.index(severity) \
                    and w["window_id"] - last[1] < self.t.scan_memory:
                continue
            self.reported_scans.pop(host, None)          # to the end: the dict stays in report order
            self.reported_scans[host] = (severity, w["window_id"])
            out.append(_anomaly(w, "port_scan", severity, f"Port scan from {host}: {why}", metric, value,
                                threshold, host, None, key=f"port_scan {host}"))
        return out

    def _latency(self, w: dict) -> list:
        lat = w["latency"]
        out = []
        base = self.baseline.get("latency") or {}
        for metric, value, base_stats, default, factor, what in (
                ("p95_rtt", lat["p95_rtt"], base, self.t.rtt_ms, 3, "handshake RTT"),
                ("p95_response_time", lat["response_time"]["p95"], base.get("response_time") or {},
                 self.t.response_ms, 5, "response time")):
            if value is None:
                continue
            if base_stats.get("count"):
                threshold = max(default / 2, base_stats["p99"] * 2, base_stats["mean"] + 3 * base_stats["std"])
            else:
                threshold = default
            if value <= threshold:
                continue
            severity = "high" if value > factor * threshold else "medium"
            out.append(_anomaly(w, "high_latency", severity,
                                f"High latency: {what} p95 {value:.1f} ms over {threshold:.1f} ms",
                                metric, value, round(threshold, 3), key=f"high_latency {metric}"))
        return out

    def _loss(self, w: dict) -> list:
        out = []
        for f in w["notable_flows"]:
            if f["kind"] != "loss" or not f["segments"]:
                continue
            pct = 100.0 * f["retransmissions"] / f["segments"]
            # TCP throughput falls as 1/sqrt(loss) (Mathis et al.): a few percent already hurts, once the
            # sample is large enough to mean it; a connection retransmitting most of what it sends is
            # stalling whatever its size
            sampled = f["segments"] >= self.t.loss_min_segments and pct >= self.t.loss_percent
            stalled = f["retransmissions"] >= self.t.loss_min_retransmissions and pct >= self.t.loss_high_percent
            if not (sampled or stalled):
                continue
            severity = "high" if pct >= self.t.loss_high_percent else "medium"
            src, dst = _endpoint(f["src"], f["sport"]), _endpoint(f["dst"], f["dport"])
            out.append(_anomaly(w, "packet_loss", severity,
                                f"High packet loss detected: {pct:.2f}% ({f['retransmissions']} retrans / "
                                f"{f['segments']} sent)", "packet_loss_percent", round(pct, 2),
                                self.t.loss_high_percent if severity == "high" else self.t.loss_percent,
                                src, dst, key=f"packet_loss {src} {dst}"))
        return out

    def _protocol(self, w: dict) -> list:
        out = []
        for f in w["notable_flows"]:
            if f["kind"] != "protocol_port":
                continue
            src, dst = _endpoint(f["src"], f["sport"]), _endpoint(f["dst"], f["dport"])
            out.append(_anomaly(w, "protocol_anomaly", "medium",
                                f"{f['app'].upper()} on port {f['dport']}, where {f['port_app']} is expected",
                                "protocol_port", f["app"], f["port_app"], src, dst,
                                key=f"protocol_anomaly port {src} {dst}"))
        base = self.baseline.get("protocol")
        if not base or w["record_count"] < self.t.protocol_min_packets:
            return out
        for part in ("l4", "applications"):
            for name, stats in base.get(part, {}).items():
                if not stats.get("count"):
                    continue
                share = w["protocol"][part].get(name, 0.0)
                limit = max(self.t.protocol_shift, 3 * stats["std"])
                shift = abs(share - stats["mean"])
                if shift <= limit:
                    continue
                severity = "high" if shift > 2 * limit else "medium"
                out.append(_anomaly(w, "protocol_anomaly", severity,
                                    f"Protocol mix: {name} at {share:.0%} of packets, baseline {stats['mean']:.0%}",
                                    f"{part}_share:{name}", round(share, 4), round(limit, 4),
                                    key=f"protocol_anomaly mix {name}"))
        return out

    def _long_lived(self, w: dict) -> list:
        out = []
        for f in w["notable_flows"]:
            if f["kind"] != "long_lived" or f["duration_s"] < self.t.long_lived_s:
                continue
            src, dst = _endpoint(f["src"], f["sport"]), _endpoint(f["dst"], f["dport"])
            severity = "high" if f["duration_s"] >= 24 * 3600 else "medium"
            out.append(_anomaly(w, "long_lived_conn", severity,
                                f"Long-lived connection: {f['proto']} {src} -> {dst} open {f['duration_s']:.0f} s",
                                "duration_s", f["duration_s"], self.t.long_lived_s, src, dst,
                                key=f"long_lived_conn {src} {dst}"))
        return out


def detect_all(windows, thresholds: Thresholds = Thresholds(), baseline: Optional[dict] = None) -> list:
    d = Detector(thresholds, baseline)
    out = []
    for w in windows:
        out.extend(d.detect(w))
    return out


def summarize(anomalies: list) -> dict:
    by_type = collections.Counter(a["type"] for a in anomalies)
    by_sev = collections.Counter(a["severity"] for a in anomalies)
    return {"by_type": dict(by_type), "by_severity": dict(by_sev)}
