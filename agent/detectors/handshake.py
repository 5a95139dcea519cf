"""TLS handshake records as the detectors read them: ClientHello, ServerHello,
certificates (TLS 1.2 and before), alerts, and both SSLv2-format hellos, from the TLS record the C core
parsed (hwdrivers.records): versions (record, legacy and supported_versions),
cipher suites, SNI, the server random's tail (RFC 8446's downgrade sentinel),
plus JA3/JA4/JA3S, ALPN and certificates.  A message cut short by the
segment is left out."""
import re

from hwdrivers import records

VERSIONS = {0x0002: "SSLv2", 0x0300: "SSLv3", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2",
            0x0304: "TLS 1.3"}
FALLBACK_SCSV = 0x5600
EMPTY_RENEGOTIATION_SCSV = 0x00FF
GREASE = {0x0A0A + 0x1010 * i for i in range(16)}
INAPPROPRIATE_FALLBACK = 86
ALERTS = {0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 40: "handshake_failure",
          42: "bad_certificate", 47: "illegal_parameter", 48: "unknown_ca", 50: "decode_error",
          51: "decrypt_error", 70: "protocol_version", 71: "insufficient_security", 80: "internal_error",
          86: "inappropriate_fallback", 90: "user_canceled", 109: "missing_extension", 112: "unrecognized_name"}
SSL2_UNKNOWN = 0xFFFFFF     # an SSLv2 ServerHello whose cipher specs were cut off by the snippet
DOWNGRADE_SENTINELS = {b"DOWNGRD\x01": 0x0303, b"DOWNGRD\x00": 0x0302}  # the server could do more than this


def version_name(v: int) -> str:
    return VERSIONS.get(v, f"0x{v:04x}")


def _client_hello(t) -> dict:
    if t.sslv2:
        suites = [s & 0xFFFF for s in t.ciphers if s >> 16 == 0]   # 0x00XXXX entries are TLS suites
        return {"type": "client_hello", "record_version": 0x0002, "legacy_version": t.version,
                "supported_versions": [], "max_version": t.version, "suites": suites,
                "fallback_scsv": FALLBACK_SCSV in suites, "sni": "", "sslv2_format": True}
    versions = [v for v in t.versions if v not in GREASE]
    suites = [s for s in t.ciphers if s not in GREASE]
    return {"type": "client_hello", "record_version": t.record_version, "legacy_version": t.version,
            "supported_versions": versions, "max_version": max(versions) if versions else t.version,
            "suites": suites, "fallback_scsv": FALLBACK_SCSV in suites, "sni": t.sni.lower().rstrip("."),
            "sslv2_format": False, "alpn": list(t.alpn), "ja3": t.ja3, "ja4": t.ja4}


def _server_hello(t):
    selected = t.selected_version or None
    if t.version not in VERSIONS or (selected is not None and selected not in VERSIONS):
        return None        # an encrypted record that looked like one
    return {"type": "server_hello", "record_version": t.record_version, "legacy_version": t.version,
            "version": selected or t.version, "suite": t.cipher,
            "downgrade_sentinel": DOWNGRADE_SENTINELS.get(t.server_random_tail), "ja3s": t.ja3s,
            "certificates": list(t.certificates)}


def messages(t) -> list:
    """The hellos and alert of a TLS record (hwdrivers.records.TlsRecord, parsed in C), as dicts."""
    out = []
    if t.client_hello and (t.sslv2 or t.version >> 8 == 3):
        out.append(_client_hello(t))
    if t.server_hello and t.sslv2 and t.version == 0x0002:    # an SSL 2.0 session
        out.append({"type": "server_hello", "record_version": 0x0002, "legacy_version": t.version,
                    "version": t.version, "suite": t.ciphers[0] if t.ciphers else SSL2_UNKNOWN,
                    "downgrade_sentinel": None, "sslv2_format": True, "ja3s": "", "certificates": list(t.certificates)})
    if t.server_hello and not t.sslv2:
        hello = _server_hello(t)
        if hello:
            out.append(hello)
    if t.alert_level:
        out.append({"type": "alert", "record_version": t.record_version, "level": t.alert_level,
                    "description": t.alert_desc, "name": ALERTS.get(t.alert_desc, str(t.alert_desc))})
    return out


def parse_records(p: bytes) -> list:
    """Every handshake hello and alert in a TCP payload (parsed by the C core)."""
    t = records.parse_tls(p)
    return [] if isinstance(t, str) else messages(t)


def event_records(ev) -> list:
    """The hellos and alert of a tls event (its record parsed in C)."""
    t = records.record_of(ev)
    return messages(t) if t is not None else []


def _dn(rfc2253: str) -> str:
    """An RFC 2253 name (the C core's, most specific first) as agent.detectors.x509 writes one: CN, O, OU and C
    in DER order, joined by ", "."""
    parts = [x.replace("\\,", ",") for x in re.split(r"(?<!\\),", rfc2253) if x]
    return ", ".join(x for x in reversed(parts) if x.split("=", 1)[0] in ("CN", "O", "OU", "C"))


def certificates(t) -> list:
    """The certificates of a TLS record (parsed whole in C) as agent.detectors.x509.parse's dicts."""
    out = []
    for c in t.certificates:
        if not c.parsed:
            continue
        issuer, subject = _dn(c.issuer), _dn(c.subject)
        out.append({"issuer": issuer, "subject": subject, "not_before": c.not_before or None,
                    "not_after": c.not_after or None, "self_issued": bool(subject) and subject == issuer,
                    "fingerprint": c.sha256})
    return out


def cut_chain(p: bytes) -> list:
    """The DER blobs of a Certificate message that runs past its segment (the C record leaves such a message
    out), the last one cut short: agent.detectors.x509 reads what a cut certificate still tells."""
    hs, pos = b"", 0
    while pos + 5 <= len(p) and p[pos] in (0x14, 0x15, 0x16) and p[pos + 1] == 3:
        rlen = int.from_bytes(p[pos + 3:pos + 5], "big")
        if p[pos] == 0x16:
            hs += p[pos + 5:pos + 5 + rlen]
        pos += 5 + rlen
    pos = 0
    while pos + 4 <= len(hs):
        htype, hlen = hs[pos], int.from_bytes(hs[pos + 1:pos + 4], "big")
        if htype == 11:
            body, chain, at = hs[pos + 4:pos + 4 + hlen], [], 3
            while at + 3 <= len(body):
                n = int.from_bytes(body[at:at + 3], "big")
                chain.append(body[at + 3:at + 3 + n])
                at += 3 + n
            return chain
        pos += 4 + hlen
    return []
