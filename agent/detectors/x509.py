"""Just enough of an X.509 certificate, read from DER that a snippet may cut
short: issuer, subject, validity, whether it is self-issued, and its
SHA-256 when it is whole.  The fields a detector needs sit at the front of
tbsCertificate, so a leaf certificate cut after its subject still tells
who issued it and when."""
import datetime
import hashlib

NAMES = {b"\x55\x04\x03": "CN", b"\x55\x04\x0a": "O", b"\x55\x04\x0b": "OU", b"\x55\x04\x06": "C"}


def _tlv(b: bytes, pos: int) -> tuple:
    """(tag, start of value, end of value) of the DER element at pos; IndexError when cut short."""
    tag, n = b[pos], b[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4:
            raise IndexError("bad DER length")
        n = int.from_bytes(b[pos:pos + k], "big")
        if len(b[pos:pos + k]) < k:
            raise IndexError("cut short")
        pos += k
    return tag, pos, pos + n


def _children(b: bytes, start: int, end: int) -> list:
    out, pos = [], start
    while pos < min(end, len(b)):
        tag, s, e = _tlv(b, pos)
        out.append((tag, s, e))
        pos = e
    return out


def _name(b: bytes, start: int, end: int) -> str:
    parts = []
    for _, s, e in _children(b, start, end):            # SET of AttributeTypeAndValue
        for _, s2, e2 in _children(b, s, e):
            kids = _children(b, s2, e2)
            if len(kids) >= 2 and kids[0][0] == 0x06:
                key = NAMES.get(b[kids[0][1]:kids[0][2]])
                if key:
                    parts.append(f"{key}={b[kids[1][1]:kids[1][2]].decode('utf-8', 'replace')}")
    return ", ".join(parts)


def _time(b: bytes, tag: int, s: int, e: int):
    text = b[s:e].decode("ascii", "replace").rstrip("Z")
    fmt = "%y%m%d%H%M%S" if tag == 0x17 else "%Y%m%d%H%M%S"
    try:
        return datetime.datetime.strptime(text, fmt).replace(tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        return None


def parse(der: bytes) -> dict:
    """issuer, subject, not_before, not_after (epoch seconds), self_issued, fingerprint (None when cut short)."""
    _, cs, ce = _tlv(der, 0)                           # Certificate
    _, ts, te = _tlv(der, cs)                          # tbsCertificate
    pos = ts
    tag, s, e = _tlv(der, pos)
    if tag == 0xA0:                                    # [0] version
        pos = e
        tag, s, e = _tlv(der, pos)
    pos = e                                            # serialNumber
    _, s, e = _tlv(der, pos)                           # signature algorithm
    pos = e
    _, s, e = _tlv(der, pos)                           # issuer
    issuer = _name(der, s, e)
    if e > len(der):
        raise IndexError("issuer cut short")
    pos = e
    _, s, e = _tlv(der, pos)                           # validity
    times = _children(der, s, e)
    not_before = _time(der, *times[0]) if times else None
    not_after = _time(der, *times[1]) if len(times) > 1 else None
    pos = e
    subject = ""
    try:
        _, s, e = _tlv(der, pos)
        if e <= len(der):
            subject = _name(der, s, e)
    except IndexError:
        pass
    whole = ce <= len(der)
    return {"issuer": issuer, "subject": subject, "not_before": not_before, "not_after": not_after,
            "self_issued": bool(subject) and subject == issuer,
            "fingerprint": hashlib.sha256(der[:ce]).hexdigest() if whole else None}
