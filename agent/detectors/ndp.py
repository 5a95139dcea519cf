"""IPv6 neighbour discovery messages (RFC 4861) as the detectors need them:
Router Advertisements (flags, preference, lifetime, prefixes, source
link-layer address, RDNSS) and Neighbour Solicitations and Advertisements
(target, R/S/O flags, link-layer addresses), from the ND record the C core
parsed (hwdrivers.records.NdpRecord)."""
from hwdrivers import records

RS, RA, NS, NA, REDIRECT = 133, 134, 135, 136, 137
TYPES = {RS: "rs", RA: "ra", NS: "ns", NA: "na", REDIRECT: "redirect"}
PREFERENCE = {0: "medium", 1: "high", 3: "low", 2: "reserved"}


def parse(ev):
    """The facts of one ND message, or None for what is not one."""
    kind = TYPES.get(ev.dport >> 8)
    if kind is None or kind == "redirect":
        return None
    rec = records.record_of(ev)
    if rec is None:
        return None
    facts = {"type": kind, "src": ev.src, "dst": ev.dst, "src_mac": ev.src_mac, "dst_mac": ev.dst_mac, "ts": ev.ts,
             "vlan": ev.vlan, "target": rec.target, "router": False, "solicited": False, "override": False,
             "lifetime": None, "preference": None, "managed": False, "other": False, "slla": rec.source_mac,
             "tlla": rec.target_mac, "mtu": rec.mtu or None, "rdnss": list(rec.rdnss),
             "prefixes": [{"prefix": f"{x.prefix}/{x.length}", "on_link": x.on_link, "autonomous": x.autonomous,
                           "valid": x.valid_s, "preferred": x.preferred_s} for x in rec.prefixes]}
    if kind == "ra":
        facts.update(hop_limit=rec.hop_limit, managed=bool(rec.flags & 0x80), other=bool(rec.flags & 0x40),
                     preference=PREFERENCE[(rec.flags >> 3) & 3], lifetime=rec.router_lifetime)
    elif kind == "na":
        facts.update(router=bool(rec.flags & 0x80), solicited=bool(rec.flags & 0x40), override=bool(rec.flags & 0x20))
    return facts
