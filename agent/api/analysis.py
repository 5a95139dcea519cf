"""/v1 traffic analysis: windows (the seeds' metrics), anomalies, baselines."""
import bottle

from agent.analysis import export
from agent.analysis.anomalies import SEVERITIES, TYPES
from agent.analysis.baselines import TYPES as BASELINE_TYPES
from agent.api.app import WRITE, Api
from agent.api.validate import Field

SET = {"set": Field(int, 0, 0, doc="window set id; 0 = the newest")}
BASELINE = {"name": Field(str, "default")}
FORMAT = {"format": Field(str, "json", choices=("json", "csv", "jsonl"), doc="csv and jsonl for export")}
WINDOWS = {"limit": Field(int, 50, 1, 10000), "offset": Field(int, 0, 0), **SET, **FORMAT}
ANOMALIES = {"type": Field(str, "", choices=("",) + TYPES), "severity": Field(str, "", choices=("",) + SEVERITIES),
             "limit": Field(int, 100, 1, 10000), "offset": Field(int, 0, 0), **SET, **FORMAT}
COMPUTE = {"source": Field(str, "pcap", choices=("pcap", "live")),
           "pcap_file": Field(str, "", doc="a capture file in a capture directory"),
           "window_size": Field(int, 0, 0, 3600, doc="seconds; 0 = the configured size"),
           "force": Field(bool, False)}
DETECT = {"force": Field(bool, False), "window_start": Field(float, -1.0, doc="unix seconds; -1 = from the first"),
          "window_end": Field(float, -1.0, doc="unix seconds; -1 = to the last"), "baseline": Field(str, "default"),
          "set": Field(int, 0, 0)}
GENERATE = {"force": Field(bool, False), "types": Field(list, list(BASELINE_TYPES)), "name": Field(str, "default"),
            "set": Field(int, 0, 0), "window_start": Field(float, -1.0), "window_end": Field(float, -1.0)}


def _export(items: list, fmt: str, kind: str):
    mime = "text/csv" if fmt == "csv" else "application/x-ndjson"
    return bottle.HTTPResponse(export.render(items, fmt, kind), status=200,
                               headers={"Content-Type": f"{mime}; charset=utf-8"})


def _span(v: float):
    return None if v < 0 else v


def register(api: Api) -> None:
    _windows(api)
    _anomalies(api)
    _baselines(api)


def _windows(api: Api) -> None:
    agent = api.agent

    def svc():
        return agent.analysis

    @api.route("GET", "/v1/windows", "Traffic windows, 0-indexed (the seeds' metrics)", query=WINDOWS, tag="windows")
    def windows(limit, offset, set, format):
        body = svc().windows(set or None, limit, offset)
        return _export(body["windows"], format, "windows") if format != "json" else body

    @api.route("GET", "/v1/windows/summary", "Figures across all windows of a set", query=SET, tag="windows")
    def summary(set):
        return svc().summary(set or None)

    @api.route("GET", "/v1/windows/sets", "Window sets: live captures and computed files", tag="windows")
    def sets():
        items = svc().sets()
        return {"count": len(items), "sets": items}

    @api.route("GET", "/v1/windows/jobs/<job_id:int>", "A computation's progress", tag="windows")
    def job(job_id):
        return svc().job(job_id)

    @api.route("GET", "/v1/windows/<window_id:int>", "One window (404 with total_windows)", query=SET, tag="windows")
    def window(window_id, set):
        return svc().window(window_id, set or None)

    @api.route("POST", "/v1/windows/compute", "Compute windows of a capture file in the background (202)",
               access=WRITE, body=COMPUTE, tag="windows")
    def compute(source, pcap_file, window_size, force):
        return agent.compute_windows(source, pcap_file, window_size, force)


def _anomalies(api: Api) -> None:
    def svc():
        return api.agent.analysis

    @api.route("GET", "/v1/anomalies", "Anomalies, filtered by type and severity", query=ANOMALIES, tag="anomalies")
    def anomalies(type, severity, limit, offset, set, format):
        body = svc().anomalies(set or None, type, severity, limit, offset)
        return _export(body["anomalies"], format, "anomalies") if format != "json" else body

    @api.route("GET", "/v1/anomalies/by-type", "Anomaly counts by type and severity", query=SET, tag="anomalies")
    def by_type(set):
        return svc().by_type(set or None)

    @api.route("GET", "/v1/anomalies/top", "The most frequent anomalies (grouped by type and subject)",
               query={"limit": Field(int, 10, 1, 1000), **SET}, tag="anomalies")
    def top(limit, set):
        return svc().top(set or None, limit)

    @api.route("GET", "/v1/anomalies/window/<window_id:int>", "The anomalies of one window", query=SET,
               tag="anomalies")
    def of_window(window_id, set):
        body = svc().anomalies(set or None, limit=10000, window_id=window_id)
        return {"window_id": window_id, "count": body["count"], "set": body["set"], "anomalies": body["anomalies"]}

    @api.route("POST", "/v1/anomalies/detect", "Run anomaly detection over stored windows", access=WRITE,
               body=DETECT, tag="anomalies")
    def detect(force, window_start, window_end, baseline, set):
        return svc().detect(set or None, force, _span(window_start), _span(window_end), baseline)


def _baselines(api: Api) -> None:
    def svc():
        return api.agent.analysis

    @api.route("GET", "/v1/baselines", "Baselines: mean, median, min, max, p95, p99 per type",
               query=BASELINE, tag="baselines")
    def baselines(name):
        return svc().baselines(name)

    @api.route("GET", "/v1/baselines/stats", "The key figures of the baselines", query=BASELINE,
               tag="baselines")
    def baseline_stats(name):
        return svc().baseline_stats(name)

    @api.route("GET", "/v1/baselines/<type_>", "One baseline (404 when not learned)",
               query=BASELINE, tag="baselines")
    def baseline(type_, name):
        return svc().baseline_of(type_, name)

    @api.route("POST", "/v1/baselines/generate", "Learn baselines from a set's windows", access=WRITE,
               body=GENERATE, tag="baselines")
    def generate(force, types, name, set, window_start, window_end):
        return svc().generate_baselines(tuple(types), set or None, force, name, _span(window_start),
                                        _span(window_end))
