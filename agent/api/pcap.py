"""/v1/pcap: the packets behind an answer, as one pcapng streamed from the
recordings: a window and a BPF filter, or those of a flow, a threat or a call
(agent/recordings/packets.py says how each expands)."""
import bottle

from agent.api.app import READ, Api
from agent.api.validate import Field, bpf
from agent.recordings import packets

PCAP = {
    "since": Field(str, "", max_len=64, doc="unix seconds (to the nanosecond) or ISO 8601; default: the oldest kept"),
    "until": Field(str, "", max_len=64, doc="unix seconds or ISO 8601; default: the newest kept"),
    "bpf": bpf("", "BPF filter the packets must pass (with flow/threat/call: as well as theirs)"),
    "flow": Field(int, 0, 0, doc="a flow id of the running (or last) capture, in its table or ended: its hosts, ports and life"),
    "threat": Field(str, "", max_len=64, doc="a threat id: the parties it names, first to last sighting"),
    "call": Field(str, "", max_len=128, doc="a call session id: its signalling and media, over the call"),
    "pad_s": Field(float, packets.PAD_S, 0, 3600, doc="seconds added either side of a flow's, threat's or call's time"),
}


def register(api: Api) -> None:
    agent = api.agent

    @api.route("GET", "/v1/pcap", "The kept packets of a window (and filter, flow, threat or call) as one pcapng",
               access=READ, query=PCAP, tag="recordings")
    def pcap(since, until, bpf, flow, threat, call, pad_s):
        w = packets.asked(agent, since, until, bpf, flow, threat, call, pad_s)
        key = bottle.request.environ.get("capbox.key")
        headers, body = agent.capture.packets(w, full_key=key is not None and key.kind == "sk")
        keep = {k: v for k, v in bottle.response.headers.items() if k.lower().startswith("x-")}
        return bottle.HTTPResponse(body=body, status=200, headers={**keep, **headers})
