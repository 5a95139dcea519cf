"""Bus events as EVE records: one dict per event, with Suricata's EVE field
names (timestamp, event_type, src_ip, src_port, dest_ip, dest_port, proto,
flow_id, community_id, and an alert / anomaly / flow object).

Every output (file, syslog) serialises the record made here and never
rebuilds it, so the file and the syslog line of one event are the same JSON."""
import datetime
import ipaddress
import time
import zlib
from typing import Callable, Optional

import communityid

from hwdrivers.flows import community_id as _c_community_id

# Suricata's alert severity: 1 is the most severe, 3 the least.
ALERT_SEVERITY = {"critical": 1, "high": 1, "medium": 2, "low": 3}
SID_BASE = 9_100_000             # capbox's signature ids: SID_BASE + a stable number per attack type
PROTO_NAMES = {1: "ICMP", 6: "TCP", 17: "UDP", 58: "IPv6-ICMP", 132: "SCTP", 47: "GRE"}
PROTO_NUMBERS = {name.lower(): n for n, name in PROTO_NAMES.items()} | {"icmpv6": 58}
_community = communityid.CommunityID()


def timestamp(ts: float) -> str:
    """Suricata's timestamp: microseconds and a numeric zone (2024-01-31T12:00:00.000123+0000)."""
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f%z")


def signature_id(attack_type: str) -> int:
    """The same attack type has the same id on every box and every release."""
    return SID_BASE + zlib.crc32(attack_type.encode()) % 100_000


def community_id(src: str, dst: str, proto: int, sport: Optional[int], dport: Optional[int]) -> Optional[str]:
    """The Corelight community ID (v1, seed 0) of a flow, as Zeek and Suricata write it; None when unknown.
    Made in C (hwdrivers.flows.community_id, 20x faster: the protocol logs make one per record); the
    communityid package does ICMP's type/code mapping, which the C one leaves out."""
    if proto not in (1, 58) and (proto not in communityid.PORT_PROTOS or sport is not None and dport is not None):
        cid = _c_community_id(src, dst, proto, sport or 0, dport or 0)
        if cid:
            return cid
    try:
        ipaddress.ip_address(src)
        ipaddress.ip_address(dst)
    except ValueError:
        return None
    try:
        if proto in communityid.PORT_PROTOS and sport is not None and dport is not None:
            return _community.calc(communityid.FlowTuple(proto, src, dst, sport, dport))
        return _community.calc(communityid.FlowTuple(proto, src, dst))
    except communityid.Error:
        return None


def _endpoint(text: Optional[str]) -> tuple:
    """'10.0.0.1:80' or '[2001:db8::1]:80' as (address, port); a bare address as (address, None)."""
    if not text:
        return None, None
    if text.startswith("["):
        addr, _, port = text[1:].partition("]:")
        return addr, int(port) if port.isdigit() else None
    addr, sep, port = text.rpartition(":")
    if sep and port.isdigit() and ":" not in addr:
        return addr, int(port)
    return text, None


def _base(event_type: str, ts: float, host: str, src: Optional[str], sport, dst: Optional[str], dport,
          proto: Optional[int], flow_id: Optional[int] = None) -> dict:
    rec = {"timestamp": timestamp(ts), "event_type": event_type, "host": host}
    if flow_id:
        rec["flow_id"] = flow_id
    if src:
        rec["src_ip"] = src
    if sport is not None:
        rec["src_port"] = sport
    if dst:
        rec["dest_ip"] = dst
    if dport is not None:
        rec["dest_port"] = dport
    if proto is not None:
        rec["proto"] = PROTO_NAMES.get(proto, str(proto))
        cid = community_id(src or "", dst or "", proto, sport, dport) if src and dst else None
        if cid:
            rec["community_id"] = cid
    return rec


