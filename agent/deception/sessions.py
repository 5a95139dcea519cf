"""Deception sessions and honeytokens.

A session answers a suspected attacker with decoy traffic for a while: the
behaviour of a profile (HTTP logins, DNS lookups) carrying freshly made
honeytokens, sent only to the session's target (its domain, resolved
through the network's own resolver when [verify] local_resolver names it,
on deception.target_port).  Every token ever planted is searched for by the
C core in the captured traffic; a token seen coming from any host other
than the appliance's own decoy sockets triggers by itself, as does a
trigger report from outside (POST /v1/honeytokens/trigger)."""
import ipaddress
import json
import logging
import random
import socket
import threading
import time
import urllib.parse
import uuid
from typing import Optional

from agent.bus import iso
from agent.deception import honeytokens
from agent.errors import AgentError, validation
from agent.events import DeceptionStarted, DeceptionStopped, DecoySent, HoneytokenTriggered
from agent.services import Service
from agent.verify.paths import parse_resolver
from agent.verify.verifier import check_domain

log = logging.getLogger(__name__)
MAX_DURATION_MIN = 1440


def _target_ok(target: str) -> str:
    try:
        return str(ipaddress.ip_address(target.strip()))
    except ValueError:
        return check_domain(target)


class Session:
    def __init__(self, row: dict, tokens: list):
        self.row = row
        self.tokens = tokens          # [(token, type, embedded_in)]
        self.stop = threading.Event()
        self.sources: set = set()
        self.packets = self.bytes = 0
        self.thread: Optional[threading.Thread] = None


