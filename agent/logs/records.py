"""Protocol log records: one dict per connection or transaction, with Zeek's
field names where Zeek has the field (ts, uid, id.orig_h, ..., query,
answers, TTLs, method, host, uri, status_code, version, cipher, server_name)
and the flow's community ID on every record that has a flow.

The Builder is fed what the capture already made (packet events with their C
records, expired flows, finished calls) and pairs what comes in halves: a
DNS query with its answer, an HTTP request with its response, a TLS
connection's hellos with its certificates.  It never reads packet bytes."""
import dataclasses
import os
from typing import Optional

from agent.detectors.suites import suite_name
from agent.logs import TYPES
from hwdrivers.logs import uid
from hwdrivers.records import dns_rcode, dns_type

PROTOS = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp", 132: "sctp"}
PROTO_NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "sctp": 132, "gre": 47, "esp": 50}
TLS_VERSIONS = {0x0002: "SSLv2", 0x0300: "SSLv3", 0x0301: "TLSv10", 0x0302: "TLSv11", 0x0303: "TLSv12",
                0x0304: "TLSv13"}
DHCP4 = {1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK", 6: "NAK", 7: "RELEASE", 8: "INFORM"}
DHCP6 = {1: "SOLICIT", 2: "ADVERTISE", 3: "REQUEST", 4: "CONFIRM", 5: "RENEW", 6: "REBIND", 7: "REPLY",
         8: "RELEASE", 9: "DECLINE", 11: "INFORMATION-REQUEST"}
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
PENDING_MAX = 65536          # half-made records held at once (DNS queries, HTTP requests, TLS handshakes, DHCP)
REQUESTS_MAX = 256           # HTTP requests of one flow waiting for their responses (hwdrivers/src/loghttp.c)
BINDINGS_MAX = 65536         # ARP / ND bindings remembered
ID_CACHE = 65536             # flows whose uid and community id are kept
DNS_WAIT_S = 30.0            # a query with no answer this long (packet time) is logged alone
TLS_WAIT_S = 30.0            # a handshake's record waits this long for its certificates (or the flow's end)


def community_id(orig: str, resp: str, proto: int, orig_p, resp_p) -> Optional[str]:
    """agent.outputs.eve's, loaded at the first record made here: `capbox logs -r`, whose dns, conn, http
    and tls records C makes, does not load the communityid package for its rare others."""
    from agent.outputs.eve import community_id as of_flow
    return of_flow(orig, resp, proto, orig_p, resp_p)


def history(fwd: int, rev: int) -> str:
    """Zeek's history letters of the TCP flags each side sent (initiator upper case); capbox keeps the
    flags seen, not their order, so the letters come in a fixed order."""
    out = ""
    if fwd & SYN:
        out += "S"
    if rev & SYN:
        out += "h" if rev & ACK else "s"
    out += ("A" if fwd & ACK else "") + ("a" if rev & ACK and not rev & SYN else "")
    out += ("F" if fwd & FIN else "") + ("f" if rev & FIN else "")
    out += ("R" if fwd & RST else "") + ("r" if rev & RST else "")
    return out


def conn_state(proto: int, fwd: int, rev: int, packets_rev: int) -> str:
    """Zeek's conn_state from the flags each side sent (S0, REJ, S1, SF, S2, S3, RSTO, RSTR, OTH)."""
    if proto != 6:
        return "SF" if packets_rev else "S0"
    if not fwd & SYN:
        return "OTH"
    if not rev:
        return "S0"
    if rev & RST and not rev & SYN:
        return "REJ"
    if fwd & RST:
        return "RSTO"
    if rev & RST:
        return "RSTR"
    if fwd & FIN and rev & FIN:
        return "SF"
    return "S2" if fwd & FIN else "S3" if rev & FIN else "S1"


@dataclasses.dataclass(slots=True)
class Pending:
    ts: float
    record: dict
    extra: list = dataclasses.field(default_factory=list)


class Builder:
    """Log records out of capture output; feed() and flows() return [(type, record)]."""

    def __init__(self, types=TYPES, salt: Optional[bytes] = None):
        self.types = frozenset(types)
        self.salt = salt or os.urandom(16)
        self._ids: dict = {}            # flow -> (uid, community id) of recent flows
        # half-made records: dns (flow id, DNS id, name) -> Pending query; http flow id -> [Pending request];
        # tls flow id -> Pending handshake; dhcp xid -> Pending lease
        self.pending: dict = {"dns": {}, "http": {}, "tls": {}, "dhcp": {}}
        self._dns, self._http, self._tls, self._dhcp = (self.pending[k] for k in ("dns", "http", "tls", "dhcp"))
        self._bindings: dict = {}       # (family, address) -> mac
        self._depth: dict = {}          # flow id -> HTTP requests seen (trans_depth)
        self.now = 0.0                  # the newest packet time seen
        self.overflow = 0               # half-made records logged early because PENDING_MAX was reached

    # ---- what every record starts with ---------------------------------------------------------

    def head(self, ts: float, flow_id: int, orig: str, orig_p, resp: str, resp_p, proto: int) -> dict:
        key = (flow_id, orig, resp) if flow_id else (orig, orig_p, resp, resp_p, proto)
        ids = self._ids.get(key)
        if ids is None:
            if len(self._ids) >= ID_CACHE:
                self._ids.clear()
            ids = self._ids[key] = (uid(self.salt, flow_id) if flow_id else None,
                                    community_id(orig, resp, proto, orig_p, resp_p) or "")
        rec = {"ts": round(ts, 6), "uid": ids[0], "id.orig_h": orig, "id.orig_p": orig_p, "id.resp_h": resp,
               "id.resp_p": resp_p, "proto": PROTOS.get(proto, str(proto))}
        cid = ids[1]
        if cid:
            rec["community_id"] = cid
        return rec

    def _ev_head(self, ev) -> dict:
        if ev.from_initiator:
            return self.head(ev.ts, ev.flow_id, ev.src, ev.sport, ev.dst, ev.dport, ev.proto)
        return self.head(ev.ts, ev.flow_id, ev.dst, ev.dport, ev.src, ev.sport, ev.proto)

    def _hold(self, kind: str, key, value) -> list:
        """Keep a half-made record; the oldest one goes out as it is when the table is full."""
        table = self.pending[kind]
        out = []
        if len(table) >= PENDING_MAX:
            out = self._release(kind, next(iter(table)))
            self.overflow += 1
        table[key] = value
        return out

    def _release(self, kind: str, key) -> list:
        held = self.pending[kind].pop(key)
        if kind == "http":
            return [("http", _compact(p.record)) for p in held]
        return [(kind, _compact(held.record))]

    # ---- input ----------------------------------------------------------------------------------

    def feed(self, ev) -> list:
        """A packet event (hwdrivers.events.PacketEvent) with its C record."""
        if ev.ts > self.now:
            self.now = ev.ts
        r = ev.record
        if r is None or ev.kind not in self.types:
            return []
        return getattr(self, "_on_" + ev.kind)(ev, r)

    def flow(self, f: dict) -> list:
        """An expired flow (FlowRecord.as_dict): its conn record, and what waited for its end."""
        out = self.ended(f["id"])
        if "conn" in self.types:
            out.append(("conn", self._conn(f)))
        return out

    @property
    def waits(self) -> bool:
        """Something waits for a flow's end (else waiting() finds nothing: the caller need not list the ids)."""
        return bool(self._depth or self._tls or self._http)

    def waiting(self, fids) -> list:
        """Those of the flows fids that something waits for (their end releases it: ended())."""
        if not self.waits:
            return []
        depth, tls, http = self._depth, self._tls, self._http
        return [f for f in fids if f in depth or f in tls or f in http]

    def ended(self, fid: int) -> list:
        """A flow left the table (its conn record made elsewhere, in C): what waited for its end."""
        if not self.waits:
            return []
        out = []
        self._depth.pop(fid, None)
        for kind in ("tls", "http"):
            if fid in self.pending[kind]:
                out += self._release(kind, fid)
        return out

    def call(self, detail: dict) -> list:
        """A finished call (agent.calls Call.detail()): its sip record and one rtp record per stream."""
        out = []
        if "sip" in self.types:
            out.append(("sip", self._sip(detail)))
        if "rtp" in self.types:
            out += [("rtp", self._rtp(detail, s)) for s in detail.get("streams", ())]
        return out

    def expire(self) -> list:
        """Half-made records older than their wait (packet time) as they are."""
        out = []
        for kind, wait in (("dns", DNS_WAIT_S), ("tls", TLS_WAIT_S), ("dhcp", DNS_WAIT_S)):
            old = [k for k, p in self.pending[kind].items() if self.now - p.ts >= wait]
            for k in old:
                out += self._release(kind, k)
        return out

    def flush(self) -> list:
        """Everything still held (the end of a capture)."""
        out = []
        for kind, table in self.pending.items():
            for k in list(table):
                out += self._release(kind, k)
        return out

    # ---- per type -------------------------------------------------------------------------------

    def _conn(self, f: dict) -> dict:
        name = str(f["proto"])
        proto = PROTO_NUMBERS.get(name) or (int(name) if name.isdigit() else 0)
        ports = proto in (6, 17, 132)
        rec = self.head(f["first"], f["id"], f["src"], f["sport"] if ports else None, f["dst"],
                        f["dport"] if ports else None, proto)
        fwd, rev = f.get("tcp_flags_fwd", 0), f.get("tcp_flags_rev", 0)
        rec.update(service=f["app"] if f["app"] not in ("", "unknown") else None, duration=round(f["duration_s"], 6),
                   orig_pkts=f["packets_fwd"], orig_ip_bytes=f["bytes_fwd"], resp_pkts=f["packets_rev"],
                   resp_ip_bytes=f["bytes_rev"], conn_state=conn_state(proto, fwd, rev, f["packets_rev"]),
                   history=history(fwd, rev) if proto == 6 else None, rtt=_s(f["rtt_ms"]),
                   retransmissions=f["retransmissions"], end_reason=f["end"], tcp_state=f["state"] or None,
                   vlan=f["vlan"] or None, tunnel=f.get("tunnel"))
        return _compact(rec)

    def _on_dns(self, ev, r) -> list:
        key = (ev.flow_id, r.id, r.name)
        if not r.response:          # the querier is the originator, whichever side began the flow
            rec = _question(self.head(ev.ts, ev.flow_id, ev.src, ev.sport, ev.dst, ev.dport, ev.proto), r)
            if key in self._dns:       # the query again: the round trip counts from the first (as tshark's)
                self._dns[key].extra.append(ev.ts)
                return []
            return self._hold("dns", key, Pending(ev.ts, rec))
        held = self._dns.pop(key, None)
        if held is None:
            rec = _question(self.head(ev.ts, ev.flow_id, ev.dst, ev.dport, ev.src, ev.sport, ev.proto), r)
        else:
            rec = held.record
            rec["rtt"] = round(ev.ts - held.ts, 6)
            if held.extra:
                rec["query_repeats"] = len(held.extra)
        answers = r.answers
        rec.update(rcode=r.rcode, rcode_name=dns_rcode(r.rcode), AA=bool(r.flags & 0x0400), TC=r.truncated,
                   RA=bool(r.flags & 0x0080), Z=(r.flags >> 4) & 0x7, answers=[a.value for a in answers],
                   TTLs=[float(a.ttl) for a in answers], rejected=r.rcode == 5)
        if r.rr_skipped:
            rec["answers_skipped"] = r.rr_skipped
        return [("dns", rec)]

    def _on_http(self, ev, r) -> list:
        """Requests wait for their responses.  Without TCP reassembly a head can be missed, so a response
        answers the request its ACK acknowledges (then the ones before it went unanswered); else the oldest."""
        queue = self._http.get(ev.flow_id)
        if not r.response:
            end = (ev.seq + ev.payload_len) & 0xFFFFFFFF
            if queue and any(p.extra[0] == end for p in queue):
                return []                                   # a retransmitted request
            if len(self._depth) >= PENDING_MAX:
                self._depth.clear()
            depth = self._depth[ev.flow_id] = self._depth.get(ev.flow_id, 0) + 1
            rec = self._ev_head(ev)
            rec.update(trans_depth=depth, method=r.method, host=r.host or None, uri=r.uri, version=r.version[5:]
                       or None, user_agent=r.user_agent or None,
                       request_body_len=r.content_length if r.content_length >= 0 else None,
                       head_cut=True if not r.complete else None)
            if queue is not None:
                out = []
                if len(queue) >= REQUESTS_MAX:      # the oldest goes unanswered
                    out = [("http", _compact(queue.pop(0).record))]
                    self.overflow += 1
                queue.append(Pending(ev.ts, rec, [end]))
                return out
            return self._hold("http", ev.flow_id, [Pending(ev.ts, rec, [end])])
        out = []
        if queue:
            at = next((i for i, p in enumerate(queue) if p.extra[0] == ev.ack), 0)
            if 100 <= r.status < 200 and r.status != 101:   # an interim answer: the final one follows
                queue[at].record["info_code"] = r.status
                return []
            out = [("http", _compact(p.record)) for p in queue[:at]]
            rec = queue[at].record
            del queue[:at + 1]
            if not queue:
                del self._http[ev.flow_id]
        else:
            rec = self._ev_head(ev)
            rec.update(method=None, host=None, uri=None, version=r.version[5:] or None)
        rec.update(status_code=r.status, location=r.location or None, content_type=r.content_type or None,
                   response_body_len=r.content_length if r.content_length >= 0 else None)
        return out + [("http", _compact(rec))]

    def _on_tls(self, ev, r) -> list:
        held = self._tls.get(ev.flow_id)
        out = []
        if held is None and not (r.client_hello or r.server_hello or r.certificates):
            return []               # records after the handshake (already logged) or a missed start
        if held is None:
            held = Pending(ev.ts, self._ev_head(ev))
            out = self._hold("tls", ev.flow_id, held)
        rec = held.record
        if r.client_hello:
            rec.update(server_name=r.sni or None, ja3=r.ja3 or None, ja4=r.ja4 or None,
                       client_alpn=list(r.alpn) or None, client_version=TLS_VERSIONS.get(r.version))
        if r.server_hello:
            rec.update(version=TLS_VERSIONS.get(r.negotiated_version, f"0x{r.negotiated_version:04x}"),
                       cipher=suite_name(r.cipher), ja3s=r.ja3s or None, next_protocol=(r.alpn[0] if r.alpn else None))
        if r.certificates:
            first = r.certificates[0]
            rec.update(cert_chain_fps=[c.sha256 for c in r.certificates], subject=first.subject or None,
                       issuer=first.issuer or None, not_valid_before=first.not_before or None,
                       not_valid_after=first.not_after or None)
        if r.alert_level:
            rec["last_alert"] = r.alert_desc
        if r.server_hello and r.negotiated_version == 0x0304 or r.certificates:
            # TLS 1.3 hides the certificates: nothing more will come; with them the handshake is told
            del self._tls[ev.flow_id]
            out.append(("tls", _compact(rec)))
        return out

    def _binding(self, ts: float, family: int, addr: str, mac: str, how: str, ev, extra: dict) -> list:
        """A binding learned (new) or changed; the same one again is not logged."""
        if not mac or mac == "00:00:00:00:00:00" or addr in ("0.0.0.0", "::"):
            return []
        key = (family, addr)
        old = self._bindings.get(key)
        if old == mac:
            return []
        if old is None and len(self._bindings) >= BINDINGS_MAX:
            self._bindings.pop(next(iter(self._bindings)))
        self._bindings[key] = mac
        return [{"ts": round(ts, 6), "ip": addr, "mac": mac, "change": "changed" if old else "new",
                 "previous_mac": old, "learned_from": how, "src_mac": ev.src_mac, "dst_mac": ev.dst_mac,
                 "vlan": ev.vlan or None, **extra}]

    def _on_arp(self, ev, r) -> list:
        how = "reply" if r.op == 2 else "gratuitous" if r.sender_ip == r.target_ip else "request"
        return [("arp", _compact(rec)) for rec in self._binding(ev.ts, 4, r.sender_ip, r.sender_mac, how, ev, {})]

    def _on_ndp(self, ev, r) -> list:
        if r.type == 136:
            found = self._binding(ev.ts, 6, r.target, r.target_mac, "NA", ev, {"router": bool(r.flags & 0x80)})
        elif r.type in (133, 134, 135):
            how = {133: "RS", 134: "RA", 135: "NS"}[r.type]
            found = self._binding(ev.ts, 6, ev.src, r.source_mac, how, ev, {"router": r.type == 134})
        else:
            found = []
        return [("ndp", _compact(rec)) for rec in found]

    def _on_dhcp(self, ev, r) -> list:
        names = DHCP4 if r.version == 4 else DHCP6
        name = names.get(r.msg_type, str(r.msg_type))
        held = self._dhcp.get(r.xid)
        out = []
        if held is None:
            held = Pending(ev.ts, {"ts": round(ev.ts, 6), "uids": [], "version": r.version, "trans_id": r.xid,
                                   "msg_types": []})
            out = self._hold("dhcp", r.xid, held)
        rec = held.record
        u = uid(self.salt, ev.flow_id) if ev.flow_id else None
        if u and u not in rec["uids"]:
            rec["uids"].append(u)
        rec["msg_types"].append(name)
        if r.client_mac:
            rec["mac"] = r.client_mac
        if r.requested:
            rec["requested_addr"] = r.requested
        server = r.op == 2 if r.version == 4 else r.msg_type in (2, 7)
        if server:
            rec.update(server_addr=ev.src, client_addr=ev.dst if ev.dst not in ("255.255.255.255",) else None,
                       server_id=r.server_id or None, assigned_addr=r.offered or None, lease_time=r.lease_s or None,
                       routers=list(r.routers) or None, dns_servers=list(r.dns) or None)
            rec.setdefault("community_id", community_id(ev.dst, ev.src, 17, ev.dport, ev.sport))
        if name in ("ACK", "NAK", "REPLY", "DECLINE", "RELEASE"):
            del self._dhcp[r.xid]
            out.append(("dhcp", _compact(rec)))
        return out

    def _sip(self, d: dict) -> dict:
        events = d.get("events") or [{}]
        first = events[0]
        orig, orig_p = _endpoint(first.get("source"))
        resp, resp_p = _endpoint(first.get("destination"))
        proto = 6 if str(first.get("transport", "")).lower() in ("tcp", "tls") else 17
        rec = self.head(d["start_ts"], 0, orig, orig_p, resp, resp_p, proto) if orig and resp else \
            {"ts": round(d["start_ts"], 6)}
        rec.update(uid=d["session_id"], call_id=d["call_id"], method=d["method"], request_from=d["from"],
                   request_to=d["to"], status_code=d.get("final_status"), state=d["state"],
                   duration=round(d["end_ts"] - d["start_ts"], 6), messages=d["events_count"],
                   participants=d.get("participants"))
        return _compact(rec)

    def _rtp(self, d: dict, s: dict) -> dict:
        rec = self.head(s["first_ns"] / 1e9, 0, s["src"], s["sport"], s["dst"], s["dport"], 17)
        rec.update(uid=d["session_id"], call_id=d["call_id"], kind=s["kind"], ssrc=s["ssrc"],
                   duration=round((s["last_ns"] - s["first_ns"]) / 1e9, 6), packets=s["packets"], bytes=s["bytes"],
                   lost=s["lost"], jitter_ms=s["jitter_ms"], max_jitter_ms=s["max_jitter_ms"],
                   payload_types=list(s["payload_types"]), clock_rate=s["clock_rate"])
        return _compact(rec)


def _question(rec: dict, r) -> dict:
    rec.update(trans_id=r.id, query=r.name, qclass=r.qclass, qclass_name="C_INTERNET" if r.qclass == 1 else
               str(r.qclass), qtype=r.qtype, qtype_name=dns_type(r.qtype), RD=bool(r.flags & 0x0100))
    return rec


def _s(ms) -> Optional[float]:
    return None if ms is None else round(ms / 1000, 6)


def _endpoint(text) -> tuple:
    if not text:
        return None, None
    host, sep, port = str(text).rpartition(":")
    if not sep or not port.isdigit():
        return str(text), None
    return host.strip("[]"), int(port)


def _compact(rec: dict) -> dict:
    """Zeek leaves unset fields out of its JSON logs; so do we."""
    return {k: v for k, v in rec.items() if v is not None}
