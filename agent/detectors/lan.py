"""What a detector knows of the LAN, learned from every event it sees, not
only from ARP: a box joins a network whose ARP caches are already warm, so
many bindings never appear in ARP at all.

- hosts: IP -> MAC of on-link senders.  An IP frame's source binds its MAC
  only while no other MAC sends that IP (a router or a man in the middle
  forwards other hosts' addresses); ARP and NDP sender fields and DHCP
  leases bind outright.
- routers: the MACs that carry off-link (public) source addresses, and the
  senders of Router Advertisements; router_ips: their own addresses (DHCP's
  router option, an RA's source, an ARP reply or a frame with a private
  source from a router MAC).
- next hops: the MAC each host sends its routed (off-link) traffic to.

Everything is packet time and bounded (Recent)."""
import collections
from typing import Optional

from agent.detectors.detector import PUBLIC, Recent, is_public_ip
from hwdrivers import records

ROUTER_MIN_OFF_LINK = 2      # distinct off-link sources before a MAC counts as a router
LEARN_KINDS = ("arp", "ndp", "dhcp", "dns", "tcp_src", "tls", "http")
FRAME_KINDS = ("dns", "tls", "http")   # of those, the kinds whose learning is their frame alone (Lan.learn's first
                                       # branch)
NO_MAC = ("", "00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff")
UNSPECIFIED = ("0.0.0.0", "::")
_SET = collections.OrderedDict.__setitem__
_RENEW = dict.__setitem__    # a key's value, the key already there: the order's own node (a separate array, a cache
                             # miss of its own on a table of 28,000 senders) is neither read nor moved


def on_link(ip: str) -> bool:
    return bool(ip) and ip not in UNSPECIFIED and not is_public_ip(ip)


