"""ARP spoofing: IP->MAC bindings learned over time, as arpwatch keeps them.

A finding starts from one of three facts (nothing else raises alone):
- a binding changed: an IP known at one MAC is claimed by another;
- one MAC claims several IPs (the attacker's own and someone else's);
- a flood of gratuitous ARP from one MAC.
It grows with what makes poisoning likely: the binding flips back and forth
(the old MAC still answers), the IP is a gateway (configured, or the address most
hosts ask for), replies nobody asked for, an Ethernet source that is not the
ARP sender.  A single announcement of a new binding, or a request answered
by its owner, scores nothing.  The attacker is the MAC that claims more
IPs and sends the unsolicited replies; its own IP is the one it claims that
no other MAC does."""
import collections

from agent.detectors.detector import Detector as Base, Indicators, Recent, finding
from hwdrivers import records

REQUEST, REPLY = 1, 2
ZERO_MAC = "00:00:00:00:00:00"
SOLICIT_S = 5.0          # a reply this soon after a matching request answers it
TWO_MACS_S = 120.0       # both MACs claimed the IP within this: they fight over it
FLOOD_WINDOW_S = 10.0
FLOOD_COUNT = 8          # gratuitous ARPs from one MAC in FLOOD_WINDOW_S


def parse(ev):
    """(op, sender MAC, sender IP, target MAC, target IP, Ethernet source, ts) of an Ethernet/IPv4 ARP, or None:
    from the event's ARP record (parsed in C), or (an event made by hand) its payload's."""
    rec = records.record_of(ev)
    if rec is None or rec.op not in (REQUEST, REPLY):
        return None
    return {"op": rec.op, "sha": rec.sender_mac, "spa": rec.sender_ip, "tha": rec.target_mac,
            "tpa": rec.target_ip, "eth_src": ev.src_mac, "eth_dst": ev.dst_mac, "ts": ev.ts, "vlan": ev.vlan}


class Detector(Base):
    name = "arp_spoof"
    kinds = ("arp",)
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
        self.garp = Recent()                      # mac -> deque of gratuitous ARP times
        self.changes = Recent()                   # ip -> deque of the times its binding changed

    # ---- what is known ------------------------------------------------------

    def _gateway(self, ip: str) -> bool:
        if ip in self.cfg.gateways:
            return True
        asked = self.askers.get(ip, ())
        return len(asked) >= 2 and len(asked) >= max((len(v) for v in self.askers.values()), default=0)

    def _own_ip(self, mac: str, but: str = ""):
        """The IP a MAC claims that no other MAC claims: its own."""
        ips = self.mac_ips.get(mac, {})
        own = [(ts, ip) for ip, ts in ips.items() if ip != but and len(self.claims.get(ip, {})) == 1]
        return max(own)[1] if own else None

    def _suspicion(self, mac: str) -> tuple:
        return (len(self.mac_ips.get(mac, {})), self.unsolicited[mac])

    # ---- one packet -----------------------------------------------------------

    def detect(self, f) -> list:
        ts, op, mac, ip = f["ts"], f["op"], f["sha"], f["spa"]
        if ip == "0.0.0.0" or mac in (ZERO_MAC, "ff:ff:ff:ff:ff:ff"):
            return []                                    # probes (RFC 5227) claim nothing
        gratuitous = f["tpa"] == ip
        if op == REQUEST and not gratuitous:
            self.requests[(ip, f["tpa"])] = ts
            self.askers.setdefault(f["tpa"], set()).add(ip)
        solicited = op == REPLY and ts - self.requests.get((f["tpa"], ip), -1e18) <= SOLICIT_S
        unsolicited = op == REPLY and not gratuitous and not solicited
        if unsolicited:
            self.unsolicited[mac] += 1
        flood = False
        if gratuitous:
            times = self.garp.setdefault(mac, collections.deque(maxlen=FLOOD_COUNT))
            times.append(ts)
            flood = len(times) == FLOOD_COUNT and ts - times[0] <= FLOOD_WINDOW_S

        prev = self.bindings.get(ip)
        changed = prev is not None and prev["mac"] != mac and ts - prev["last"] <= self.cfg.arp_binding_ttl_s
        claims = self.claims.setdefault(ip, {})
        claims[mac] = ts
        for m in [m for m, t in claims.items() if ts - t > self.cfg.arp_binding_ttl_s]:
            del claims[m]
        mine = self.mac_ips.setdefault(mac, {})
        other_ips = [i for i, t in mine.items() if i != ip and ts - t <= self.cfg.arp_binding_ttl_s]
        mine[ip] = ts
        contested = len(claims) > 1
        if prev is None or prev["mac"] != mac:
            self.bindings[ip] = {"mac": mac, "first": ts, "last": ts}
        else:
            prev["last"] = ts

        ind = Indicators()
        if changed:
            ind.add("binding_changed", 60, f"{ip} moved from {prev['mac']} to {mac}")
        if contested and other_ips:
            ind.add("mac_claims_many_ips", 35, f"{mac} also claims {', '.join(sorted(other_ips)[:4])}")
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
            ind.add("unsolicited_reply", 15, "a reply nobody asked for")
        if f["eth_src"] and f["eth_src"] != mac:
            ind.add("ethernet_mismatch", 20, f"sent from Ethernet {f['eth_src']}, not the ARP sender")

        # the attacker: of the MACs fighting over the IP, the one that claims more IPs and answers unasked
        attacker_mac = max([mac] + rivals, key=self._suspicion) if rivals else mac
        if changed and attacker_mac != mac and self._suspicion(mac) == self._suspicion(attacker_mac):
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
        return [finding("arp_spoof", ind, ts=ts, src=own or ip, dst=target, protocol="ARP",
                        summary=f"ARP spoofing: {attacker_mac} claims {ip}", evidence=evidence,
                        key=f"arp_spoof|{attacker_mac}|{ip}", src_mac=attacker_mac, dst_mac=f["eth_dst"],
                        attacker=own or attacker_mac, attacker_mac=attacker_mac)]
