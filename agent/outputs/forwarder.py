"""The output service: bus events in, EVE records out to the file and to
every syslog collector that takes their type.  It reads the bus like any
consumer (bounded queue, drops counted), and each collector has a sender
of its own, so a slow or absent collector costs a queue and nothing else."""
import json
import logging
import os
import socket

from agent.outputs import eve, syslog
from agent.outputs.evefile import EveFile
from agent.services import Service

log = logging.getLogger(__name__)
ANOMALY_SEVERITY = {"high": 3, "medium": 4, "low": 5}      # syslog: error, warning, notice
ALERT_SEVERITY = {"critical": 2, "high": 3, "medium": 4, "low": 5}


def syslog_severity(record: dict) -> int:
    if record["event_type"] == "alert":
        return ALERT_SEVERITY.get(record["alert"]["metadata"]["capbox_severity"][0], 5)
    if record["event_type"] == "anomaly":
        return ANOMALY_SEVERITY.get(record["anomaly"]["severity"], 5)
    return 6                                                   # informational


def structured_data(record: dict) -> dict:
    """The few fields a syslog pipeline filters on without parsing the JSON."""
    params = {"event_type": record["event_type"], "src_ip": record.get("src_ip"), "dest_ip": record.get("dest_ip"),
              "proto": record.get("proto"), "community_id": record.get("community_id")}
    if record["event_type"] == "alert":
        meta = record["alert"]["metadata"]
        params.update(signature_id=record["alert"]["signature_id"], category=record["alert"]["category"],
                      severity=meta["capbox_severity"][0], threat_id=meta["threat_id"][0],
                      attacker=meta["attacker"][0], attacker_mac=meta["attacker_mac"][0])
    elif record["event_type"] == "anomaly":
        params.update(anomaly=record["anomaly"]["event"], severity=record["anomaly"]["severity"])
    return params


class EveService(Service):
    name = "eve"
    critical = False
    queue_size = 8192

    @classmethod
    def wanted(cls, cfg) -> bool:
        return bool(cfg.eve.file or cfg.eve.syslog)

    def __init__(self):
        self.file = None
        self.senders: list = []
        self.made = 0

    def start(self, agent) -> None:
        c = agent.cfg.eve
        self.host = agent.cfg.agent.name
        self.hostname = socket.gethostname()
        self.facility = syslog.FACILITIES[c.syslog_facility]
        self.file_types = frozenset(c.file_types) if c.file else frozenset()
        self.syslog_types = frozenset(c.syslog_types) if c.syslog else frozenset()
        self.by_channel = eve.channels(self.file_types | self.syslog_types)
        self.channels = tuple(sorted(self.by_channel))
        self.queue_size = c.queue
        if c.file:
            self.file = EveFile(agent.cfg.eve_path, c.rotate_mb << 20, c.keep_files)
        tls = None
        targets = [syslog.parse_target(url) for url in c.syslog]
        if any(t.scheme == "tls" for t in targets):
            tls = syslog.tls_context(c.syslog_ca, c.syslog_cert, c.syslog_key)
        self.senders = [syslog.Sender(t, c.queue, tls) for t in targets]
        for s in self.senders:
            s.start()

    def handle(self, env) -> None:
        for kind, make in eve.makers_for(self.by_channel, env):
            record = make(env.data, self.host)
            if record is not None:
                self._send(kind, record)

    def _send(self, kind: str, record: dict) -> None:
        self.made += 1
        if kind in self.file_types:
            self.file.write(record)
        if kind in self.syslog_types and self.senders:
            message = syslog.format_message(
                json.dumps(record, separators=(",", ":"), default=str), facility=self.facility,
                severity=syslog_severity(record), timestamp=_rfc3339(record["timestamp"]), hostname=self.hostname,
                app="capbox", procid=str(os.getpid()), msgid=kind, params=structured_data(record))
            for s in self.senders:
                s.send(message)

    def tick(self, now: float) -> None:
        if self.file:
            self.file.flush()

    def stop(self) -> None:
        for s in self.senders:
            s.stop()
        if self.file:
            self.file.close()

    def detail(self) -> dict:
        return {"records": self.made, "file": self.file.detail() if self.file else None,
                "syslog": [s.detail() for s in self.senders],
                "syslog_dropped": sum(s.dropped for s in self.senders)}


def _rfc3339(suricata_ts: str) -> str:
    """2024-01-31T12:00:00.000123+0000 -> 2024-01-31T12:00:00.000123Z (RFC 5424 wants RFC 3339)."""
    return suricata_ts[:-5] + "Z"