class Lan:
    def __init__(self):
        self.hosts = Recent()        # ip -> {"mac", "ts", "how"}
        self.senders = Recent()      # ip -> {mac: ts}: every MAC that sent this source address lately
        self.macs = Recent()         # mac -> {ip: ts}: its own addresses (unique senders, ARP, NDP, DHCP)
        self.off_link = Recent()     # mac -> set of off-link sources it carried
        self.routers = Recent()      # mac -> first ts it was known as a router
        self.router_ips = Recent()   # ip -> mac
        self.next_hop = Recent()     # host ip -> {"mac", "ts", "since"}: where its routed traffic goes
        self.gateways = Recent(256)  # router addresses DHCP handed out -> ts
        self.hosts_full = False      # hosts has held its limit: it may have forgotten a sender's binding (frame)

    # ---- learning --------------------------------------------------------------------

    def bind(self, ip: str, mac: str, ts: float, how: str, first: bool = False) -> None:
        """ip is at mac (first: only when nothing else is known of it).  ND and DHCP speak of on-link
        addresses whatever their scope; an IP frame's source is on-link only when not public."""
        if mac in NO_MAC or not ip or ip in ("0.0.0.0", "::") or (how == "ip" and not on_link(ip)):
            return
        if first and self.hosts.get(ip, {"mac": mac})["mac"] != mac:
            return
        self._bind(ip, mac, ts, how)

    def _bind(self, ip: str, mac: str, ts: float, how: str) -> None:
        """bind's store, once its checks passed (frame's new on-link sender passed them already)."""
        hosts = self.hosts
        hosts[ip] = {"mac": mac, "ts": ts, "how": how}
        if len(hosts) >= hosts.limit:
            self.hosts_full = True
        own = self.macs.get(mac)
        if own is None:
            own = self.macs[mac] = Recent(64)
        own[ip] = ts

    def router(self, mac: str, ts: float, ip: str = "") -> None:
        if mac in NO_MAC:
            return
        self.routers.setdefault(mac, ts)
        if ip and on_link(ip):
            self.router_ips[ip] = mac

    def release(self, ip: str, mac: str) -> None:
        """A DHCP release: the address is free for another MAC."""
        h = self.hosts.get(ip)
        if h and h["mac"] == mac:
            del self.hosts[ip]
        self.macs.get(mac, {}).pop(ip, None)
        self.senders.pop(ip, None)

    def frame(self, src: str, dst: str, src_mac: str, dst_mac: str, ts: float) -> None:
        """An IP frame: who sent it, and through which next hop."""
        senders = self.senders
        seen = senders.get(src)
        if seen is not None and len(seen) == 1 and src_mac in seen:
            _RENEW(seen, src_mac, ts)        # the one MAC it is sent from, again (most frames): only on-link sources
                                             # with a MAC are senders, so the checks below for a new one all pass
            if self.hosts_full and src not in self.hosts:   # (bound when it became a sender: only a full table
                self._bind(src, src_mac, ts, "ip")          # forgets it; release() forgets the sender too)
        elif src_mac in NO_MAC:
            return
        else:
            public = PUBLIC.get(src)        # is_public_ip, its table read inline: every event asks
            if public is None:
                public = is_public_ip(src)
            if public:
                self._off_link(src, src_mac, ts)
                return
            if not src or src in UNSPECIFIED:   # on_link(src), or nothing to learn
                return
            if seen is None:                 # a new sender: Recent's steps for new keys, without its calls
                seen = Recent(8)
                _SET(seen, src_mac, ts)
                _SET(senders, src, seen)
                if len(senders) > senders.limit:
                    senders.popitem(last=False)
            else:
                seen[src_mac] = ts
            if len(seen) == 1 and src not in self.hosts:
                self._bind(src, src_mac, ts, "ip")   # (bind's checks: a MAC, an on-link source, as here)
        if src_mac in self.routers and src not in self.router_ips and src in self.hosts \
                and self.hosts[src]["mac"] == src_mac:
            self.router_ips[src] = src_mac
        if (is_public_ip(dst) if (to := PUBLIC.get(dst)) is None else to) and dst_mac not in NO_MAC:
            # the first next hop stands until a router replaces one that is no router: a switch to a MAC
            # that is no router is what a poisoner causes, and is judged (arp_spoof), not learned
            hop = self.next_hop.get(src)
            if hop and hop["mac"] == dst_mac:
                hop["ts"] = ts
            elif hop is None or (dst_mac in self.routers and hop["mac"] not in self.routers):
                self.next_hop[src] = {"mac": dst_mac, "ts": ts, "since": ts}

    def _off_link(self, src: str, src_mac: str, ts: float) -> None:
        """A frame with a public source: src_mac carries off-link traffic (a router's, after a few sources)."""
        carried = self.off_link.get(src_mac)
        if carried is None:
            carried = self.off_link[src_mac] = set()
        if len(carried) < 64:
            carried.add(src)
        if len(carried) >= ROUTER_MIN_OFF_LINK and src_mac not in self.routers:
            self.router(src_mac, ts)

    def steady(self, src: str, dst: str, src_mac: str, dst_mac: str) -> Optional[tuple]:
        """What frame(src, dst, src_mac, dst_mac, ts) would write when it only renews times: (the senders table
        whose src_mac time it sets, or None; the next hop whose time it sets, or None).  None when it would write
        more (a sender, binding, router, router address or next hop).  Only such writes change the answer, so it
        holds for the same frame until one happens (agent.detectors.dnsrun)."""
        if src_mac in NO_MAC:
            return None, None
        public = PUBLIC.get(src)
        if public is None:
            public = is_public_ip(src)
        if public:
            carried = self.off_link.get(src_mac)
            if carried is None or (src not in carried and len(carried) < 64) \
                    or (len(carried) >= ROUTER_MIN_OFF_LINK and src_mac not in self.routers):
                return None
            return None, None
        if not src or src in UNSPECIFIED:
            return None, None
        seen = self.senders.get(src)
        if seen is None or len(seen) != 1 or src_mac not in seen or src not in self.hosts:
            return None
        if src_mac in self.routers and src not in self.router_ips and self.hosts[src]["mac"] == src_mac:
            return None
        hop = None
        if dst_mac not in NO_MAC and (is_public_ip(dst) if (to := PUBLIC.get(dst)) is None else to):
            hop = self.next_hop.get(src)
            if hop is None or (hop["mac"] != dst_mac and dst_mac in self.routers and hop["mac"] not in self.routers):
                return None
            if hop["mac"] != dst_mac:
                hop = None
        return seen, hop

    def learn(self, ev) -> None:
        """One packet event of any kind."""
        ts = ev.ts_ns / 1e9                  # (ev.ts: a property call for every event)
        kind = ev.kind
        if kind not in ("arp", "ndp", "dhcp"):
            if kind == "tcp_src" and ev.record is not None:    # every address pair the source's SYNs showed
                for p in ev.record.pairs:
                    if p.src_mac != ev.src_mac or p.dst_mac != ev.dst_mac:
                        self.frame(ev.src, p.dst, p.src_mac, p.dst_mac, ts)
            self.frame(ev.src, ev.dst, ev.src_mac, ev.dst_mac, ts)
            return
        from agent.detectors import dhcp, ndp
        if kind == "arp":
            rec = records.record_of(ev)
            if rec is not None and rec.op in (1, 2):
                self.bind(rec.sender_ip, rec.sender_mac, ts, "arp", first=True)
            return
        if kind == "ndp":
            f = ndp.parse(ev)
            if f is None:
                return
            if f["type"] == "ra":
                self.router(ev.src_mac, ts, ev.src)
                self.bind(ev.src, f["slla"] or ev.src_mac, ts, "ndp", first=True)
            elif f["type"] in ("ns", "rs") and ev.src != "::":
                self.bind(ev.src, f["slla"] or ev.src_mac, ts, "ndp", first=True)
            elif f["type"] == "na":
                self.bind(f["target"], f["tlla"] or ev.src_mac, ts, "ndp", first=True)
            return
        if kind == "dhcp":
            f = dhcp.parse(ev)
            if f is None:
                return
            if f["message"] == "release":
                self.release(f["client_ip"], f["client_mac"])
            elif f["message"] in ("ack", "reply") and f["your_ip"] and f["client_mac"]:
                self.bind(f["your_ip"], f["client_mac"], ts, "dhcp")      # a lease binds outright
                for r in f["routers"]:
                    self.gateways[r] = ts
            if f["from_server"]:
                self.bind(ev.src, ev.src_mac, ts, "dhcp", first=True)

    # ---- what is known -----------------------------------------------------------------

    def mac_of(self, ip: str) -> Optional[str]:
        h = self.hosts.get(ip)
        return h["mac"] if h else self.router_ips.get(ip)

    def own_ip(self, mac: str, but: str = "", like: str = "") -> Optional[str]:
        """The address a MAC uses as its own (the latest; of like's family first), never one another MAC also
        sends from."""
        ips = self.macs.get(mac, {})
        family = ":" in (like or but)
        mine = [((":" in ip) == family, ts, ip) for ip, ts in ips.items() if ip != but and self.mac_of(ip) == mac
                and len(self.senders.get(ip, {mac: 0})) == 1]
        return max(mine)[2] if mine else None

    def own_ips(self, mac: str, but: str = "") -> list:
        return sorted(ip for ip in self.macs.get(mac, {}) if ip != but and self.mac_of(ip) == mac)

    def expected_mac(self, ip: str, client: str = "") -> Optional[str]:
        """The MAC a frame from ip should come through: its own when on-link, else the client's router."""
        if on_link(ip):
            return self.mac_of(ip)
        hop = self.next_hop.get(client)
        if hop:
            return hop["mac"]
        return min(self.routers.items(), key=lambda r: r[1])[0] if self.routers else None   # the oldest router

    def sender(self, ip: str, mac: str, client: str = "") -> tuple:
        """(who sent it, spoofed): a frame in ip's name from a MAC that is not ip's (nor, off-link, the router's)
        was sent by that MAC, named by its own address (or the MAC); else by ip."""
        expected = self.expected_mac(ip, client)
        if mac and expected and mac != expected:
            return self.own_ip(mac, like=ip) or mac, True
        return ip, False

    def is_gateway(self, ip: str) -> bool:
        return ip in self.gateways or ip in self.router_ips

    def is_router(self, mac: str, before: Optional[float] = None) -> bool:
        first = self.routers.get(mac)
        return first is not None and (before is None or first < before)