def alert(t: dict, host: str) -> dict:
    """A threat (agent.events.ThreatRaised as a dict) as an EVE alert."""
    ev = t.get("evidence") or {}
    proto = PROTO_NUMBERS.get(str(ev.get("transport", "")).lower())
    rec = _base("alert", t["last_seen_ts"], host, t["source_ip"], ev.get("src_port"), t["dest_ip"], ev.get("dst_port"),
                proto)
    rec["alert"] = {
        "action": "allowed", "gid": 1, "signature_id": signature_id(t["attack_type"]), "rev": 1,
        "signature": f"CAPBOX {t['attack_type']}: {t['description']}"[:512],
        "category": t["attack_type"], "severity": ALERT_SEVERITY.get(t["severity"], 3),
        "metadata": {"threat_id": [t["id"]], "attack_type": [t["attack_type"]], "capbox_severity": [t["severity"]],
                     "confidence": [str(t["confidence"])], "count": [str(t["count"])],
                     "attacker": [t["attacker"] or ""], "attacker_mac": [t["attacker_mac"] or ""],
                     "protocol": [t["protocol"]], "verification_status": [t["verification_status"]]},
    }
    if t.get("src_mac"):
        rec["ether"] = {"src_mac": t["src_mac"]}
    return rec


def anomaly(a: dict, host: str) -> dict:
    """A traffic anomaly of a window (agent.analysis.anomalies) as an EVE anomaly record."""
    src, sport = _endpoint(a.get("flow_src"))
    dst, dport = _endpoint(a.get("flow_dst"))
    rec = _base("anomaly", a["window_end"], host, src, sport, dst, dport, None)
    rec["anomaly"] = {"type": "traffic", "event": a["type"], "severity": a["severity"], "message": a["message"],
                      "metric": a["metric"], "value": a["current_value"], "threshold": a["threshold"],
                      "window_start": timestamp(a["window_start"]), "window_end": timestamp(a["window_end"])}
    return rec


def flow(f: dict, host: str) -> dict:
    """An expired flow (hwdrivers.flows.FlowRecord.as_dict) as an EVE flow record."""
    proto = PROTO_NUMBERS.get(f["proto"].lower(), None)
    ports = proto in (6, 17, 132)
    rec = _base("flow", f["last"], host, f["src"], f["sport"] if ports else None, f["dst"],
                f["dport"] if ports else None, proto, f["id"])
    if f.get("vlan"):
        rec["vlan"] = [f["vlan"]]
    if f.get("app"):
        rec["app_proto"] = f["app"]
    rec["flow"] = {"pkts_toserver": f["packets_fwd"], "pkts_toclient": f["packets_rev"],
                   "bytes_toserver": f["bytes_fwd"], "bytes_toclient": f["bytes_rev"],
                   "start": timestamp(f["first"]), "end": timestamp(f["last"]), "age": int(f["duration_s"]),
                   "state": f["state"], "reason": f["end"]}
    if f.get("rtt_ms") is not None:
        rec["flow"]["rtt_ms"] = f["rtt_ms"]
    if f.get("retransmissions"):
        rec["flow"]["retransmissions"] = f["retransmissions"]
    return rec


def dns(ev, host: str) -> Optional[dict]:
    """A DNS message (a packet event with its C record) as Suricata's EVE dns record (version 2): one
    per query and one per answer; None for a message that gave no record."""
    from hwdrivers.records import dns_rcode, dns_type
    r = ev.record
    if r is None or not hasattr(r, "qtype"):
        return None
    rec = _base("dns", ev.ts, host, ev.src, ev.sport, ev.dst, ev.dport, ev.proto, ev.flow_id)
    d = {"version": 2, "type": "answer" if r.response else "query", "id": r.id, "rrname": r.name,
         "rrtype": dns_type(r.qtype), "flags": f"{r.flags:x}", "qr": r.response,
         "rd": bool(r.flags & 0x0100), "ra": bool(r.flags & 0x0080), "tc": r.truncated}
    if r.response:
        d["rcode"] = dns_rcode(r.rcode)
        answers = [{"rrname": a.name, "rrtype": dns_type(a.type), "ttl": a.ttl, "rdata": a.value} for a in r.answers]
        if answers:
            d["answers"] = answers
            grouped: dict = {}
            for a in answers:
                grouped.setdefault(a["rrtype"], []).append(a["rdata"])
            d["grouped"] = grouped
    rec["dns"] = d
    return rec


