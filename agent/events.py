"""What each bus channel carries: one dataclass per channel (CHANNEL_TYPES),
which the bus checks at publish (a bare dict is refused).

An event's JSON, what SSE clients, EVE JSON and syslog see, is its
as_dict(); a field marked FLAT (a record the event wraps) gives its own keys
at the top level instead of one key.  Events read as a mapping of those
keys too, so a consumer may take them as the records they replace.
docs/API.md's channel table is written from these classes (schema_rows;
tests/test_docs.py checks it)."""
import collections.abc
import dataclasses
import typing
from typing import Any, Optional

from hwdrivers.events import PacketEvent
from hwdrivers.flows import FlowRecord

FLAT = {"flat": True}              # a wrapped record: its keys at the top level of the event's JSON
OMIT_NONE = {"omit_none": True}    # a field left out of the JSON when None


class Event(collections.abc.Mapping):
    """The base of the agent's events: JSON through as_dict(), read-only mapping access to it."""

    @classmethod
    def _plan(cls) -> tuple:
        """(name, flat, omit when None) per field, worked out once per class."""
        plan = cls.__dict__.get("_fields_plan")
        if plan is None:
            plan = tuple((f.name, bool(f.metadata.get("flat")), bool(f.metadata.get("omit_none")))
                         for f in dataclasses.fields(cls))
            setattr(cls, "_fields_plan", plan)
        return plan

    def as_dict(self) -> dict:
        out: dict = {}
        for name, flat, omit_none in self._plan():
            value = getattr(self, name)
            if flat:
                out.update(value if isinstance(value, dict) else value.as_dict())
            elif not (omit_none and value is None):
                out[name] = value
        return out

    def _json(self) -> dict:
        """as_dict(), made once for every reader of this event (it is frozen)."""
        d = self.__dict__.get("_json_cache")
        if d is None:
            d = self.__dict__["_json_cache"] = self.as_dict()
        return d

    def __getitem__(self, key):
        return self._json()[key]

    def __iter__(self):
        return iter(self._json())

    def __len__(self) -> int:
        return len(self._json())


@dataclasses.dataclass(frozen=True)
class Detection:
    """One finding of a detector: the packet facts that caused it and how sure it is."""

    type: str                  # arp_spoof, dns_hijack, ssl_strip, tls_downgrade
    score: int                 # 0-100, the sum of its indicators' points
    severity: str              # low, medium, high, critical
    confidence: float          # 0-1
    src: str                   # the sender of what was suspicious (the attacker's side)
    dst: str                   # the host it was aimed at
    protocol: str              # ARP, DNS, HTTP, TLS
    description: str
    evidence: dict
    first_seen: float          # packet time, unix seconds
    src_mac: str = ""
    dst_mac: str = ""
    attacker: str = ""         # the attacker's address: its own IP when known, else src
    attacker_mac: str = ""
    key: str = ""              # the same attack seen again has the same key
    verify: Optional[dict] = None  # what verification should check: {"kind": "dns"|"url", ...}

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class CaptureState(Event):
    """A capture run started or stopped (stopped: with its reason)."""

    run_id: int
    backend: str
    source: str
    interface: Optional[str]
    file: Optional[str]
    bpf: str
    reason: Optional[str] = dataclasses.field(default=None, metadata=OMIT_NONE)


@dataclasses.dataclass(frozen=True)
class FlowExpired(Event):
    """A flow the meter closed: the flow record's fields (GET /v1/capture/flows has the same)."""

    flow: FlowRecord = dataclasses.field(metadata=FLAT)

    def as_dict(self) -> dict:
        return self.flow.as_dict()        # the one field, without a copy (once per flow, on the consumers' side)


@dataclasses.dataclass(frozen=True)
class WindowClosed(Event):
    """A traffic window of the live capture ended: the window's fields (GET /v1/windows) and its run."""

    window: dict = dataclasses.field(metadata=FLAT)
    run_id: int = 0


@dataclasses.dataclass(frozen=True)
class AttackDetected(Event):
    """A detector's finding on a packet: the Detection's fields, and the packet event that raised it."""

    detection: Detection = dataclasses.field(metadata=FLAT)
    verification_required: bool = False
    packet_event: str = ""
    packet_ts: float = 0.0


@dataclasses.dataclass(frozen=True)
class ThreatRaised(Event):
    """A new threat, or one that got worse (repeat): the threat as GET /v1/threats lists it, with more."""

    threat: dict = dataclasses.field(metadata=FLAT)
    evidence: dict = dataclasses.field(default_factory=dict)
    src_mac: Optional[str] = None
    first_seen_ts: float = 0.0
    last_seen_ts: float = 0.0
    repeat: bool = False


