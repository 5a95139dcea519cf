"""Readers for the tests: classic pcap and pcapng packets as (ts_ns, wire
length, bytes), to hold a recording to its source byte for byte (tshark and
capinfos stay the oracle for "does it open")."""
import struct


def read_pcap(path) -> list:
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    order, nano = {b"\xd4\xc3\xb2\xa1": ("<", False), b"\xa1\xb2\xc3\xd4": (">", False),
                   b"\x4d\x3c\xb2\xa1": ("<", True), b"\xa1\xb2\x3c\x4d": (">", True)}[magic]
    out, off = [], 24
    while off + 16 <= len(data):
        sec, frac, cap, wire = struct.unpack(order + "IIII", data[off:off + 16])
        off += 16
        out.append((sec * 10**9 + (frac if nano else frac * 1000), wire, data[off:off + cap]))
        off += cap
    return out


def read_pcapng(path) -> dict:
    """{"packets": [(ts_ns, wire, bytes)], "interfaces": [{"linktype", "snaplen", "name", "tsresol"}]}"""
    with open(path, "rb") as f:
        data = f.read()
    out = {"packets": [], "interfaces": [], "sections": 0}
    off, order = 0, "<"
    while off + 12 <= len(data):
        if data[off:off + 4] == b"\x0a\x0d\x0d\x0a":
            order = "<" if data[off + 8:off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            out["sections"] += 1
        btype, blen = struct.unpack(order + "II", data[off:off + 8])
        assert blen >= 12 and blen % 4 == 0 and off + blen <= len(data), f"bad block at {off}"
        assert struct.unpack(order + "I", data[off + blen - 4:off + blen])[0] == blen, f"bad trailer at {off}"
        body = data[off + 8:off + blen - 4]
        if btype == 1:
            linktype, _, snaplen = struct.unpack(order + "HHI", body[:8])
            iface = {"linktype": linktype, "snaplen": snaplen, "name": None, "tsresol": 6}
            for code, value in _options(body[8:], order):
                if code == 2:
                    iface["name"] = value.decode()
                elif code == 9:
                    iface["tsresol"] = value[0]
            out["interfaces"].append(iface)
        elif btype == 6:
            ifid, hi, lo, cap, wire = struct.unpack(order + "IIIII", body[:20])
            res = out["interfaces"][ifid]["tsresol"]
            units = (hi << 32) | lo
            ts = units * 10 ** (9 - res) if res <= 9 else units // 10 ** (res - 9)
            out["packets"].append((ts, wire, body[20:20 + cap]))
        off += blen
    assert off == len(data), f"{len(data) - off} bytes after the last whole block"
    return out


def _options(b: bytes, order: str):
    off = 0
    while off + 4 <= len(b):
        code, length = struct.unpack(order + "HH", b[off:off + 4])
        if code == 0:
            return
        yield code, b[off + 4:off + 4 + length]
        off += 4 + ((length + 3) & ~3)


def read_packets(path) -> list:
    with open(path, "rb") as f:
        head = f.read(4)
    return read_pcapng(path)["packets"] if head == b"\x0a\x0d\x0d\x0a" else read_pcap(path)
