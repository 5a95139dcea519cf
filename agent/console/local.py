"""The consoles' client for the agent in this process: the named methods of
agent.client.Client (the REST client, for an agent in another process),
each a call of the service method its route calls, with the route's own
field declarations (agent.api.*) checking what it is given.

No HTTP, no JSON: answers are the services' own, as plain dicts and lists
(dataclasses as dicts, like the REST answer's JSON).  A refusal is the
ApiError the REST client raises for it, with the same status, code, message
and details; a fault is a 500 INTERNAL_ERROR (DATABASE_ERROR for the store)
whose cause is in the log, as REST answers it.  The serial console and the
Textual console in `capbox run` use it with full rights: whoever reaches
them has passed the console's password or sits at the box."""
import dataclasses
import functools
import json
import logging
import sqlite3

from agent.api.analysis import ANOMALIES, BASELINE, COMPUTE, SET, WINDOWS
from agent.api.calls import CALLS
from agent.api.capture import FILTER, FLOWS, START, STOP, capture_request
from agent.api.deception import START as DECEPTION_START, open_session
from agent.api.detection import PATCH, THREATS, VERIFY_DNS, list_threats
from agent.api.firmware import VERIFY_FILES
from agent.api.logs import QUERY as LOG_QUERY
from agent.api.pcap import PCAP
from agent.api.platform import LOGS, NEW_KEY
from agent.api.validate import parse
from agent.client import ERRORS, ApiError
from agent.errors import AgentError
from agent.logs import index as log_index
from agent.logs.indexer import INDEX_FILE
from agent.recordings import packets
from agent.software.card import verdict_body
from agent.store import StoreError

log = logging.getLogger(__name__)


def plain(o):
    """What the services hand out as JSON would carry it: dicts with text keys, lists, scalars."""
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return plain(dataclasses.asdict(o))
    if isinstance(o, dict):
        return {k if isinstance(k, str) else str(k): plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple, set, frozenset)):
        return [plain(v) for v in o]
    if isinstance(o, (bytes, bytearray)):
        return o.hex()
    if o is None or isinstance(o, (str, int, float, bool)):
        return o
    return str(o)


def query(q: dict, spec: dict) -> dict:
    """A query's fields as the route reads them: what is None left out (the REST client sends no such
    parameter), unknown ones ignored."""
    return parse({k: v for k, v in q.items() if v is not None}, spec, strict=False)


def answer(method):
    """A service call as the REST client would see it: the body (without a route's status), or ApiError."""
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        try:
            result = method(self, *args, **kwargs)
        except AgentError as e:
            raise ERRORS.get(e.status, ApiError)(e.status, e.code, e.message, e.details) from None
        except Exception as e:
            log.exception("console call %s failed", method.__name__)
            code = "DATABASE_ERROR" if isinstance(e, (StoreError, sqlite3.Error)) else "INTERNAL_ERROR"
            raise ApiError(500, code, "the request failed inside the agent; the log has the details") from None
        if isinstance(result, tuple):       # (status, body), as a route answers a 201 or 202
            result = result[1]
        return plain(result)
    return call


