"""/v1/capture: backends, start/stop, status, metrics, flow meter, flows."""
from agent.api.app import WRITE, Api
from agent.api.validate import Field, bpf
from agent.capture.run import CaptureRequest
from agent.capture.control import FLOW_SORTS
from agent.configrules import RULES
from agent.errors import validation
from hwdrivers import CAPTURE_DEFAULTS as D, backend_names


def _ranged(kind: type, key: str, doc: str = "") -> Field:
    """A capture parameter with C's default (hwdrivers) and the config's range (agent.configrules)."""
    rule = RULES[f"capture.{key}"]
    return Field(kind, getattr(D, key), rule["min"], rule["max"], doc=doc)


START = {
    "interface": Field(str, "", doc="interface to capture on"),
    "file": Field(str, "", doc="capture file (in a capture directory), or 'demo'"),
    "backend": Field(str, "", choices=("", *backend_names()),
                     doc="fpga: the capture card; interface is its device path (default firmware.device)"),
    "buffer_size_mb": _ranged(int, "buffer_size_mb", doc="capture ring / buffer size"),
    "snaplen": _ranged(int, "snaplen"),
    "bpf": bpf("", "BPF filter expression"),
    "promisc": Field(bool, D.promisc),
    "fanout_group": _ranged(int, "fanout_group", doc="afpacket fanout group, -1 for none"),
    "pace": _ranged(float, "pace", doc="files: replay speed, 1.0 = recorded pace, 0 = as fast as possible"),
    "loop": Field(bool, D.loop, doc="files: start over at the end"),
    "duration": Field(float, 0.0, 0, 31 * 86400, doc="stop after this many seconds; 0 = never"),
}
STOP = {"reason": Field(str, "manual", doc="recorded with the run")}
FILTER = {"bpf": bpf("", "expression; empty for none")}
METER = {
    "enable": Field(bool, True, aliases=("enabled",)),
    "idle_timeout_s": Field(int, 300, 0, 86400, aliases=("flow_timeout_sec",)),
    "active_timeout_s": Field(int, 1800, 0, 86400),
    "sampling_rate": Field(int, 1, 1, 16383, doc="meter one packet in N (announced to collectors); 1: every packet"),
}
FLOWS = {
    "limit": Field(int, 100, 1, 10000),
    "min_packets": Field(int, 0, 0),
    "sort": Field(str, "bytes", choices=FLOW_SORTS),
    "proto": Field(str, "", choices=("", "tcp", "udp", "icmp", "icmpv6", "sctp")),
    "host": Field(str, "", doc="either end's address"),
    "port": Field(int, 0, 0, 65535, doc="either end's port"),
    "vlan": Field(int, -1, -1, 4095),
}


def capture_request(interface: str, file: str, **opts) -> CaptureRequest:
    """A start body (START's fields, validated) as the capture service takes it."""
    if interface and file:
        raise validation("give an interface or a file, not both", field="file")
    return CaptureRequest(source=interface or file, **opts)


def register(api: Api) -> None:
    svc = api.agent.capture

    @api.route("GET", "/v1/capture/backends", "Capture backends, their capabilities and availability here")
    def backends():
        items = svc.backends()
        return {"count": len(items), "backends": items}

    @api.route("POST", "/v1/capture/start", "Start capturing on an interface or a file", access=WRITE, body=START)
    def start(**body):
        return svc.start(capture_request(**body))

    @api.route("POST", "/v1/capture/stop", "Stop the capture", access=WRITE, body=STOP)
    def stop(reason):
        return svc.stop(reason)

    @api.route("POST", "/v1/capture/filter", "Replace the running capture's BPF filter", access=WRITE,
               body=FILTER)
    def set_filter(bpf):
        return svc.set_filter(bpf)

    @api.route("GET", "/v1/capture/status", "Whether a capture runs, on what, since when")
    def status():
        return svc.status()

    @api.route("GET", "/v1/capture/metrics", "Rates, drops by cause, rings and counters (409 when idle)")
    def metrics():
        return svc.metrics()

    @api.route("POST", "/v1/capture/flow-meter", "Flow meter on/off and its idle/active timeouts",
               access=WRITE, body=METER)
    def flow_meter(enable, idle_timeout_s, active_timeout_s, sampling_rate):
        return svc.set_flow_meter(enable, idle_timeout_s, active_timeout_s, sampling_rate)

    @api.route("GET", "/v1/capture/flows", "Active flows, top N by a sort key, with filters (409 when idle)",
               query=FLOWS)
    def flows(**q):
        return svc.flows(**q)
