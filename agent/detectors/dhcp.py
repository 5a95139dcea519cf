"""DHCPv4 (RFC 2131) and DHCPv6 (RFC 8415) messages as the detectors need
them: who answers (server id, MAC, address), what it hands out (address,
router, resolvers) and to whom (client MAC, transaction)."""
import ipaddress
import struct

V4_TYPES = {1: "discover", 2: "offer", 3: "request", 4: "decline", 5: "ack", 6: "nak", 7: "release", 8: "inform"}
V6_TYPES = {1: "solicit", 2: "advertise", 3: "request", 4: "confirm", 5: "renew", 6: "rebind", 7: "reply",
            8: "release", 9: "decline", 10: "reconfigure", 11: "information-request"}
SERVER_MESSAGES = ("offer", "ack", "nak", "advertise", "reply")
MAGIC = b"\x63\x82\x53\x63"


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def _ips(b: bytes, size: int) -> list:
    cls = ipaddress.IPv4Address if size == 4 else ipaddress.IPv6Address
    return [str(cls(b[i:i + size])) for i in range(0, len(b) - size + 1, size)]


def _v4(ev, p: bytes):
    if len(p) < 240 or p[236:240] != MAGIC or p[1] != 1 or p[2] != 6:
        return None
    xid = struct.unpack_from("!I", p, 4)[0]
    opts, pos = {}, 240
    while pos < len(p) and p[pos] != 255:
        if p[pos] == 0:
            pos += 1
            continue
        if pos + 2 > len(p):
            break
        code, n = p[pos], p[pos + 1]
        opts[code] = p[pos + 2:pos + 2 + n]
        pos += 2 + n
    mtype = V4_TYPES.get(opts.get(53, b"\x00")[0] if opts.get(53) else 0)
    if mtype is None:
        return None
    server_id = _ips(opts[54], 4)[0] if len(opts.get(54, b"")) >= 4 else ""
    return {"family": 4, "message": mtype, "xid": xid, "client_mac": _mac(p[28:34]),
            "client_ip": str(ipaddress.IPv4Address(p[12:16])), "your_ip": str(ipaddress.IPv4Address(p[16:20])),
            "server_id": server_id, "routers": _ips(opts.get(3, b""), 4), "dns": _ips(opts.get(6, b""), 4),
            "lease": struct.unpack("!I", opts[51])[0] if len(opts.get(51, b"")) == 4 else None}


def _v6_options(b: bytes) -> dict:
    out, pos = {}, 0
    while pos + 4 <= len(b):
        code, n = struct.unpack_from("!HH", b, pos)
        out.setdefault(code, b[pos + 4:pos + 4 + n])
        pos += 4 + n
    return out


def _v6(ev, p: bytes):
    mtype = V6_TYPES.get(p[0])
    if mtype is None or len(p) < 4:
        return None
    opts = _v6_options(p[4:])
    addrs = []
    ia = opts.get(3, b"")
    if len(ia) >= 12:
        inner = _v6_options(ia[12:])
        if len(inner.get(5, b"")) >= 16:
            addrs.append(str(ipaddress.IPv6Address(inner[5][:16])))
    client = opts.get(1, b"")
    return {"family": 6, "message": mtype, "xid": int.from_bytes(p[1:4], "big"),
            "client_mac": _mac(client[-6:]) if len(client) >= 10 else "", "client_ip": "",
            "your_ip": addrs[0] if addrs else "",
            "server_id": opts.get(2, b"").hex(), "routers": [], "dns": _ips(opts.get(23, b""), 16), "lease": None}


def parse(ev):
    p = ev.payload
    facts = _v4(ev, p) if ev.sport in (67, 68) else _v6(ev, p) if p else None
    if facts is None:
        return None
    facts.update(src=ev.src, dst=ev.dst, src_mac=ev.src_mac, dst_mac=ev.dst_mac, ts=ev.ts, vlan=ev.vlan,
                 from_server=facts["message"] in SERVER_MESSAGES)
    return facts