@dataclasses.dataclass(frozen=True)
class AttackVerified(Event):
    """The verdict of a threat's verification through independent paths."""

    verification_id: Optional[str]
    threat_id: str
    attack_type: str
    attack_confirmed: bool
    status: str                # confirmed, refuted, inconclusive
    confidence: Optional[str]
    paths_checked: Optional[int]
    paths_agreed: Optional[int]
    url: Optional[str] = None
    host: Optional[str] = None
    domain: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Anomaly(Event):
    """A traffic window's figure out of its range (GET /v1/anomalies lists the same)."""

    type: str
    severity: str
    window_id: int
    window_start: float
    window_end: float
    message: str
    metric: str
    current_value: Any
    threshold: Any
    flow_src: Optional[str] = None
    flow_dst: Optional[str] = None
    key: str = ""


@dataclasses.dataclass(frozen=True)
class DeceptionStarted(Event):
    """A deception session began against an attacker."""

    session_id: str
    threat_id: Optional[str]
    target_domain: str
    attacker_ip: str
    behavior_profile: str
    honeytokens: list


@dataclasses.dataclass(frozen=True)
class DecoySent(Event):
    """A deception session sent a decoy (a fake login carrying honeytokens) to its target."""

    session_id: str
    target: str
    address: str
    kind: str
    packets_sent: int


@dataclasses.dataclass(frozen=True)
class DeceptionStopped(Event):
    """A deception session ended (stopped, expired)."""

    session_id: str
    reason: str
    packets_sent: int


@dataclasses.dataclass(frozen=True)
class HoneytokenTriggered(Event):
    """A honeytoken was used: seen on the wire, or reported (POST /v1/honeytokens/trigger)."""

    token: str
    token_type: str
    source_ip: str
    via: str
    session_id: Optional[str]
    related_threat: Optional[dict]
    context: dict


@dataclasses.dataclass(frozen=True)
class CallUpdated(Event):
    """A call changed state; a finished one carries its detail (messages and streams)."""

    session_id: str
    call_id: str
    state: str
    type: str
    participants: list
    events_count: int
    detail: Optional[dict] = dataclasses.field(default=None, metadata=OMIT_NONE)


@dataclasses.dataclass(frozen=True)
class JobProgress(Event):
    """A job's status or progress (the event type says which): its id and what changed."""

    job_id: str
    data: dict = dataclasses.field(default_factory=dict, metadata=FLAT)


@dataclasses.dataclass(frozen=True)
class SystemHealth(Event):
    """The agent's health and rates, at every stats sample."""

    status: str
    cpu_percent: float
    memory_percent: float
    pps: float
    bps: float


@dataclasses.dataclass(frozen=True)
class LogRecord(Event):
    """One protocol log record (docs/LOGS.md), its log type as the event type."""

    record: dict = dataclasses.field(metadata=FLAT)

    def as_dict(self) -> dict:
        return self.record                # as the log service wrote it (its readers do not change it)


PACKET_CHANNELS = ("packets:dns", "packets:arp", "packets:tls", "packets:http", "packets:sip", "packets:tcp",
                   "packets:token", "packets:ndp", "packets:dhcp")
CHANNEL_TYPES = {
    **{ch: PacketEvent for ch in PACKET_CHANNELS},
    "flows:expired": FlowExpired, "capture:state": CaptureState, "attacks:detected": AttackDetected,
    "threats:raised": ThreatRaised, "attacks:verified": AttackVerified, "anomalies:detected": Anomaly,
    "windows:closed": WindowClosed, "deception:started": DeceptionStarted, "deception:events": DecoySent,
    "deception:stopped": DeceptionStopped, "honeytokens:triggered": HoneytokenTriggered,
    "calls:updated": CallUpdated, "jobs:progress": JobProgress, "system:health": SystemHealth,
    "logs:records": LogRecord,
}


def _type_name(t) -> str:
    if isinstance(t, str):
        return t
    if typing.get_origin(t) is typing.Union:
        args = [a for a in typing.get_args(t) if a is not type(None)]
        return " or ".join(_type_name(a) for a in args) + " or null"
    return {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object", list: "array",
            bytes: "string (hex)", object: "object", Any: "any"}.get(t, getattr(t, "__name__", str(t)))


def schema_rows() -> list:
    """docs/API.md's table of channels: | channel | dataclass | JSON fields |, the packet channels in one row."""
    rows = []
    for channel in [c for c in CHANNEL_TYPES if c not in PACKET_CHANNELS] + [PACKET_CHANNELS[0]]:
        cls = CHANNEL_TYPES[channel]
        hints = typing.get_type_hints(cls)
        fields = []
        for f in dataclasses.fields(cls):
            if f.metadata.get("flat"):
                fields.append(f"the fields of `{f.name}` ({_type_name(hints[f.name])})")
            else:
                fields.append(f"`{f.name}` {_type_name(hints[f.name])}" + (", omitted when null"
                                                                            if f.metadata.get("omit_none") else ""))
        names = ", ".join(f"`{c}`" for c in (PACKET_CHANNELS if channel in PACKET_CHANNELS else (channel,)))
        rows.append(f"| {names} | `{cls.__name__}` | {'; '.join(fields)} |")
    return rows


if __name__ == "__main__":
    print("\n".join(schema_rows()))
