"""Windows and anomalies as CSV or JSON lines (CLI and REST share it)."""
import csv
import io
import json

WINDOW_COLUMNS = ["window_id", "window_start", "window_end", "packets", "bytes", "avg_bps", "avg_pps",
                  "new_connections", "tcp_connections", "udp_connections", "mean_rtt", "p95_rtt", "max_rtt",
                  "p95_response_time", "retransmissions", "top_src", "top_dst"]
ANOMALY_COLUMNS = ["window_id", "window_start", "window_end", "type", "severity", "metric", "current_value",
                   "threshold", "flow_src", "flow_dst", "message"]


def window_row(w: dict) -> dict:
    top_src, top_dst = w["bandwidth"]["top_src_bytes"], w["bandwidth"]["top_dst_bytes"]
    return {"window_id": w["window_id"], "window_start": w["window_start"], "window_end": w["window_end"],
            "packets": w["record_count"], "bytes": w["bandwidth"]["bytes"], "avg_bps": w["bandwidth"]["avg_bps"],
            "avg_pps": w["bandwidth"]["avg_pps"], "new_connections": w["connections"]["total"],
            "tcp_connections": w["connections"]["protocols"]["tcp"],
            "udp_connections": w["connections"]["protocols"]["udp"],
            "mean_rtt": w["latency"]["mean_rtt"], "p95_rtt": w["latency"]["p95_rtt"],
            "max_rtt": w["latency"]["max_rtt"], "p95_response_time": w["latency"]["response_time"]["p95"],
            "retransmissions": w["tcp"]["retransmissions"],
            "top_src": top_src[0]["host"] if top_src else "", "top_dst": top_dst[0]["host"] if top_dst else ""}


def anomaly_row(a: dict) -> dict:
    return {k: a.get(k) for k in ANOMALY_COLUMNS}


def render(items: list, fmt: str, kind: str) -> str:
    """items as 'csv' or 'jsonl' text; kind is 'windows' or 'anomalies'."""
    if fmt == "jsonl":
        return "".join(json.dumps(x) + "\n" for x in items)
    columns, row = (WINDOW_COLUMNS, window_row) if kind == "windows" else (ANOMALY_COLUMNS, anomaly_row)
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    for x in items:
        w.writerow(row(x))
    return out.getvalue()