class LocalClient:
    def __init__(self, agent):
        self.agent = agent

    # ---- the agent ----

    @answer
    def health(self) -> dict:
        return self.agent.health_report()

    @answer
    def status(self) -> dict:
        return self.agent.status_report()

    @answer
    def recent_logs(self, **q) -> dict:
        q = query(q, LOGS)
        return self.agent.logs.page(q["limit"], q["level"], q["type"])

    @answer
    def list_keys(self) -> dict:
        return self.agent.keys.listing()

    @answer
    def create_key(self, **body) -> dict:
        return self.agent.keys.issue(**parse(body, NEW_KEY))

    @answer
    def revoke_key(self, key_id: str) -> dict:
        return self.agent.keys.withdraw(key_id)

    # ---- capture ----

    @answer
    def capture_status(self) -> dict:
        return self.agent.capture.status()

    @answer
    def capture_backends(self) -> dict:
        items = self.agent.capture.backends()
        return {"count": len(items), "backends": items}

    @answer
    def capture_start(self, **body) -> dict:
        return self.agent.capture.start(capture_request(**parse(body, START)))

    @answer
    def capture_stop(self, reason: str = "manual") -> dict:
        return self.agent.capture.stop(**parse({"reason": reason}, STOP))

    @answer
    def capture_filter(self, bpf: str) -> dict:
        return self.agent.capture.set_filter(**parse({"bpf": bpf}, FILTER))

    @answer
    def capture_metrics(self) -> dict:
        return self.agent.capture.metrics()

    @answer
    def capture_flows(self, **q) -> dict:
        return self.agent.capture.flows(**query(q, FLOWS))

    # ---- findings ----

    @answer
    def list_threats(self, **q) -> dict:
        return list_threats(self.agent, **query(q, THREATS))

    @answer
    def get_threat(self, threat_id: str) -> dict:
        return self.agent.threats.threat(threat_id)

    @answer
    def mark_threat(self, threat_id: str, status: str, note=None) -> dict:
        body = parse({"status": status} if note is None else {"status": status, "note": note}, PATCH)
        return self.agent.threats.update(threat_id, body["status"], body["note"] or None)

    @answer
    def verify_dns(self, domain: str, record_type: str = "A", **options) -> dict:
        return self.agent.threats.check_dns(**parse({"domain": domain, "record_type": record_type, **options},
                                                    VERIFY_DNS))

    @answer
    def start_deception(self, target_domain: str, attacker_ip: str, **options) -> dict:
        body = {"target_domain": target_domain, "attacker_ip": attacker_ip, **options}
        return open_session(self.agent, **parse(body, DECEPTION_START))

    @answer
    def windows(self, **q) -> dict:
        q = query(q, WINDOWS)
        return self.agent.analysis.windows(q["set"] or None, q["limit"], q["offset"])

    @answer
    def compute_windows(self, **body) -> dict:
        return self.agent.compute_windows(**parse(body, COMPUTE))

    @answer
    def anomalies(self, **q) -> dict:
        q = query(q, ANOMALIES)
        return self.agent.analysis.anomalies(q["set"] or None, q["type"], q["severity"], q["limit"], q["offset"])

    @answer
    def anomalies_by_type(self, **q) -> dict:
        return self.agent.analysis.by_type(query(q, SET)["set"] or None)

    @answer
    def baselines(self, **q) -> dict:
        return self.agent.analysis.baselines(query(q, BASELINE)["name"])

    @answer
    def calls(self, **q) -> dict:
        return self.agent.calls.calls(**query(q, CALLS))

    @answer
    def call_ladder(self, session_id: str) -> dict:
        return self.agent.calls.ladder(session_id)

    @answer
    def log_records(self, kind: str, **q) -> dict:
        f = query(q, LOG_QUERY)
        lines = list(log_index.search(self.agent.cfg.logs_dir / INDEX_FILE, kind, f["since"], f["until"], f["host"],
                                      f["q"], f["community_id"], f["limit"]))
        return {"type": kind, "records": [json.loads(line) for line in lines], "count": len(lines)}

    @answer
    def pcap(self, out, **q) -> dict:
        f = query(q, PCAP)
        w = packets.asked(self.agent, *(f[k] for k in ("since", "until", "bpf", "flow", "threat", "call", "pad_s")))
        headers, body = self.agent.capture.packets(w, full_key=True)
        for chunk in body:
            out.write(chunk)
        return headers

    # ---- what runs on the box ----

    @answer
    def firmware(self) -> dict:
        return self.agent.software.card.status()

    @answer
    def verify_firmware(self, firmware_path: str, signature_path: str = "") -> dict:
        q = query({"firmware_path": firmware_path, "signature_path": signature_path}, VERIFY_FILES)
        return verdict_body(self.agent.software.card.verify_files(q["firmware_path"], q["signature_path"]))

    @answer
    def system(self) -> dict:
        return self.agent.software.system.status()
