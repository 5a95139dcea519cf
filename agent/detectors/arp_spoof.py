"""ARP spoofing: IP->MAC bindings learned over time, as arpwatch keeps them,
and from every frame the detector sees (agent.detectors.lan): a box joins a
running network whose caches are warm, where the gateway may never ARP.

A finding starts from one of these facts (nothing else raises alone):
- a binding changed: an IP known at one MAC (from ARP, or from the frames
  and DHCP leases of the LAN) is claimed by another (45 in a reply aimed
  at a host; 30 in a broadcast announcement, as a failover or a new NIC
  sends);
- a MAC with addresses of its own claims another one in a reply aimed at
  a host (35), or claims it unasked again and again (20);
- a flood of gratuitous ARP from one MAC;
- routed traffic whose next hop switches from the known router's MAC to
  one that is no router (55), more when that MAC claimed an IP by ARP.
It grows with what makes poisoning likely: the binding flips back and forth
(the old MAC still answers), the IP is a router's (DHCP's router option, an
address of a MAC carrying off-link traffic, or the one most hosts ask for),
replies nobody asked for, an Ethernet source that is not the ARP sender.
A DHCP lease that moves an address to a new MAC changes nothing.  The
attacker is the MAC that claims, by its own address; never the claimed one."""
import collections

from agent.detectors.detector import Detector as Base, Indicators, Recent, finding, is_public_ip
from agent.detectors.lan import LEARN_KINDS, on_link
from hwdrivers import records

REQUEST, REPLY = 1, 2
ZERO_MAC = "00:00:00:00:00:00"
SOLICIT_S = 5.0          # a reply this soon after a matching request answers it
TWO_MACS_S = 120.0       # both MACs claimed the IP within this: they fight over it
FLOOD_WINDOW_S = 10.0
FLOOD_COUNT = 30         # gratuitous ARPs from one MAC in FLOOD_WINDOW_S (keepalived sends 10 on a failover)
REPEATS = 3              # unsolicited claims of one foreign IP by one MAC: a poisoner refreshing caches


def parse(ev):
    """ARP: (op, sender MAC, sender IP, target MAC, target IP, Ethernet addresses, ts) of an Ethernet/IPv4 ARP,
    from the event's ARP record (parsed in C; an event made by hand: its payload's); a TCP source summary
    (tcp_src): the addresses of the SYN that sent it (routed traffic shows its next hop; the C core sends one at
    once for every address pair a source has not shown before).  None for anything else."""
    if ev.kind == "tcp_src":
        return {"op": 0, "src": ev.src, "dst": ev.dst, "eth_src": ev.src_mac, "eth_dst": ev.dst_mac, "ts": ev.ts,
                "vlan": ev.vlan}
    rec = records.record_of(ev)
    if rec is None or rec.op not in (REQUEST, REPLY):
        return None
    return {"op": rec.op, "sha": rec.sender_mac, "spa": rec.sender_ip, "tha": rec.target_mac,
            "tpa": rec.target_ip, "eth_src": ev.src_mac, "eth_dst": ev.dst_mac, "ts": ev.ts, "vlan": ev.vlan}