class DeceptionService(Service):
    name = "deception"
    channels = ("packets:token",)
    critical = False

    def start(self, agent) -> None:
        self.agent = agent
        self.cfg = agent.cfg.deception
        self.store = agent.store
        self.bus = agent.bus
        self._lock = threading.RLock()
        self.sessions: dict = {}
        self.own_hits = 0
        local = agent.cfg.verify.local_resolver
        self.resolver = parse_resolver(local) if local else None
        self.store.write(lambda c: c.execute(
            "UPDATE deception_sessions SET status = 'stopped', stopped = ?, stop_reason = 'agent stopped'"
            " WHERE status = 'active'", (time.time(),)))
        self.needles = {r["needle"]: r for r in self.store.query("SELECT * FROM honeytokens")}
        self.sources_by_session = {r["id"]: set(json.loads(r["decoy_sources"]))
                                   for r in self.store.query("SELECT id, decoy_sources FROM deception_sessions")}
        self._register()

    def stop(self) -> None:
        for s in list(self.sessions.values()):
            self._end(s, "agent stopped")

    def detail(self) -> dict:
        return {"active_sessions": len(self.sessions), "tokens_watched": len(self.needles),
                "own_decoys_seen": self.own_hits}

    def _register(self) -> None:
        self.agent.capture.set_tokens([n.encode() for n in self.needles])

    # ---- sessions --------------------------------------------------------------------------

    def start_session(self, target_domain: str, attacker_ip: str, behavior_profile: str = "",
              duration_minutes: int = 0, threat_id: Optional[str] = None,
              correlation_id: Optional[str] = None) -> dict:
        target = _target_ok(target_domain)
        try:
            attacker = str(ipaddress.ip_address((attacker_ip or "").strip()))
        except ValueError:
            raise validation(f"attacker_ip {attacker_ip!r} is not an IP address", field="attacker_ip") from None
        profile = behavior_profile or self.cfg.default_behavior_profile
        if profile not in honeytokens.PROFILES:
            raise validation(f"behavior_profile must be one of {', '.join(honeytokens.PROFILES)}",
                             field="behavior_profile", choices=list(honeytokens.PROFILES))
        duration = duration_minutes or self.cfg.default_duration_minutes
        if not 1 <= duration <= MAX_DURATION_MIN:
            raise validation(f"duration_minutes must be between 1 and {MAX_DURATION_MIN}", field="duration_minutes",
                             min=1, max=MAX_DURATION_MIN)
        with self._lock:
            for s in self.sessions.values():
                if s.row["target_domain"] == target:
                    raise AgentError("SESSION_CONFLICT", f"a deception session is already active for {target}",
                                     {"session_id": s.row["id"], "target_domain": target})
            if len(self.sessions) >= self.cfg.max_sessions:
                raise AgentError("CONFLICT", f"{self.cfg.max_sessions} deception sessions are active already",
                                 {"max_sessions": self.cfg.max_sessions})
            sid = f"dec_{uuid.uuid4().hex[:12]}"
            now = time.time()
            cor = correlation_id or f"cor_{uuid.uuid4().hex[:12]}"
            row = {"id": sid, "threat_id": threat_id, "target_domain": target, "attacker_ip": attacker,
                   "behavior_profile": profile, "duration_minutes": duration, "status": "active", "started": now,
                   "estimated_end": now + duration * 60, "correlation_id": cor}
            tokens = []
            for ttype, where in honeytokens.PROFILES[profile]["tokens"]:
                token, n = honeytokens.make(ttype, target)
                tokens.append((token, ttype, where, n))
            self.store.write(lambda c: (
                c.execute("INSERT INTO deception_sessions (id, threat_id, target_domain, attacker_ip, behavior_profile,"
                          " duration_minutes, status, started, estimated_end, correlation_id)"
                          " VALUES (?,?,?,?,?,?,?,?,?,?)", tuple(row.values())),
                c.executemany("INSERT INTO honeytokens (token, token_type, needle, domain, embedded_in, session_id,"
                              " threat_id, created) VALUES (?,?,?,?,?,?,?,?)",
                              [(t, ty, n, target, w, sid, threat_id, now) for t, ty, w, n in tokens])))
            for t, ty, w, n in tokens:
                self.needles[n] = {"token": t, "token_type": ty, "needle": n, "session_id": sid, "threat_id": threat_id}
            self._register()
            s = Session(row, tokens)
            self.sessions[sid] = s
            self.sources_by_session[sid] = s.sources
            s.thread = threading.Thread(target=self._decoys, args=(s,), name=f"deception-{sid}", daemon=True)
            s.thread.start()
        deployed = [{"token": t, "type": ty, "embedded_in": w} for t, ty, w, _ in tokens]
        self.bus.publish("deception:started", "deception_started",
                         DeceptionStarted(sid, threat_id, target, attacker, profile, [t for t, *_ in tokens]),
                         source="deception", correlation_id=cor)
        self._threat_event(cor, "deception_started", "deception:started", {"session_id": sid})
        log.info("deception %s started against %s for %s (%s, %d min)", sid, attacker, target, profile, duration)
        return {"session_id": sid, "status": "active", "started_at": iso(now), "target_domain": target,
                "attacker_ip": attacker, "behavior_profile": profile, "duration_minutes": duration,
                "estimated_end": iso(row["estimated_end"]), "threat_id": threat_id, "honeytokens_deployed": deployed}

    def stop_session(self, session_id: str) -> dict:
        with self._lock:
            s = self.sessions.get(session_id)
            if s is None:
                rows = self.store.query("SELECT status FROM deception_sessions WHERE id = ?", (session_id,))
                if not rows:
                    raise AgentError("SESSION_NOT_FOUND", f"deception session {session_id} not found",
                                     {"session_id": session_id})
                raise AgentError("SESSION_CONFLICT", f"deception session {session_id} is already {rows[0]['status']}",
                                 {"session_id": session_id, "status": rows[0]["status"]})
            self._end(s, "stopped")
        return self.session(session_id)

    def _end(self, s: Session, reason: str) -> None:
        with self._lock:
            if self.sessions.pop(s.row["id"], None) is None:
                return
        s.stop.set()
        if s.thread is not None and s.thread is not threading.current_thread():
            s.thread.join(5)
        now = time.time()
        self.store.write(lambda c: c.execute(
            "UPDATE deception_sessions SET status = ?, stopped = ?, stop_reason = ?, packets_sent = ?, bytes_sent = ?,"
            " decoy_sources = ? WHERE id = ?",
            ("expired" if reason == "expired" else "stopped", now, reason, s.packets, s.bytes,
             json.dumps(sorted(s.sources)), s.row["id"])))
        self.bus.publish("deception:stopped", "deception_stopped",
                         DeceptionStopped(s.row["id"], reason, s.packets),
                         source="deception", correlation_id=s.row["correlation_id"])

    def tick(self, now: float) -> None:
        for s in list(self.sessions.values()):
            if now >= s.row["estimated_end"]:
                self._end(s, "expired")
            else:
                self.store.submit_nowait(lambda c, s=s: c.execute(
                    "UPDATE deception_sessions SET packets_sent = ?, bytes_sent = ?, decoy_sources = ? WHERE id = ?",
                    (s.packets, s.bytes, json.dumps(sorted(s.sources)), s.row["id"])))

    def session(self, session_id: str) -> dict:
        rows = self.store.query("SELECT * FROM deception_sessions WHERE id = ?", (session_id,))
        if not rows:
            raise AgentError("SESSION_NOT_FOUND", f"deception session {session_id} not found", {"session_id": session_id})
        r = rows[0]
        live = self.sessions.get(session_id)
        packets, sent = (live.packets, live.bytes) if live else (r["packets_sent"], r["bytes_sent"])
        tokens = self.store.query("SELECT token, token_type, embedded_in, trigger_count FROM honeytokens"
                                  " WHERE session_id = ?", (session_id,))
        end = r["stopped"] or time.time()
        return {"session_id": r["id"], "status": r["status"], "threat_id": r["threat_id"],
                "target_domain": r["target_domain"], "attacker_ip": r["attacker_ip"],
                "behavior_profile": r["behavior_profile"], "duration_minutes": r["duration_minutes"],
                "started_at": iso(r["started"]), "estimated_end": iso(r["estimated_end"]),
                "stopped_at": iso(r["stopped"]), "duration_seconds": round(end - r["started"], 1),
                "packets_sent": packets, "honeytokens_deployed": [t["token"] for t in tokens],
                "statistics": {"packets_sent": packets, "bytes_sent": sent,
                               "honeytokens_triggered": sum(1 for t in tokens if t["trigger_count"]),
                               "attacker_actions_logged": r["attacker_actions"]}, "error": r["error"]}

    # ---- decoys ----------------------------------------------------------------------------------

    def _address(self, target: str) -> str:
        try:
            return str(ipaddress.ip_address(target))
        except ValueError:
            pass
        if self.resolver is not None:      # the suspicious path: the network's own resolver
            import dns.message             # on first use (probes.resolve says why)
            import dns.query
            q = dns.message.make_query(target, "A")
            r = dns.query.udp(q, self.resolver.addr, timeout=3, port=self.resolver.port)
            for rrset in r.answer:
                for rd in rrset:
                    if hasattr(rd, "address"):
                        return rd.address
            raise OSError(f"{target} does not resolve through {self.resolver.label}")
        return socket.getaddrinfo(target, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]

    def _decoys(self, s: Session) -> None:
        pace = honeytokens.PROFILES[s.row["behavior_profile"]]["pace"]
        interval = self.cfg.interval_s * pace
        while not s.stop.is_set():
            try:
                self._send_round(s)
            except Exception as e:  # a decoy that fails is noted; the session goes on
                err = f"{type(e).__name__}: {e}"
                self.store.submit_nowait(lambda c: c.execute(
                    "UPDATE deception_sessions SET error = ? WHERE id = ?", (err, s.row["id"])))
            s.stop.wait(interval * random.uniform(0.8, 1.2))

    def _send_round(self, s: Session) -> None:
        tokens = {ty: t for t, ty, _, _ in s.tokens}
        target = s.row["target_domain"]
        if "dns" in tokens and self.resolver is not None:
            import dns.message
            q = dns.message.make_query(tokens["dns"], "A").to_wire()
            with socket.socket(socket.AF_INET6 if ":" in self.resolver.addr else socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.settimeout(2)
                u.sendto(q, (self.resolver.addr, self.resolver.port))
                s.sources.add(u.getsockname()[0])
                s.packets += 1
                s.bytes += len(q)
                try:
                    u.recv(4096)
                except OSError:
                    pass
        addr = self._address(target)
        fields = {"email": tokens.get("email", ""), "password": tokens.get("password", ""), "remember": "1"}
        body = urllib.parse.urlencode({k: v for k, v in fields.items() if v}).encode()
        headers = ["POST /login HTTP/1.1", f"Host: {target}", "User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
                   "Content-Type: application/x-www-form-urlencoded", f"Content-Length: {len(body)}", "Connection: close"]
        if "api_key" in tokens:
            headers.append(f"Authorization: Bearer {tokens['api_key']}")
        if "url" in tokens:
            headers.append(f"Referer: {tokens['url']}")
        request = ("\r\n".join(headers) + "\r\n\r\n").encode() + body
        with socket.create_connection((addr, self.cfg.target_port), timeout=3) as c:
            s.sources.add(c.getsockname()[0])
            c.sendall(request)
            s.packets += 1
            s.bytes += len(request)
            try:
                c.recv(4096)
            except OSError:
                pass
        self.bus.publish("deception:events", "decoy_sent",
                         DecoySent(s.row["id"], target, addr, "http_login", s.packets), source="deception",
                         correlation_id=s.row["correlation_id"])

    # ---- honeytokens --------------------------------------------------------------------------------

    def handle(self, env) -> None:
        ev = env.data
        text = ev.payload.decode("latin-1")
        for n, tok in list(self.needles.items()):
            if n not in text:
                continue
            if ev.src in self.sources_by_session.get(tok["session_id"], ()):   # our own decoy on the wire
                self.own_hits += 1
                continue
            self.trigger(tok["token"], ev.src, via="wire",
                         context={"dst": ev.dst, "dport": ev.dport, "sport": ev.sport, "proto": ev.proto,
                                  "packet_ts": ev.ts, "src_mac": ev.src_mac},
                         correlation_id=env.correlation_id)

    def trigger(self, token: str, source_ip: str, via: str = "report", context: Optional[dict] = None,
                correlation_id: Optional[str] = None) -> dict:
        rows = self.store.query("SELECT * FROM honeytokens WHERE token = ? OR needle = ?", (token, token))
        if not rows:
            raise AgentError("TOKEN_NOT_FOUND", "honeytoken not found", {"token": token})
        t = rows[0]
        now = time.time()
        sources = json.loads(t["trigger_sources"])
        if source_ip and source_ip not in sources:
            sources.append(source_ip)
        self.store.write(lambda c: (
            c.execute("UPDATE honeytokens SET trigger_count = trigger_count + 1, first_trigger = COALESCE(first_trigger, ?),"
                      " last_trigger = ?, trigger_sources = ? WHERE token = ?", (now, now, json.dumps(sources[-64:]),
                                                                                  t["token"])),
            c.execute("INSERT INTO honeytoken_triggers (token, ts, source_ip, via, context) VALUES (?,?,?,?,?)",
                      (t["token"], now, source_ip, via, json.dumps(context or {}))),
            c.execute("UPDATE deception_sessions SET attacker_actions = attacker_actions + 1 WHERE id = ?",
                      (t["session_id"],))))
        related = None
        if t["threat_id"]:
            r = self.store.query("SELECT id, attack_type, created FROM threats WHERE id = ?", (t["threat_id"],))
            if r:
                related = {"threat_id": r[0]["id"], "attack_type": r[0]["attack_type"], "timestamp": iso(r[0]["created"])}
        self.bus.publish("honeytokens:triggered", "honeytoken_triggered",
                         HoneytokenTriggered(t["token"], t["token_type"], source_ip, via, t["session_id"], related,
                                             context or {}),
                         source="deception", correlation_id=correlation_id)
        log.warning("honeytoken %s (%s) used by %s (%s)", t["needle"], t["token_type"], source_ip, via)
        return {"token": t["token"], "trigger_recorded": True, "trigger_count": t["trigger_count"] + 1,
                "alert_sent": True, "related_threat": related, "session_id": t["session_id"]}

    def tokens(self, triggered: Optional[bool] = None, token_type: str = "", limit: int = 100, offset: int = 0) -> dict:
        where, args = [], []
        if triggered is not None:
            where.append("trigger_count > 0" if triggered else "trigger_count = 0")
        if token_type:
            where.append("token_type = ?")
            args.append(token_type)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        total = self.store.query(f"SELECT COUNT(*) AS n FROM honeytokens {clause}", tuple(args))[0]["n"]
        triggered_count = self.store.query("SELECT COUNT(*) AS n FROM honeytokens WHERE trigger_count > 0")[0]["n"]
        rows = self.store.query(f"SELECT * FROM honeytokens {clause} ORDER BY created DESC, token LIMIT ? OFFSET ?",
                                (*args, limit, offset))
        return {"total": total, "triggered_count": triggered_count, "limit": limit, "offset": offset,
                "tokens": [{"token": r["token"], "token_type": r["token_type"], "created_at": iso(r["created"]),
                            "domain": r["domain"], "embedded_in": r["embedded_in"], "session_id": r["session_id"],
                            "threat_id": r["threat_id"], "triggered": r["trigger_count"] > 0,
                            "trigger_count": r["trigger_count"], "first_trigger": iso(r["first_trigger"]),
                            "last_trigger": iso(r["last_trigger"]),
                            "trigger_sources": json.loads(r["trigger_sources"])} for r in rows]}

    def stats(self, since: float) -> dict:
        q = self.store.query
        s = q("SELECT COUNT(*) AS n, COALESCE(SUM(CASE WHEN status = 'active' THEN 0 ELSE packets_sent END), 0) AS p"
              " FROM deception_sessions WHERE started >= ?", (since,))[0]
        live_packets = sum(x.packets for x in self.sessions.values())
        return {"sessions_started": s["n"], "sessions_active": len(self.sessions),
                "packets_sent": s["p"] + live_packets,
                "honeytokens_deployed": q("SELECT COUNT(*) AS n FROM honeytokens WHERE created >= ?", (since,))[0]["n"],
                "honeytokens_triggered": q("SELECT COUNT(*) AS n FROM honeytokens WHERE last_trigger >= ?",
                                           (since,))[0]["n"]}

    def _threat_event(self, cor: str, event_type: str, channel: str, data: dict) -> None:
        self.store.submit_nowait(lambda c: c.execute("INSERT INTO threat_events VALUES (?, ?, ?, ?, ?)",
                                                     (cor, time.time(), event_type, channel, json.dumps(data))))
