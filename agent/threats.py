"""Threats: detections kept with their evidence, verified through the
verification paths, answered with deception, and what the faces ask of them.

A detection that repeats (same key within detection.dedup_s) updates its
threat (count, last seen, a worse severity) instead of making a new one.
A detection that says what to verify is checked automatically when paths
exist; the verdict (confirmed / refuted / inconclusive) is attached to the
threat, and a confirmed one starts deception when deception.auto_activate.
A confirmed verdict raises the threat's severity and confidence, a refuted
one lowers them (rescore)."""
import concurrent.futures
import ipaddress
import json
import logging
import time
import uuid
from typing import Optional

from agent.bus import iso
from agent.detectors.detector import SEVERITIES
from agent.errors import AgentError
from agent.events import AttackVerified, ThreatRaised
from agent.recordings import packets
from agent.services import Service
from agent.verify.verifier import PATH_KIND

log = logging.getLogger(__name__)
STATUSES = ("new", "acknowledged", "confirmed", "false_positive")
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}


def _is_ip(text) -> bool:
    try:
        ipaddress.ip_address(text or "")
        return True
    except ValueError:
        return False


def rescore(severity: str, score: int, confidence: float, status: str) -> tuple:
    """(severity, score, confidence) after a verdict: independent paths that saw the attack raise all three
    (one severity step and at least high, at least 0.9 confident); paths that agree with what the box saw lower
    them (one step, at most 0.3)."""
    rank = SEVERITY_RANK.get(severity, 0)
    if status == "confirmed":
        rank = min(max(rank + 1, SEVERITY_RANK["high"]), len(SEVERITIES) - 1)
        return SEVERITIES[rank], min(100, max(score + 20, 70)), max(confidence, 0.9)
    if status == "refuted":
        return SEVERITIES[max(rank - 1, 0)], max(0, score - 30), round(min(confidence, 0.3), 2)
    return severity, score, confidence


def _view(r: dict) -> dict:
    return {"id": r["id"], "timestamp": iso(r["created"]), "attack_type": r["attack_type"], "severity": r["severity"],
            "source_ip": r["source_ip"], "dest_ip": r["dest_ip"], "protocol": r["protocol"],
            "description": r["description"], "verified": r["verification_status"] == "confirmed",
            "verification_status": r["verification_status"], "confidence": r["confidence"], "score": r["score"],
            "attacker": r["attacker"], "attacker_mac": r["attacker_mac"], "first_seen": iso(r["first_seen"]),
            "last_seen": iso(r["last_seen"]), "count": r["count"], "status": r["status"],
            "response_action": r["response_action"], "deception_session_id": r["deception_session_id"]}


