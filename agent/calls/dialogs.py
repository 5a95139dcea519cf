"""Calls rebuilt from SIP messages: one session per Call-ID with its
transactions, responses, SDP offers and answers (the RTP and RTCP endpoints
the C core is told to measure), participants, timings and the ladder of
events; RTP streams are attached by the tag each session gets."""
import dataclasses
import itertools
import logging
import re
import uuid
from typing import Callable, Optional

from agent.bus import iso
from agent.calls import quality, sdp, sip
from hwdrivers.rtp import Endpoint, Stream

log = logging.getLogger(__name__)
PROVISIONAL_RINGING = (180, 183)
_IMS_DOMAIN = re.compile(r"3gppnetwork\.org|\bims\.", re.I)
IMS_HEADERS = ("p-charging-vector", "p-charging-function-addresses", "p-visited-network-id", "p-served-user",
               "security-client", "security-server", "security-verify", "p-called-party-id")


def endpoint(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


@dataclasses.dataclass
class Message:
    """One SIP message as seen on the wire."""

    ts_ns: int
    src: str
    sport: int
    dst: str
    dport: int
    transport: str
    wirelen: int
    msg: sip.SipMessage
    retransmission: bool = False
    media: tuple = ()

    @property
    def source(self) -> str:
        return endpoint(self.src, self.sport)

    @property
    def destination(self) -> str:
        return endpoint(self.dst, self.dport)


class Call:
    """One SIP session (a Call-ID)."""

    def __init__(self, call_id: str, tag: int):
        self.id = str(uuid.uuid4())
        self.call_id = call_id
        self.tag = tag
        self.messages: list = []
        self.participants: dict = {}
        self.streams: list = []
        self.endpoints: list = []
        self._seen: set = set()
        self.ims = self.volte = False
        self.method = ""
        self.finished = False        # BYE answered, or a final answer to a call that never started

    # ---- feeding ----------------------------------------------------------------

    def add(self, m: Message) -> list:
        """Take a message; returns the media endpoints it announced (new RTP/RTCP to measure)."""
        msg = m.msg
        key = (m.src, m.sport, m.dst, m.dport, msg.method or msg.status, msg.header("cseq"),
               msg.header("via").split(",")[0])
        m.retransmission = key in self._seen
        self._seen.add(key)
        self.messages.append(m)
        for ep in (m.source, m.destination):
            self.participants.setdefault(ep, None)
        if not self.method:
            self.method = msg.method if msg.is_request else msg.cseq[1]
        self._classify(msg)
        if msg.status and msg.status >= 200 and msg.cseq[1] == "BYE":
            self.finished = True
        found = []
        if msg.body and "sdp" in msg.content_type:
            m.media = tuple(sdp.parse(msg.body))
            for media in m.media:
                if not media.is_rtp:
                    continue
                found.append(Endpoint(media.addr, media.port, self.tag, "rtp", m.ts_ns, media.clock_rates()))
                if media.rtcp_port:
                    found.append(Endpoint(media.rtcp_addr, media.rtcp_port, self.tag, "rtcp", m.ts_ns))
        self.endpoints.extend(found)
        return found

    def _classify(self, msg: sip.SipMessage) -> None:
        h = msg.headers
        text = " ".join(v for name in ("contact", "accept-contact", "p-asserted-service", "feature-caps")
                        for v in h.get(name, []))
        if "mmtel" in text.lower() or any(x in v for v in h.get("p-access-network-info", [])
                                          for x in ("3GPP-E-UTRAN", "3GPP-NR")):
            self.volte = True
        if self.volte or any(name in h for name in IMS_HEADERS) or \
                _IMS_DOMAIN.search(" ".join([msg.uri or "", msg.header("to"), msg.header("from"),
                                             msg.header("p-asserted-identity")])):
            self.ims = True

    # ---- what the messages say ------------------------------------------------------

    @property
    def type(self) -> str:
        return "VoLTE" if self.volte else "IMS" if self.ims else "SIP"

    def _invites(self) -> list:
        """First transmissions of dialog-forming INVITEs (no To tag), in order."""
        return [m for m in self.messages if m.msg.method == "INVITE" and not m.msg.to_tag and not m.retransmission]

    def _answers(self, cseq: int) -> list:
        return [m for m in self.messages if m.msg.status and m.msg.cseq == (cseq, "INVITE")]

    def timing(self) -> dict:
        """setup_time_ms: INVITE -> 200 OK; ringing_time_ms: INVITE -> 180/183, both of the INVITE
        transaction that got its answer (after an authentication challenge, the second one)."""
        invites = self._invites()
        out = {"setup_time_ms": None, "ringing_time_ms": None, "answered_ts": None, "final_status": None,
               "final_reason": None}
        for inv in reversed(invites):
            answers = self._answers(inv.msg.cseq[0])
            if not answers:
                continue
            ring = next((a for a in answers if a.msg.status in PROVISIONAL_RINGING), None)
            ok = next((a for a in answers if 200 <= a.msg.status < 300), None)
            final = next((a for a in answers if a.msg.status >= 200), None)
            if ring:
                out["ringing_time_ms"] = round((ring.ts_ns - inv.ts_ns) / 1e6, 3)
            if ok:
                out["setup_time_ms"] = round((ok.ts_ns - inv.ts_ns) / 1e6, 3)
                out["answered_ts"] = ok.ts_ns
            if final:
                out["final_status"], out["final_reason"] = final.msg.status, final.msg.reason
            break
        return out

    def state(self, t: Optional[dict] = None) -> str:
        t = t or self.timing()
        methods = {m.msg.method for m in self.messages if m.msg.method}
        status = t["final_status"]
        if self.method != "INVITE":
            finals = [m.msg.status for m in self.messages if m.msg.status and m.msg.status >= 200]
            if not finals:
                return "pending"
            return "completed" if 200 <= finals[-1] < 300 else "failed"
        if t["answered_ts"] is not None:
            return "completed" if "BYE" in methods else "in_call"
        if "CANCEL" in methods or status == 487:
            return "cancelled"
        if status in (486, 600):
            return "busy"
        if status is not None and 300 <= status < 400:
            return "redirected"
        if status is not None:
            return "rejected"
        return "ringing" if t["ringing_time_ms"] is not None else "setup"

    # ---- views ------------------------------------------------------------------------

    def rtp_streams(self) -> list:
        return [s for s in self.streams if s.kind == "rtp"]

    def metrics(self) -> dict:
        t = self.timing()
        rtp = self.rtp_streams()
        expected = sum(max(s.expected, 0) for s in rtp)
        lost = sum(max(s.lost, 0) for s in rtp)
        loss = lost / expected if expected else 0.0
        jitter = max((s.mean_jitter_ms for s in rtp), default=0.0)
        sip_packets = len(self.messages)
        sip_bytes = sum(m.wirelen for m in self.messages)
        start, end = self.span()
        answered = t["answered_ts"]
        bye = next((m.ts_ns for m in self.messages if m.msg.method == "BYE" and answered and m.ts_ns >= answered),
                   None)
        codec = next((md.codec() for m in self.messages for md in m.media if md.is_rtp and md.codec()), "")
        return {
            "packets": sip_packets + sum(s.packets for s in self.streams),
            "bytes": sip_bytes + sum(s.bytes for s in self.streams),
            "sip_packets": sip_packets,
            "rtp_packets": sum(s.packets for s in rtp),
            "rtcp_packets": sum(s.packets for s in self.streams if s.kind == "rtcp"),
            "rtp_loss": round(loss, 6),
            "rtp_lost": lost,
            "rtp_expected": expected,
            "rtp_jitter_ms": round(jitter, 3),
            "rtp_max_jitter_ms": round(max((s.max_jitter_ms for s in rtp), default=0.0), 3),
            "mos": quality.estimate(loss, jitter, codec) if rtp else None,
            "codec": codec or None,
            "setup_time_ms": t["setup_time_ms"],
            "ringing_time_ms": t["ringing_time_ms"],
            "duration_ms": round((end - start) / 1e6, 3),
            "talk_time_ms": round(((bye or end) - answered) / 1e6, 3) if answered else None,
        }

    def span(self) -> tuple:
        times = [m.ts_ns for m in self.messages] + [s.first_ns for s in self.streams] + \
                [s.last_ns for s in self.streams]
        return min(times), max(times)

    def summary(self) -> dict:
        """The session as the listing shows it (the seeds' fields, plus ours)."""
        t = self.timing()
        start, end = self.span()
        first = self.messages[0].msg
        invite = next((m.msg for m in self.messages if m.msg.method == self.method), first)
        return {
            "session_id": self.id,
            "type": self.type,
            "session_key": self.call_id,
            "call_id": self.call_id,
            "method": self.method,
            "state": self.state(t),
            "final_status": t["final_status"],
            "from": invite.from_uri,
            "to": invite.to_uri,
            "start_time": iso(start / 1e9),
            "end_time": iso(end / 1e9),
            "start_ts": start / 1e9,
            "end_ts": end / 1e9,
            "participants": list(self.participants),
            "metrics": self.metrics(),
            "events_count": len(self.messages),
        }

    def events(self) -> list:
        out = []
        for i, m in enumerate(self.messages, 1):
            msg = m.msg
            label = msg.label
            details = {"call_id": msg.call_id, "from": msg.from_uri, "to": msg.to_uri, "cseq": msg.header("cseq")}
            if m.media:
                details["sdp"] = [f"{md.kind} {endpoint(md.addr, md.port)} {md.proto} {md.codec()}".rstrip()
                                  for md in m.media]
            out.append({"event_id": f"evt-{i:03d}", "timestamp": iso(m.ts_ns / 1e9), "ts": m.ts_ns / 1e9,
                        "protocol": "SIP", "message_type": label, "method": msg.method, "status": msg.status,
                        "source": m.source, "destination": m.destination, "transport": m.transport,
                        "short": f"SIP {label}", "retransmission": m.retransmission, "details": details})
        return out

    def detail(self) -> dict:
        s = self.summary()
        metrics = s.pop("metrics")
        return {**s, "duration_ms": metrics["duration_ms"], "packet_count": metrics["packets"],
                "byte_count": metrics["bytes"], "metrics": metrics,
                "streams": [st.as_dict() for st in sorted(self.streams, key=lambda x: x.first_ns)],
                "events": self.events()}


class Tracker:
    """Calls from SIP packet events (hwdrivers PacketEvent of kind sip)."""

    def __init__(self, on_media: Optional[Callable[[Call, list], None]] = None, max_calls: int = 100000):
        self.calls: dict = {}           # Call-ID -> Call
        self.by_tag: dict = {}
        self._tags = itertools.count(1)
        self._tcp = sip.TcpStreams()
        self.on_media = on_media
        self.max_calls = max_calls
        self.messages = 0
        self.not_sip = 0                # SIP-port payloads that did not parse
        self.dropped_calls = 0          # Call-IDs past max_calls
        self.errors = 0                 # packets that raised while being taken
        self.last_ns = 0

    def feed(self, ev) -> list:
        """Calls this packet event changed.  A message no rule foresaw is counted and skipped:
        one hostile packet must not cost the rest of a capture its calls."""
        try:
            return self._feed(ev)
        except Exception:
            if not self.errors:
                log.exception("a SIP packet of %s:%d could not be taken", ev.src, ev.sport)
            self.errors += 1
            return []

    def _feed(self, ev) -> list:
        if ev.ts_ns > self.last_ns:
            self.last_ns = ev.ts_ns
        truncated = len(ev.payload) < ev.payload_len
        if ev.proto == 6:
            found = self._tcp.feed((ev.src, ev.sport, ev.dst, ev.dport), ev.seq, ev.payload, ev.ts_ns)
            parsed = [(msg, ts) for msg, ts in found]
        else:
            try:
                parsed = [(sip.parse(ev.payload, truncated), ev.ts_ns)]
            except sip.SipError:
                self.not_sip += 1
                return []
        changed = []
        for msg, ts in parsed:
            call = self._add(Message(ts, ev.src, ev.sport, ev.dst, ev.dport, "tcp" if ev.proto == 6 else "udp",
                                     ev.wirelen, msg))
            if call is not None and call not in changed:
                changed.append(call)
        return changed

    def _add(self, m: Message) -> Optional[Call]:
        call_id = m.msg.call_id
        if not call_id:
            self.not_sip += 1
            return None
        call = self.calls.get(call_id)
        if call is None:
            if len(self.calls) >= self.max_calls:
                self.dropped_calls += 1
                return None
            call = Call(call_id, next(self._tags))
            self.calls[call_id] = call
            self.by_tag[call.tag] = call
        self.messages += 1
        found = call.add(m)
        if found and self.on_media:
            self.on_media(call, found)
        return call

    def endpoints(self) -> list:
        return [e for c in self.calls.values() for e in c.endpoints]

    def attach(self, streams: list) -> None:
        for s in streams:
            call = self.by_tag.get(s.tag)
            if call is not None:
                call.streams.append(s)

    def remove(self, call: Call) -> None:
        self.calls.pop(call.call_id, None)
        self.by_tag.pop(call.tag, None)

    def ordered(self) -> list:
        return sorted(self.calls.values(), key=lambda c: (c.messages[0].ts_ns, c.tag))


__all__ = ["Call", "Message", "Stream", "Tracker", "endpoint"]