class Detector(Base):
    name = "arp_spoof"
    kinds = ("arp", "tcp_src")
    learns = tuple(k for k in LEARN_KINDS if k not in ("arp", "tcp_src"))
    threshold_key = "arp_spoof_threshold"
    parse = staticmethod(parse)

    def __init__(self, cfg):
        super().__init__(cfg)
        self.bindings = Recent()                  # ip -> {"mac", "first", "last"}
        self.claims = Recent()                    # ip -> {mac: last ts}: every MAC that claimed it lately
        self.mac_ips = Recent()                   # mac -> {ip: last ts}
        self.requests = Recent()                  # (asker ip, asked ip) -> ts
        self.askers = Recent()                    # asked ip -> set of asker ips (who is the gateway)
        self.unsolicited = collections.Counter()  # mac -> replies nobody asked for
        self.foreign = collections.Counter()      # (mac, ip) -> unsolicited claims of an IP not its own
        self.garp = Recent()                      # mac -> deque of gratuitous ARP times
        self.changes = Recent()                   # ip -> deque of the times its binding changed
        self.taken = Recent()                     # ip -> {"from", "by", "ts"}: who took it from whom

    # ---- what is known ------------------------------------------------------

    def _gateway(self, ip: str) -> bool:
        if ip in self.cfg.gateways or self.lan.is_gateway(ip):
            return True
        asked = self.askers.get(ip, ())
        return len(asked) >= 2 and len(asked) >= max((len(v) for v in self.askers.values()), default=0)

    def _own_ip(self, mac: str, but: str = ""):
        """The IP a MAC claims that no other MAC claims, or one it sends its own frames from."""
        ips = self.mac_ips.get(mac, {})
        own = [(ts, ip) for ip, ts in ips.items() if ip != but and len(self.claims.get(ip, {})) == 1]
        return max(own)[1] if own else self.lan.own_ip(mac, but=but)

    def _suspicion(self, mac: str) -> tuple:
        return (len(self.mac_ips.get(mac, {})), self.unsolicited[mac])

    def _previous(self, ip: str, ts: float):
        """The binding before this claim: ARP's, unless the LAN (frames, a DHCP lease) knows better."""
        prev = self.bindings.get(ip)
        lan = self.lan.hosts.get(ip)
        if lan and (prev is None or (lan["how"] == "dhcp" and lan["ts"] > prev["last"])):
            return {"mac": lan["mac"], "first": lan["ts"], "last": max(lan["ts"], ts - 1), "how": lan["how"]}
        return prev

    # ---- one packet -----------------------------------------------------------

    def judge(self, event) -> list:
        """A TCP source summary from a host with no next hop known has nothing to judge (_next_hop): counted as
        Detector.judge counts it, without its facts (large.pcap: 40,000 summaries)."""
        if event.kind == "tcp_src" and event.src not in self.lan.next_hop:
            self.counts["events"] += 1
            return []
        return super().judge(event)

    def detect(self, f) -> list:
        if f["op"] == 0:
            return self._next_hop(f)
        ts, op, mac, ip = f["ts"], f["op"], f["sha"], f["spa"]
        if ip == "0.0.0.0" or mac in (ZERO_MAC, "ff:ff:ff:ff:ff:ff"):
            return []                                    # probes (RFC 5227) claim nothing
        gratuitous = f["tpa"] == ip
        if op == REQUEST and not gratuitous:
            self.requests[(ip, f["tpa"])] = ts
            self.askers.setdefault(f["tpa"], set()).add(ip)
        solicited = op == REPLY and ts - self.requests.get((f["tpa"], ip), -1e18) <= SOLICIT_S
        if solicited:
            del self.requests[(f["tpa"], ip)]      # answered: a second reply to it (a racing forger's) is unasked
        unsolicited = op == REPLY and not gratuitous and not solicited
        aimed = not gratuitous and f["eth_dst"] not in ("", "ff:ff:ff:ff:ff:ff")
        if unsolicited:
            self.unsolicited[mac] += 1
        flood = False
        if gratuitous:
            times = self.garp.setdefault(mac, collections.deque(maxlen=FLOOD_COUNT))
            times.append(ts)
            flood = len(times) == FLOOD_COUNT and ts - times[0] <= FLOOD_WINDOW_S

        prev = self._previous(ip, ts)
        changed = prev is not None and prev["mac"] != mac and ts - prev["last"] <= self.cfg.arp_binding_ttl_s
        taken = self.taken.get(ip)
        held = (not changed and aimed and op == REPLY and taken is not None and taken["by"] == mac
                and ts - taken["ts"] <= TWO_MACS_S)    # a poisoner refreshing the binding it took
        if changed:
            self.taken[ip] = {"from": prev["mac"], "by": mac, "ts": ts}
        elif held:
            taken["ts"] = ts
        claims = self.claims.setdefault(ip, {})
        claims[mac] = ts
        for m in [m for m, t in claims.items() if ts - t > self.cfg.arp_binding_ttl_s]:
            del claims[m]
        mine = self.mac_ips.setdefault(mac, {})
        other_ips = sorted({i for i, t in mine.items() if i != ip and ts - t <= self.cfg.arp_binding_ttl_s}
                           | {i for i in self.lan.own_ips(mac, but=ip) if ":" not in i})
        mine[ip] = ts
        if prev is None or prev["mac"] != mac or ip not in self.bindings:
            self.bindings[ip] = {"mac": mac, "first": ts, "last": ts}
        else:
            self.bindings[ip]["last"] = ts
        foreign = bool(other_ips) and op == REPLY and aimed and (changed or held or not solicited)
        if unsolicited and aimed and (foreign or changed or held):
            self.foreign[(mac, ip)] += 1

        ind = Indicators()
        if changed:
            ind.add("binding_changed", 45 if aimed else 30, f"{ip} moved from {prev['mac']} to {mac}")
        elif held:
            ind.add("binding_held", 45, f"{mac} keeps claiming {ip}, which was {taken['from']}'s")
        if foreign:
            ind.add("mac_claims_many_ips", 35, f"{mac} is {', '.join(other_ips[:4])} and claims {ip} to {f['tpa']}")
        if self.foreign[(mac, ip)] >= REPEATS:
            ind.add("repeated_claims", 25, f"{mac} claimed {ip} unasked {self.foreign[(mac, ip)]} times")
        if flood:
            ind.add("gratuitous_flood", 45, f"{FLOOD_COUNT} gratuitous ARPs from {mac} within {FLOOD_WINDOW_S:.0f} s")
        if not ind:
            return []
        rivals = [m for m, t in claims.items() if m != mac and ts - t <= TWO_MACS_S]
        if changed:
            flips = self.changes.setdefault(ip, collections.deque(maxlen=3))
            flips.append(ts)
            if len(flips) >= 2 and ts - flips[-2] <= TWO_MACS_S:
                ind.add("flip_flop", 20, f"{ip} changed MAC again within {TWO_MACS_S:.0f} s "
                        f"({', '.join(sorted(set(rivals + [mac])))} fight over it)")
        if self._gateway(ip):
            ind.add("gateway", 15, f"{ip} is a gateway")
        if unsolicited:
            ind.add("unsolicited_reply", 20 if changed or held or foreign else 10, "a reply nobody asked for")
        if f["eth_src"] and f["eth_src"] != mac:
            ind.add("ethernet_mismatch", 20, f"sent from Ethernet {f['eth_src']}, not the ARP sender")
        return [self._claim_finding(f, ind, ip, mac, prev if changed else None, rivals, claims, gratuitous)]

    def _claim_finding(self, f, ind, ip, mac, prev, rivals, claims, gratuitous):
        op, ts = f["op"], f["ts"]
        # the attacker: of the MACs fighting over the IP, the one that claims more IPs and answers unasked;
        # a MAC whose reply moved a known binding is the claimer itself
        attacker_mac = max([mac] + rivals, key=self._suspicion) if rivals else mac
        if prev and prev["mac"] != mac and self._suspicion(mac) >= self._suspicion(attacker_mac):
            attacker_mac = mac
        victim_mac = next((m for m in [prev["mac"] if prev else None, *rivals] if m and m != attacker_mac), None)
        own = self._own_ip(attacker_mac, but=ip)
        target = f["tpa"] if op == REPLY and not gratuitous else "broadcast"
        evidence = {"claimed_ip": ip, "claimed_by": mac, "attacker_mac": attacker_mac,
                    "legitimate_mac": victim_mac, "attacker_ip": own, "previous_binding": prev and prev["mac"],
                    "op": "reply" if op == REPLY else "request", "gratuitous": gratuitous,
                    "target_ip": f["tpa"], "target_mac": f["tha"], "ethernet_src": f["eth_src"],
                    "macs_claiming_ip": sorted(claims), "ips_claimed_by_attacker": sorted(self.mac_ips.get(attacker_mac, {})),
                    "unsolicited_replies": self.unsolicited[attacker_mac], "vlan": f["vlan"]}
        return finding("arp_spoof", ind, ts=ts, src=own or attacker_mac, dst=target, protocol="ARP",
                       summary=f"ARP spoofing: {attacker_mac} claims {ip}", evidence=evidence,
                       key=f"arp_spoof|{attacker_mac}|{ip}", src_mac=attacker_mac, dst_mac=f["eth_dst"],
                       attacker=own or attacker_mac, attacker_mac=attacker_mac)

    def _next_hop(self, f) -> list:
        """Routed traffic whose next hop switched from the known router to a MAC that is no router."""
        src, dst, hop_mac, ts = f["src"], f["dst"], f["eth_dst"], f["ts"]
        hop = self.lan.next_hop.get(src)
        if not hop or not on_link(src) or not is_public_ip(dst) or hop_mac in ("", hop["mac"]):
            return []
        if self.lan.is_router(hop_mac, before=hop["since"]) or ts - hop["ts"] > self.cfg.arp_binding_ttl_s:
            return []
        if hop["mac"] not in self.lan.routers:
            return []                                    # the old next hop was never seen routing: nothing to judge
        ind = Indicators()
        ind.add("next_hop_switched", 55, f"{src} sends routed traffic (to {dst}) through {hop_mac}, "
                f"not the router {hop['mac']}")
        claimed = sorted(ip for ip, t in self.mac_ips.get(hop_mac, {}).items()
                         if self.bindings.get(ip, {}).get("mac") == hop_mac and self.lan.mac_of(ip) != hop_mac)
        if claimed:
            ind.add("arp_claim", 35, f"{hop_mac} claimed {', '.join(claimed[:3])} by ARP")
        own = self._own_ip(hop_mac, but=claimed[0] if claimed else "")
        evidence = {"victim": src, "destination": dst, "router_mac": hop["mac"], "attacker_mac": hop_mac,
                    "attacker_ip": own, "claimed_ips": claimed, "vlan": f["vlan"]}
        return [finding("arp_spoof", ind, ts=ts, src=own or hop_mac, dst=src, protocol="ARP",
                        summary=f"ARP spoofing: {src}'s routed traffic goes through {hop_mac}", evidence=evidence,
                        key=f"arp_spoof|{hop_mac}|{claimed[0] if claimed else src}", src_mac=hop_mac,
                        dst_mac=hop["mac"], attacker=own or hop_mac, attacker_mac=hop_mac)]
