"""Traffic windows from the C core, as plain dicts in the seeds' shape.

The core hands over counts, reservoirs of handshake and response times,
talkers, initiators and notable flows per window; the figures (rates,
percentiles, mixes) are computed here, once per window."""
import statistics

from hwdrivers._hw import ffi, lib
from hwdrivers.flows import APP_NAMES, format_addr, proto_name

LAYERS = [ffi.string(lib.hw_layer_name(i)).decode() for i in range(lib.HW_L_COUNT)]
FLOW_KINDS = {lib.HW_WF_LOSS: "loss", lib.HW_WF_LONG: "long_lived", lib.HW_WF_PORT: "protocol_port"}
L4 = ("tcp", "udp", "icmp", "icmpv6", "other_l4")


def percentile(values: list, p: float):
    """Nearest-rank percentile, None for no values."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


def _times(count: int, sum_ns: int, max_ns: int, samples) -> dict:
    ms = [v / 1000 for v in samples]
    return {"count": count,
            "mean": round(sum_ns / count / 1e6, 3) if count else None,
            "max": round(max_ns / 1e6, 3) if count else None,
            "median": round(statistics.median(ms), 3) if ms else None,
            "p95": round(percentile(ms, 95), 3) if ms else None,
            "p99": round(percentile(ms, 99), 3) if ms else None}


def _hosts(arr, n) -> list:
    return [{"host": format_addr(arr[i].family, arr[i].addr), "bytes": arr[i].bytes} for i in range(n)]


def from_cdata(w, size_s: float) -> dict:
    start, end = w.start_ns / 1e9, w.end_ns / 1e9
    has_packets = w.packets > 0
    span = (w.last_packet_ns - w.first_packet_ns) / 1e9 if has_packets else 0.0
    duration = min(size_s, end - start)
    rtt = _times(w.rtt_count, w.rtt_sum_ns, w.rtt_max_ns, [w.rtt_us[i] for i in range(w.rtt_samples)])
    resp = _times(w.resp_count, w.resp_sum_ns, w.resp_max_ns, [w.resp_us[i] for i in range(w.resp_samples)])
    layers = {LAYERS[i]: {"packets": w.layer_packets[i], "bytes": w.layer_bytes[i]}
              for i in range(lib.HW_L_COUNT) if w.layer_packets[i]}
    apps = {APP_NAMES[i]: {"packets": w.app_packets[i], "bytes": w.app_bytes[i]}
            for i in range(lib.HW_APP_COUNT) if w.app_packets[i]}
    l4_total = sum(layers.get(k, {}).get("packets", 0) for k in L4)
    sources = []
    for i in range(w.n_sources):
        s = w.sources[i]
        sources.append({"host": format_addr(s.family, s.addr), "new_flows": s.new_flows,
                        "tcp_syn_flows": s.tcp_syn_flows, "odd_flag_flows": s.odd_flag_flows,
                        "udp_flows": s.udp_flows, "rst_received": s.rst_received,
                        "unreachable_received": s.unreachable_received, "hosts": s.hosts, "ports": s.ports})
    flows = []
    for i in range(w.n_flows):
        f = w.flows[i]
        flows.append({"kind": FLOW_KINDS.get(f.kind, str(f.kind)), "src": format_addr(f.family, f.src),
                      "dst": format_addr(f.family, f.dst), "sport": f.sport, "dport": f.dport,
                      "proto": proto_name(f.proto), "app": APP_NAMES[f.app], "port_app": APP_NAMES[f.port_app],
                      "first": f.first_ns / 1e9, "last": f.last_ns / 1e9,
                      "duration_s": round((f.last_ns - f.first_ns) / 1e9, 3),
                      "packets": f.packets, "bytes": f.bytes, "segments": f.segments,
                      "retransmissions": f.retransmissions})
    return {
        "window_id": w.index,
        "window_start": start,
        "window_end": end,
        "first_packet": w.first_packet_ns / 1e9 if has_packets else None,
        "last_packet": w.last_packet_ns / 1e9 if has_packets else None,
        "skipped_before": w.skipped_before,
        "record_count": w.packets,
        "bandwidth": {
            "bytes": w.bytes, "packets": w.packets,
            "avg_bps": round(8 * w.bytes / duration, 3) if duration > 0 else 0.0,
            "avg_pps": round(w.packets / duration, 3) if duration > 0 else 0.0,
            "duration_s": round(span, 6),
            "top_src_bytes": _hosts(w.top_src, w.n_top_src),
            "top_dst_bytes": _hosts(w.top_dst, w.n_top_dst),
        },
        "latency": {"mean_rtt": rtt["mean"], "max_rtt": rtt["max"], "p95_rtt": rtt["p95"],
                    "median_rtt": rtt["median"], "p99_rtt": rtt["p99"], "handshakes": rtt["count"],
                    "response_time": resp},
        "connections": {
            "total": w.new_flows,
            "protocols": {"tcp": w.new_flows_tcp, "udp": w.new_flows_udp, "icmp": w.new_flows_icmp,
                          "other": w.new_flows_other},
            "active": w.flows_active,
        },
        "protocol": {
            "l4": {k: round(layers[k]["packets"] / l4_total, 6) for k in L4 if k in layers} if l4_total else {},
            "applications": {k: round(v["packets"] / w.packets, 6) for k, v in apps.items()} if w.packets else {},
            "layers": layers,
            "application_packets": apps,
        },
        "tcp": {"syn": w.tcp_syn, "synack": w.tcp_synack, "rst": w.tcp_rst, "fin": w.tcp_fin,
                "segments": w.tcp_segments, "retransmissions": w.tcp_retransmissions},
        "malformed": w.malformed,
        "sources": sources,
        "sources_dropped": w.sources_dropped,
        "notable_flows": flows,
    }