def _log_base(event_type: str, r: dict, host: str) -> dict:
    """The EVE head of a protocol log record (agent.logs): originator as source, its community id kept."""
    rec = {"timestamp": timestamp(r["ts"]), "event_type": event_type, "host": host, "src_ip": r["id.orig_h"],
           "src_port": r["id.orig_p"], "dest_ip": r["id.resp_h"], "dest_port": r["id.resp_p"],
           "proto": str(r.get("proto", "")).upper()}
    if r.get("community_id"):
        rec["community_id"] = r["community_id"]
    return rec


def http(r: dict, host: str) -> dict:
    """An HTTP transaction (the http log record: request and its response) as Suricata's EVE http."""
    rec = _log_base("http", r, host)
    fields = (("hostname", "host"), ("url", "uri"), ("http_user_agent", "user_agent"), ("http_method", "method"),
              ("status", "status_code"), ("redirect", "location"), ("http_content_type", "content_type"),
              ("length", "response_body_len"))
    h = {eve_name: r[name] for eve_name, name in fields if r.get(name) is not None}
    if r.get("version"):
        h["protocol"] = f"HTTP/{r['version']}"
    rec["http"] = h
    return rec


def _iso(seconds) -> Optional[str]:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) if seconds else None


def tls(r: dict, host: str) -> dict:
    """A TLS handshake (the tls log record) as Suricata's EVE tls.  Suricata's fingerprint is the SHA-1 of
    the certificate; the core keeps SHA-256, given as fingerprint_sha256 rather than under a name that lies."""
    rec = _log_base("tls", r, host)
    t = {"sni": r.get("server_name"), "version": TLS_VERSION_NAMES.get(r.get("version"), r.get("version")),
         "subject": r.get("subject"), "issuerdn": r.get("issuer"), "notbefore": _iso(r.get("not_valid_before")),
         "notafter": _iso(r.get("not_valid_after")),
         "fingerprint_sha256": (r.get("cert_chain_fps") or [None])[0],
         "ja3": {"hash": r["ja3"]} if r.get("ja3") else None, "ja3s": {"hash": r["ja3s"]} if r.get("ja3s") else None,
         "ja4": r.get("ja4"), "cipher": r.get("cipher"), "alpn": r.get("next_protocol")}
    rec["tls"] = {k: v for k, v in t.items() if v is not None}
    return rec


LOG_CHANNEL = "logs:records"      # agent.logs publishes each record there, its log type as the event type
TLS_VERSION_NAMES = {"SSLv2": "SSLv2", "SSLv3": "SSLv3", "TLSv10": "TLS 1.0", "TLSv11": "TLS 1.1",
                     "TLSv12": "TLS 1.2", "TLSv13": "TLS 1.3"}

# event type -> (bus channel, maker); on LOG_CHANNEL a maker gets only the records of its own type
MAKERS: dict = {
    "alert": ("threats:raised", alert),
    "anomaly": ("anomalies:detected", anomaly),
    "flow": ("flows:expired", flow),
    "dns": ("packets:dns", dns),
    "http": (LOG_CHANNEL, http),
    "tls": (LOG_CHANNEL, tls),
}
TYPES = tuple(MAKERS)


def channels(types) -> dict:
    """{channel: [(event type, maker), ...]} for the event types asked for."""
    out: dict = {}
    for t in types:
        out.setdefault(MAKERS[t][0], []).append((t, MAKERS[t][1]))
    return out


def makers_for(by_channel: dict, env) -> list:
    """The (event type, maker) pairs an envelope goes to."""
    pairs = by_channel.get(env.channel, ())
    return [p for p in pairs if p[0] == env.event_type] if env.channel == LOG_CHANNEL else pairs


Maker = Callable[[dict, str], dict]
