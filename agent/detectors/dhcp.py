"""DHCPv4 (RFC 2131) and DHCPv6 (RFC 8415) messages as the detectors need
them: who answers (server id, MAC, address), what it hands out (address,
router, resolvers) and to whom (client MAC, transaction), from the DHCP
record the C core parsed (hwdrivers.records.DhcpRecord)."""
from hwdrivers import records

V4_TYPES = {1: "discover", 2: "offer", 3: "request", 4: "decline", 5: "ack", 6: "nak", 7: "release", 8: "inform"}
V6_TYPES = {1: "solicit", 2: "advertise", 3: "request", 4: "confirm", 5: "renew", 6: "rebind", 7: "reply",
            8: "release", 9: "decline", 10: "reconfigure", 11: "information-request"}
SERVER_MESSAGES = ("offer", "ack", "nak", "advertise", "reply")


def parse(ev):
    rec = records.record_of(ev)
    if rec is None:
        return None
    v4 = rec.version == 4
    mtype = (V4_TYPES if v4 else V6_TYPES).get(rec.msg_type)
    if mtype is None or (v4 and not rec.client_mac):        # v4: Ethernet hardware addresses only
        return None
    return {"family": rec.version, "message": mtype, "xid": rec.xid, "client_mac": rec.client_mac,
            "client_ip": rec.client_ip, "your_ip": rec.offered or ("0.0.0.0" if v4 else ""),
            "server_id": rec.server_id, "routers": list(rec.routers), "dns": list(rec.dns),
            "lease": (rec.lease_s or None) if v4 else None, "src": ev.src, "dst": ev.dst, "src_mac": ev.src_mac,
            "dst_mac": ev.dst_mac, "ts": ev.ts, "vlan": ev.vlan, "from_server": mtype in SERVER_MESSAGES}
