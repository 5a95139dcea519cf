"""The packets behind an answer: a time window and a BPF filter (given, or
made from a flow, a threat or a call) turned into one pcapng of the kept
packets that match, extracted in C from only the recordings' ranges the
window overlaps (agent/recordings/index.py) and streamed as it is written.

A window that no kept recording covers is NO_PACKETS_KEPT (404): its packets
were never recorded or have aged out.  A covered window with no matching
packet is an empty pcapng (a section header only)."""
import dataclasses
import datetime
import decimal
import ipaddress
import logging
import os
import threading
from typing import Iterator, Optional

from agent.errors import AgentError, validation
from agent.recordings.index import RecordingIndex
from hwdrivers import CaptureError, check_filter
from hwdrivers.extract import NO_TIME, extract

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/vnd.tcpdump.pcap-ng"
READ = 1 << 16
NS = 10 ** 9
PAD_S = 1.0             # seconds either side of a flow's, threat's or call's time, unless asked otherwise
MAX_TERMS = 64           # conversations of a call in its filter (libpcap's compile time grows with it)


@dataclasses.dataclass(frozen=True)
class Window:
    since_ns: int
    until_ns: int
    bpf: str
    what: str            # "window", "flow 12", "threat thr_…", "call …"

    def as_dict(self) -> dict:
        return {"since_ns": self.since_ns, "until_ns": self.until_ns, "bpf": self.bpf, "what": self.what}


def parse_time(text: str, name: str) -> Optional[int]:
    """Unix seconds (fractions kept to the nanosecond) or ISO 8601, as nanoseconds; None for ""."""
    if not text:
        return None
    try:
        ns = int(decimal.Decimal(text) * NS)
    except (decimal.InvalidOperation, ValueError):
        try:
            dt = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise validation(f"{name} must be unix seconds or an ISO 8601 time", field=name) from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=datetime.timezone.utc)
        ns = int(decimal.Decimal(str(dt.timestamp())) * NS)
    if not 0 <= ns < NO_TIME:
        raise validation(f"{name} is out of range", field=name)
    return ns


def _around(first_ns: int, last_ns: int, pad_s: float) -> tuple:
    pad = int(pad_s * NS)
    return max(0, first_ns - pad), last_ns + pad


def _ns(seconds: float, up: bool) -> int:
    """Float seconds (a threat's or call's time) as nanoseconds, a microsecond outward: floats
    do not hold a packet's nanosecond time exactly."""
    return int(seconds * NS) + (1000 if up else -1000)


def _host(addr) -> Optional[str]:
    try:
        return str(ipaddress.ip_address(addr)) if addr else None
    except ValueError:
        return None


def conversation(a: str, b: str, ports: tuple = (), proto: str = "") -> str:
    """The filter of the packets between two hosts (and ports), both ways."""
    terms = [proto] if proto else []
    terms += [f"host {a}", f"host {b}"] if a != b else [f"host {a}"]
    terms += [f"port {p}" for p in dict.fromkeys(p for p in ports if p)]
    return " and ".join(terms)


def flow_window(flow, pad_s: float) -> Window:
    """A flow (hwdrivers FlowRecord): its hosts, ports and protocol, over its life."""
    proto = {6: "tcp", 17: "udp", 132: "sctp"}.get(flow.proto)
    ports = (flow.sport, flow.dport) if proto else ()
    if proto is None:
        proto = f"{'ip' if flow.family == 4 else 'ip6'} proto {flow.proto}"
    bpf = conversation(flow.src, flow.dst, ports, proto)
    if flow.vlan:   # `vlan` moves the offsets of what follows it: the untagged form goes first
        bpf = f"({bpf}) or (vlan and {bpf})"
    since, until = _around(flow.first_ns, flow.last_ns, pad_s)
    return Window(since, until, bpf, f"flow {flow.id}")


def threat_window(row: dict, pad_s: float) -> Window:
    """A threat (its stored row): the parties it names, from its first to its last sighting."""
    src, dst, attacker = _host(row["source_ip"]), _host(row["dest_ip"]), _host(row["attacker"])
    terms = []
    if src and dst:
        terms.append(conversation(src, dst))
    for h in dict.fromkeys(x for x in (attacker, None if dst else src) if x):
        terms.append(f"host {h}")
    for mac in dict.fromkeys(m for m in (row["attacker_mac"], row["src_mac"]) if m):
        terms.append(f"ether host {mac}")
    if not terms:
        raise AgentError("NO_FILTER", f"threat {row['id']} names no host or address to find its packets by",
                         {"threat_id": row["id"]})
    since, until = _around(_ns(row["first_seen"], False), _ns(row["last_seen"], True), pad_s)
    return Window(since, until, " or ".join(f"({t})" for t in terms), f"threat {row['id']}")


