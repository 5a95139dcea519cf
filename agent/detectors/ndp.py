"""IPv6 neighbour discovery messages (RFC 4861) as the detectors need them:
Router Advertisements (flags, preference, lifetime, prefixes, source
link-layer address) and Neighbour Solicitations and Advertisements (target,
R/S/O flags, link-layer addresses).  The payload starts at the ICMPv6
header's second word (the C core hands it so: NA flags, RA preference)."""
import ipaddress
import struct

RS, RA, NS, NA, REDIRECT = 133, 134, 135, 136, 137
TYPES = {RS: "rs", RA: "ra", NS: "ns", NA: "na", REDIRECT: "redirect"}
PREFERENCE = {0: "medium", 1: "high", 3: "low", 2: "reserved"}


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def _options(b: bytes) -> dict:
    out = {"slla": "", "tlla": "", "prefixes": [], "mtu": None, "rdnss": []}
    pos = 0
    while pos + 2 <= len(b):
        otype, olen = b[pos], b[pos + 1] * 8
        if olen == 0:
            break                                        # a zero length would loop forever (RFC 4861 says drop)
        body = b[pos:pos + olen]
        if otype in (1, 2) and olen >= 8:
            out["slla" if otype == 1 else "tlla"] = _mac(body[2:8])
        elif otype == 3 and len(body) >= 32:
            plen, flags = body[2], body[3]
            valid, preferred = struct.unpack_from("!II", body, 4)
            out["prefixes"].append({"prefix": f"{ipaddress.IPv6Address(body[16:32])}/{plen}",
                                    "on_link": bool(flags & 0x80), "autonomous": bool(flags & 0x40), "valid": valid,
                                    "preferred": preferred})
        elif otype == 5 and len(body) >= 8:
            out["mtu"] = struct.unpack_from("!I", body, 4)[0]
        elif otype == 25 and len(body) >= 24:
            out["rdnss"] = [str(ipaddress.IPv6Address(body[i:i + 16])) for i in range(8, len(body) - 15, 16)]
        pos += olen
    return out


def parse(ev):
    """The facts of one ND message, or None for what is not one."""
    icmp_type = ev.dport >> 8
    kind = TYPES.get(icmp_type)
    p = ev.payload
    if kind is None or len(p) < 4:
        return None
    facts = {"type": kind, "src": ev.src, "dst": ev.dst, "src_mac": ev.src_mac, "dst_mac": ev.dst_mac, "ts": ev.ts,
             "vlan": ev.vlan, "target": "", "router": False, "solicited": False, "override": False,
             "lifetime": None, "preference": None, "managed": False, "other": False}
    if kind == "ra":
        if len(p) < 12:
            return None
        facts.update(hop_limit=p[0], managed=bool(p[1] & 0x80), other=bool(p[1] & 0x40),
                     preference=PREFERENCE[(p[1] >> 3) & 3], lifetime=struct.unpack_from("!H", p, 2)[0])
        facts.update(_options(p[12:]))
    elif kind in ("ns", "na"):
        if len(p) < 20:
            return None
        facts["target"] = str(ipaddress.IPv6Address(p[4:20]))
        if kind == "na":
            facts.update(router=bool(p[0] & 0x80), solicited=bool(p[0] & 0x40), override=bool(p[0] & 0x20))
        facts.update(_options(p[20:]))
    elif kind == "rs":
        facts.update(_options(p[4:]))
    else:
        return None
    return facts