class ThreatService(Service):
    name = "threats"
    channels = ("attacks:detected",)
    critical = False

    def start(self, agent) -> None:
        self.agent = agent
        self.store = agent.store
        self.bus = agent.bus
        self.cfg = agent.cfg
        self._verify = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="threat-verify")

    def stop(self) -> None:
        self._verify.shutdown(wait=False, cancel_futures=True)

    def handle(self, env) -> None:
        self.record(env.data.as_dict(), env.correlation_id, packet_event=env.data.packet_event)

    # ---- recording -----------------------------------------------------------------------

    def record(self, d: dict, correlation_id: str, packet_event: Optional[str] = None,
               verification: Optional[dict] = None, respond: Optional[bool] = None) -> str:
        """Store a detection (a dict of agent.events.Detection fields); the threat's id."""
        now = time.time()
        key = d.get("key") or None
        since = d["first_seen"] - self.cfg.detection.dedup_s
        rows = self.store.query("SELECT * FROM threats WHERE dedup_key = ? AND last_seen >= ? ORDER BY created DESC "
                                "LIMIT 1", (key, since)) if key else []
        if rows:
            t = rows[0]
            worse = SEVERITY_RANK.get(d["severity"], 0) > SEVERITY_RANK.get(t["severity"], 0)
            self.store.write(lambda c: c.execute(
                "UPDATE threats SET count = count + 1, last_seen = MAX(last_seen, ?), updated = ?, severity = ?,"
                " score = MAX(score, ?), confidence = MAX(confidence, ?), description = ?, evidence = ? WHERE id = ?",
                (d["first_seen"], now, d["severity"] if worse else t["severity"], d["score"], d["confidence"],
                 d["description"] if worse else t["description"],
                 json.dumps(d["evidence"]) if worse else t["evidence"], t["id"])))
            self._event(t["correlation_id"], "attack_detected", "attacks:detected", {"repeat": True})
            if worse:
                self._raised(t["id"], t["correlation_id"], repeat=True)
            return t["id"]
        tid = f"thr_{uuid.uuid4().hex[:12]}"
        row = (tid, now, now, d["first_seen"], d["first_seen"], d["type"], d["severity"], d["score"], d["confidence"],
               d["src"], d["dst"], d.get("src_mac"), d.get("attacker"), d.get("attacker_mac"), d["protocol"],
               d["description"], json.dumps(d["evidence"]), key, correlation_id, "logged")
        self.store.write(lambda c: c.execute(
            "INSERT INTO threats (id, created, updated, first_seen, last_seen, attack_type, severity, score, confidence,"
            " source_ip, dest_ip, src_mac, attacker, attacker_mac, protocol, description, evidence, dedup_key,"
            " correlation_id, response_action) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", row))
        if packet_event:
            self._event(correlation_id, packet_event, "packets", {"packet_ts": d.get("packet_ts")}, d["first_seen"])
        self._event(correlation_id, "attack_detected", "attacks:detected", {"threat_id": tid})
        self._raised(tid, correlation_id)
        if verification is not None:
            self._verified(tid, d, correlation_id, verification, respond)
        elif d.get("verify") and self.cfg.detection.verify:
            kind = PATH_KIND[d["verify"]["kind"]]
            if sum(p.kind == kind for p in self.agent.verifier.paths) >= 3:
                self.store.write(lambda c: c.execute(
                    "UPDATE threats SET verification_status = 'pending' WHERE id = ?", (tid,)))
                self._verify.submit(self._auto_verify, tid, d, correlation_id)
        return tid

    def _raised(self, tid: str, correlation_id: str, repeat: bool = False) -> None:
        """A new threat, or one that got worse, on threats:raised (what SIEM outputs send as an alert)."""
        if not self.bus.listening("threats:raised"):
            return
        r = self.get_row(tid)
        self.bus.publish("threats:raised", "threat_raised", ThreatRaised(_view(r), json.loads(r["evidence"]), r["src_mac"],
                                                                         r["first_seen"], r["last_seen"], repeat),
                         source="threats", correlation_id=correlation_id)

    def _event(self, correlation_id: str, event_type: str, channel: str, data: dict, ts: Optional[float] = None):
        self.store.submit_nowait(lambda c: c.execute(
            "INSERT INTO threat_events VALUES (?, ?, ?, ?, ?)",
            (correlation_id, ts if ts is not None else time.time(), event_type, channel, json.dumps(data))))

    def _auto_verify(self, tid: str, d: dict, correlation_id: str) -> None:
        spec, v = d["verify"], self.cfg.verify
        n = min(v.default_num_paths, sum(p.kind == PATH_KIND[spec["kind"]] for p in self.agent.verifier.paths))
        try:
            if spec["kind"] == "tls":
                result = self.agent.verifier.verify_tls(spec["host"], spec.get("port", 443), spec.get("sni", ""),
                                                        max(3, n), min(v.default_timeout, 10), v.strategy,
                                                        local_fingerprint=spec.get("fingerprint"))
            elif spec["kind"] == "dns":
                result = self.agent.verifier.verify_dns(spec["domain"], spec.get("record_type", "A"), max(3, n),
                                                        min(v.default_timeout, 10), v.strategy,
                                                        local_ips=spec.get("local_ips"))
            else:
                result = self.agent.verifier.verify_url(spec["url"], max(3, n), v.default_timeout, v.strategy,
                                                        "headers_only", local=spec.get("local"))
        except AgentError as e:
            log.warning("threat %s not verified: %s", tid, e.message)
            failed = json.dumps({"error": {"code": e.code, "message": e.message}})
            self.store.write(lambda c: c.execute(
                "UPDATE threats SET verification_status = 'failed', verification = ? WHERE id = ?", (failed, tid)))
            return
        except Exception:  # the service goes on; the threat says verification failed
            log.exception("verifying threat %s failed", tid)
            self.store.write(lambda c: c.execute(
                "UPDATE threats SET verification_status = 'failed' WHERE id = ?", (tid,)))
            return
        self._verified(tid, d, correlation_id, result)

    def _verified(self, tid: str, d: dict, correlation_id: str, result: dict, respond: Optional[bool] = None) -> None:
        confirmed = bool(result.get("attack_detected"))
        refuted = not confirmed and result.get("paths_succeeded", 0) >= 3 and result.get("confidence") in (
            "HIGH", "VERY_HIGH") and (result.get("local_ips") is not None or result.get("local") is not None)
        status = "confirmed" if confirmed else "refuted" if refuted else "inconclusive"
        summary = {k: result.get(k) for k in ("verification_id", "paths_checked", "paths_succeeded", "paths_agreed",
                                               "consensus_percentage", "confidence", "consensus_ips", "local_ips",
                                               "url", "domain", "record_type", "host", "port", "sni", "consensus",
                                               "local", "differences", "outliers", "recommendations",
                                               "verification_duration_ms",
                                               "attack_detected") if k in result}
        row = self.get_row(tid)
        severity, score, confidence = rescore(row["severity"], row["score"], row["confidence"], status)
        self.store.write(lambda c: c.execute(
            "UPDATE threats SET verification_status = ?, verification = ?, updated = ?, severity = ?, score = ?,"
            " confidence = ? WHERE id = ?", (status, json.dumps(summary), time.time(), severity, score, confidence, tid)))
        self.bus.publish("attacks:verified", "verification_complete",
                         AttackVerified(result.get("verification_id"), tid, d["type"], confirmed, status,
                                        result.get("confidence"), result.get("paths_checked"), result.get("paths_agreed"),
                                        result.get("url"), result.get("host"), result.get("domain")),
                         source="threats", correlation_id=correlation_id)
        self._event(correlation_id, "verification_complete", "attacks:verified",
                    {"verification_id": result.get("verification_id"), "status": status})
        if confirmed and (self.cfg.deception.auto_activate if respond is None else respond):
            self.respond(tid, d, correlation_id)

    def respond(self, tid: str, d: dict, correlation_id: str) -> Optional[str]:
        """Start deception against a confirmed threat's attacker; the session id, or None."""
        ev = d.get("evidence", {})
        target = ev.get("domain") or ev.get("host")
        attacker = d.get("attacker") if _is_ip(d.get("attacker")) else None
        deception = getattr(self.agent, "deception", None)
        if not target or not attacker or deception is None:
            return None
        try:
            session = deception.start_session(target, attacker, threat_id=tid, correlation_id=correlation_id)
        except AgentError as e:
            log.info("no deception for threat %s: %s", tid, e.message)
            return None
        self.store.write(lambda c: c.execute(
            "UPDATE threats SET response_action = 'deception_activated', deception_session_id = ? WHERE id = ?",
            (session["session_id"], tid)))
        return session["session_id"]

    # ---- verifications asked by a face ----------------------------------------------------

    def from_verification(self, kind: str, result: dict, attacker: str, target: str, auto_deception: bool) -> dict:
        """A verification a face asked for that found an attack becomes a threat (and maybe a deception
        session): the fields the answer gains (threat_id, deception_activated, deception_session_id)."""
        if not result["attack_detected"]:
            return {"threat_id": None, "deception_activated": False, "deception_session_id": None}
        conf = result["consensus_percentage"] / 100
        d = {"type": kind, "score": int(round(conf * 100)), "confidence": round(conf, 2),
             "severity": "critical" if conf >= 0.9 else "high" if conf >= 0.7 else "medium",
             "src": attacker or None, "dst": None, "src_mac": None, "attacker": attacker or None, "attacker_mac": None,
             "protocol": {"dns_hijack": "DNS", "tls_intercept": "TLS"}.get(kind, "HTTP"), "first_seen": time.time(),
             "description": f"verification through {result['paths_checked']} paths: "
                            f"{result['recommendations'][0] if result['recommendations'] else ''}",
             "evidence": {"domain" if kind == "dns_hijack" else "host": target, "verification_id": result["verification_id"],
                          "local_ips": result.get("local_ips"), "consensus_ips": result.get("consensus_ips"),
                          "local_fingerprint": (result.get("local") or {}).get("fingerprint"),
                          "differences": result.get("differences")}, "key": None}
        tid = self.record(d, f"cor_{result['verification_id'][4:]}", verification=result, respond=auto_deception)
        session = self.get_row(tid)["deception_session_id"]
        return {"threat_id": tid, "deception_activated": session is not None, "deception_session_id": session}

    def check_dns(self, domain: str, record_type: str, num_paths: int, timeout: float, strategy: str = "",
                  paths: Optional[list] = None, local_ips: Optional[list] = None, auto_deception: bool = False) -> dict:
        """POST /v1/verify-dns and the console's verify-dns: the verdict, and the threat it raised."""
        verifier = self.agent.verifier
        result = verifier.verify_dns(domain, record_type, num_paths, timeout, strategy or self.cfg.verify.strategy,
                                     local_ips=local_ips or None, paths=paths or None)
        lr = verifier.local_resolver
        attacker = lr.addr if lr and not local_ips else ""
        return {**result, **self.from_verification("dns_hijack", result, attacker, result["domain"], auto_deception)}

    # ---- what the faces read ------------------------------------------------------------

    def get_row(self, tid: str) -> dict:
        rows = self.store.query("SELECT * FROM threats WHERE id = ?", (tid,))
        if not rows:
            raise AgentError("THREAT_NOT_FOUND", f"threat {tid} not found", {"threat_id": tid})
        return rows[0]

    def list(self, attack_type: str = "", severity: str = "", verified: Optional[bool] = None,
             since: Optional[float] = None, limit: int = 100, offset: int = 0, status: str = "") -> dict:
        where, args = [], []
        if attack_type:
            where.append("attack_type = ?")
            args.append(attack_type)
        if severity:
            where.append("severity = ?")
            args.append(severity)
        if status:
            where.append("status = ?")
            args.append(status)
        if verified is not None:
            where.append("verification_status = 'confirmed'" if verified else "verification_status != 'confirmed'")
        if since is not None:
            where.append("created >= ?")
            args.append(since)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        total = self.store.query(f"SELECT COUNT(*) AS n FROM threats {clause}", tuple(args))[0]["n"]
        rows = self.store.query(f"SELECT * FROM threats {clause} ORDER BY created DESC, rowid DESC LIMIT ? OFFSET ?",
                                (*args, limit, offset))
        return {"total": total, "limit": limit, "offset": offset, "count": len(rows),
                "threats": [_view(r) for r in rows]}

    def threat(self, tid: str) -> dict:
        r = self.get_row(tid)
        out = _view(r)
        out["evidence"] = json.loads(r["evidence"])
        out["verification_result"] = json.loads(r["verification"]) if r["verification"] else None
        out["note"] = r["note"]
        out["deception_session"] = None
        if r["deception_session_id"] and getattr(self.agent, "deception", None):
            try:
                out["deception_session"] = self.agent.deception.session(r["deception_session_id"])
            except AgentError:
                pass
        events = self.store.query("SELECT ts, event_type, channel, data FROM threat_events WHERE correlation_id = ?"
                                  " ORDER BY ts", (r["correlation_id"],))
        out["correlation_id"] = r["correlation_id"]
        out["packets"] = self.packets(r)
        out["related_events"] = [{"event_type": e["event_type"], "timestamp": iso(e["ts"]), "channel": e["channel"],
                                  "data": json.loads(e["data"]) if e["data"] else None} for e in events]
        return out

    def packets(self, r: dict) -> dict:
        """What the recordings still hold of this threat (GET /v1/pcap?threat=ID reads it), or that it aged out."""
        try:
            w = packets.threat_window(r, packets.PAD_S)
        except AgentError as e:
            return {"state": "no_filter", "reason": e.message}
        capture = getattr(self.agent, "capture", None)
        if capture is None:
            return {"state": "not_recorded", "window": w.as_dict(), "files": []}
        return capture.kept(w)

    def update(self, tid: str, status: str, note: Optional[str]) -> dict:
        self.get_row(tid)
        self.store.write(lambda c: c.execute(
            "UPDATE threats SET status = ?, note = COALESCE(?, note), updated = ? WHERE id = ?",
            (status, note, time.time(), tid)))
        return self.threat(tid)

    def stats(self, since: float) -> dict:
        q = self.store.query
        total = q("SELECT COUNT(*) AS n FROM threats WHERE created >= ?", (since,))[0]["n"]
        by = lambda col: {r["k"]: r["n"] for r in q(f"SELECT {col} AS k, COUNT(*) AS n FROM threats WHERE created >= ?"
                                                      f" GROUP BY {col}", (since,))}
        vs = by("verification_status")
        statuses = by("status")
        attackers = q("SELECT attacker AS ip, COUNT(*) AS attacks, GROUP_CONCAT(DISTINCT attack_type) AS types"
                      " FROM threats WHERE created >= ? AND attacker IS NOT NULL GROUP BY attacker"
                      " ORDER BY attacks DESC LIMIT 10", (since,))
        return {"detection": {"threats_detected": total, "threats_verified": vs.get("confirmed", 0),
                              "false_positives": statuses.get("false_positive", 0),
                              "acknowledged": statuses.get("acknowledged", 0),
                              "attack_types": by("attack_type"),
                              "severity_distribution": {s: by("severity").get(s, 0) for s in reversed(SEVERITIES)}},
                "attacks_confirmed": vs.get("confirmed", 0) + statuses.get("confirmed", 0),
                "attacks_refuted": vs.get("refuted", 0) + statuses.get("false_positive", 0),
                "top_attackers": [{"ip": a["ip"], "attacks": a["attacks"], "attack_types": sorted(a["types"].split(","))}
                                  for a in attackers]}
