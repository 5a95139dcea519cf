"""TLS handshake records as the wire carries them: ClientHello, ServerHello,
Certificate (TLS 1.2 and before), alerts, and the SSLv2-format hellos.  Only what the detectors need:
versions (record, legacy and supported_versions), cipher suites, SNI, the
server random (for RFC 8446's downgrade sentinel).  A record cut short by
the snippet yields what was complete."""
import struct

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


def _extensions(b: bytes, pos: int) -> dict:
    out = {}
    if pos + 2 > len(b):
        return out
    end = min(len(b), pos + 2 + struct.unpack_from("!H", b, pos)[0])
    pos += 2
    while pos + 4 <= end:
        etype, elen = struct.unpack_from("!HH", b, pos)
        out[etype] = b[pos + 4:pos + 4 + elen]
        pos += 4 + elen
    return out


def _sni(ext: bytes) -> str:
    if len(ext) < 5 or ext[2] != 0:
        return ""
    n = struct.unpack_from("!H", ext, 3)[0]
    return ext[5:5 + n].decode("ascii", "replace").lower().rstrip(".")


def _client_hello(b: bytes, record_version: int) -> dict:
    legacy = struct.unpack_from("!H", b, 0)[0]
    if legacy >> 8 != 3:
        raise IndexError("not a ClientHello")
    pos = 2 + 32
    sid = b[pos]
    pos += 1 + sid
    n = struct.unpack_from("!H", b, pos)[0]
    suites = [s for s in struct.unpack_from(f"!{n // 2}H", b, pos + 2) if s not in GREASE]
    pos += 2 + n
    pos += 1 + b[pos]
    ext = _extensions(b, pos)
    versions = []
    if 43 in ext and ext[43]:
        raw = ext[43][1:1 + ext[43][0]]
        versions = [v for v in struct.unpack(f"!{len(raw) // 2}H", raw[:len(raw) // 2 * 2]) if v not in GREASE]
    return {"type": "client_hello", "record_version": record_version, "legacy_version": legacy,
            "supported_versions": versions, "max_version": max(versions) if versions else legacy,
            "suites": suites, "fallback_scsv": FALLBACK_SCSV in suites, "sni": _sni(ext.get(0, b"")),
            "sslv2_format": False}


def _server_hello(b: bytes, record_version: int) -> dict:
    legacy = struct.unpack_from("!H", b, 0)[0]
    random = b[2:34]
    pos = 34
    sid = b[pos]
    pos += 1 + sid
    suite = struct.unpack_from("!H", b, pos)[0]
    pos += 3
    ext = _extensions(b, pos)
    selected = struct.unpack("!H", ext[43][:2])[0] if len(ext.get(43, b"")) >= 2 else None
    sentinel = DOWNGRADE_SENTINELS.get(random[-8:])
    if legacy not in VERSIONS or (selected is not None and selected not in VERSIONS):
        raise IndexError("not a ServerHello")        # an encrypted record that looked like one
    return {"type": "server_hello", "record_version": record_version, "legacy_version": legacy,
            "version": selected or legacy, "suite": suite, "downgrade_sentinel": sentinel}


def _certificates(b: bytes, record_version: int) -> dict:
    """A Certificate message (TLS 1.2 and before: in clear): the chain's DER blobs, the last maybe cut short."""
    total = int.from_bytes(b[0:3], "big")
    pos, chain = 3, []
    while pos + 3 <= min(len(b), 3 + total):
        n = int.from_bytes(b[pos:pos + 3], "big")
        chain.append(b[pos + 3:pos + 3 + n])
        pos += 3 + n
    if not chain:
        raise IndexError("no certificate")
    return {"type": "certificate", "record_version": record_version, "chain": chain}


def parse_records(p: bytes) -> list:
    """Every handshake hello and alert in a TCP payload, in order."""
    out = []
    if len(p) >= 13 and p[0] & 0x80 and p[2] == 4:     # SSLv2 ServerHello: an SSL 2.0 session
        cert_len, specs_len = struct.unpack_from("!HH", p, 7)
        specs = p[13 + cert_len:13 + cert_len + specs_len]
        chosen = [int.from_bytes(specs[i:i + 3], "big") for i in range(0, len(specs) - 2, 3)]
        version = struct.unpack_from("!H", p, 5)[0]
        if version != 0x0002:
            return out
        return [{"type": "server_hello", "record_version": 0x0002, "legacy_version": version, "version": version,
                 "suite": chosen[0] if chosen else SSL2_UNKNOWN, "downgrade_sentinel": None, "sslv2_format": True}]
    if len(p) >= 5 and p[0] & 0x80 and p[2] == 1:      # SSLv2-format ClientHello
        rlen = ((p[0] & 0x7F) << 8) | p[1]
        body = p[2:2 + rlen]
        version, cs_len, sid_len, ch_len = struct.unpack_from("!HHHH", body, 1)
        specs = body[9:9 + cs_len]
        suites = [int.from_bytes(specs[i:i + 3], "big") for i in range(0, len(specs) - 2, 3)]
        tls_suites = [s & 0xFFFF for s in suites if s >> 16 == 0]   # 0x00XXXX entries are TLS suites
        out.append({"type": "client_hello", "record_version": 0x0002, "legacy_version": version,
                    "supported_versions": [], "max_version": version, "suites": tls_suites,
                    "fallback_scsv": FALLBACK_SCSV in tls_suites, "sni": "", "sslv2_format": True})
        return out
    pos = 0
    while pos + 5 <= len(p):
        ctype, rver, rlen = struct.unpack_from("!BHH", p, pos)
        if ctype not in (0x15, 0x16) or rver >> 8 != 3:
            break
        body = p[pos + 5:pos + 5 + rlen]
        if ctype == 0x15:
            if rlen == 2 and len(body) == 2:           # a longer alert is encrypted
                out.append({"type": "alert", "record_version": rver, "level": body[0], "description": body[1],
                            "name": ALERTS.get(body[1], str(body[1]))})
        else:
            hpos = 0
            while hpos + 4 <= len(body):
                htype = body[hpos]
                hlen = int.from_bytes(body[hpos + 1:hpos + 4], "big")
                msg = body[hpos + 4:hpos + 4 + hlen]
                try:
                    if htype == 1:
                        out.append(_client_hello(msg, rver))
                    elif htype == 2:
                        out.append(_server_hello(msg, rver))
                    elif htype == 11:
                        out.append(_certificates(msg, rver))
                except (struct.error, IndexError):
                    pass  # cut short by the snippet
                if htype not in (1, 2, 11) or hpos + 4 + hlen > len(body):
                    break
                hpos += 4 + hlen
        pos += 5 + rlen
    return out