def _split(endpoint: str) -> tuple:
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), int(port)


def call_window(detail: dict, pad_s: float) -> Window:
    """A call (its detail): every signalling and media conversation, over the call."""
    terms = []
    for e in detail.get("events", []):
        (a, ap), (b, bp) = _split(e["source"]), _split(e["destination"])
        terms.append(conversation(a, b, (ap, bp), "tcp" if e.get("transport", "").lower() == "tcp" else "udp"))
    for s in detail.get("streams", []):
        terms.append(conversation(s["src"], s["dst"], (s["sport"], s["dport"]), "udp"))
    terms = list(dict.fromkeys(terms))[:MAX_TERMS]
    if not terms:
        raise AgentError("NO_FILTER", "this call has no conversation to find its packets by",
                         {"call_id": detail.get("session_id")})
    since, until = _around(_ns(detail["start_ts"], False), _ns(detail["end_ts"], True), pad_s)
    return Window(since, until, " or ".join(f"({t})" for t in terms), f"call {detail.get('session_id')}")


def given_window(since: str, until: str, bpf: str) -> Window:
    s, u = parse_time(since, "since"), parse_time(until, "until")
    s, u = 0 if s is None else s, NO_TIME - 1 if u is None else u
    if u < s:
        raise validation("until is before since", field="until")
    return Window(s, u, bpf, "window")


def live_or_ended_flow(agent, flow_id: int):
    """A flow in the running capture's table, or one of its flows that ended (the log service remembers
    those it logged: conn)."""
    try:
        return agent.capture.flow(flow_id)
    except AgentError:
        ended = agent.protologs.ended_flow(flow_id)
        if ended is None:
            raise
        return ended


def asked(agent, since, until, bpf, flow, threat, call, pad_s) -> Window:
    """The window (and filter) a request names: a flow, a threat or a call, narrowed by since/until/bpf."""
    if sum(map(bool, (flow, threat, call))) > 1:
        raise validation("give at most one of flow, threat and call", field="flow")
    if flow:
        w = flow_window(live_or_ended_flow(agent, flow), pad_s)
    elif threat:
        w = threat_window(agent.threats.get_row(threat), pad_s)
    elif call:
        w = call_window(agent.calls.session_detail(call), pad_s)
    else:
        return given_window(since, until, bpf)
    given = given_window(since, until, "")
    return Window(max(w.since_ns, given.since_ns), min(w.until_ns, given.until_ns),
                  f"({w.bpf}) and ({bpf})" if bpf else w.bpf, w.what)


def check_bpf(bpf: str) -> None:
    if bpf:
        try:
            check_filter(bpf)
        except CaptureError as e:
            raise validation(e.message, field="bpf", capture_error=e.code.name) from None


def plan(index: RecordingIndex, active: Optional[str], w: Window) -> tuple:
    """(sources, what was looked at): the ranges to read, or NO_PACKETS_KEPT."""
    check_bpf(w.bpf)
    indexed = index.refresh(active)
    sources = index.sources(indexed, w.since_ns, w.until_ns)
    readable = [ix for ix in indexed if ix.first_ns is not None]
    if not sources:
        kept = {"oldest_ns": min((ix.first_ns for ix in readable), default=None),
                "newest_ns": max((ix.last_ns for ix in readable), default=None), "files": len(indexed)}
        skipped = [ix.summary() for ix in indexed if ix.error]
        why = ("its packets have aged out of the recordings" if kept["oldest_ns"] and w.until_ns < kept["oldest_ns"]
               else "no kept recording covers it")
        raise AgentError("NO_PACKETS_KEPT", f"{w.what}: {why}",
                         {**w.as_dict(), "kept": kept, "unreadable": skipped})
    return sources, {"files": len(sources), "ranges": sum(len(s.marks) for s in sources)}


def stream(sources: list, w: Window) -> Iterator[bytes]:
    """The pcapng, as C writes it into a pipe from a thread of its own; a client that goes away
    closes the pipe, and the writer stops at its next write."""
    rfd, wfd = os.pipe()

    def run():
        try:
            st = extract(sources, w.since_ns, w.until_ns, w.bpf, wfd)
            log.info("%s: %d packets (%d bytes) from %d ranges in %d files", w.what, st.packets, st.bytes_out,
                     st.ranges, st.files)
        except CaptureError as e:
            log.warning("%s: extraction ended early: %s", w.what, e.message)
        finally:
            os.close(wfd)

    t = threading.Thread(target=run, name="pcap-extract", daemon=True)
    t.start()
    try:
        while True:
            data = os.read(rfd, READ)
            if not data:
                break
            yield data
    finally:
        os.close(rfd)
        t.join(timeout=30)
