"""IPv6 neighbour spoofing: what ARP spoofing is to IPv4, through Neighbour
Advertisements (parasite6, bettercap's ndp.spoof).

Bindings address -> MAC come from every ND message (an NS's source
link-layer address, an NA's target link-layer address, an RA's source) and
from the frames the detector sees.  A finding starts from:
- an NA that moves a bound address to another MAC (40; 50 with the
  Override flag set): the old binding is overridden;
- a flood of NAs (many targets from one MAC, or from many MACs at once).
It grows when the address is a router's (20), the claiming MAC has
addresses of its own (30), nobody solicited the NA (15), the owner still
answers (the address flips between MACs, 20), or the link-layer option is
not the Ethernet source (20).  The attacker is the MAC that claims, by its
own address when it has one; never the address it claims."""
import collections

from agent.detectors.detector import Detector as Base, Indicators, Recent, finding
from agent.detectors.lan import LEARN_KINDS
from agent.detectors.ndp import parse

SOLICIT_S = 5.0
FLIP_S = 120.0
FLOOD_WINDOW_S = 10.0
FLOOD_COUNT = 50          # NAs for distinct targets from one MAC (or from all MACs) within FLOOD_WINDOW_S


class Detector(Base):
    name = "ndp_spoof"
    kinds = ("ndp",)
    learns = tuple(k for k in LEARN_KINDS if k != "ndp")
    threshold_key = "ndp_threshold"
    parse = staticmethod(parse)

    def __init__(self, cfg):
        super().__init__(cfg)
        self.bindings = Recent()     # address -> {"mac", "ts"}
        self.owners = Recent()       # address -> the first MAC it was known at
        self.asked = Recent()        # target -> ts of the last NS for it
        self.changes = Recent()      # address -> deque of change times
        self.sent = Recent()         # mac -> deque of (ts, target) of its NAs
        self.all_nas = collections.deque(maxlen=4 * FLOOD_COUNT)

    def detect(self, f) -> list:
        ts = f["ts"]
        if f["type"] == "ns":
            self.asked[f["target"]] = ts
            if f["src"] != "::" and (f["slla"] or f["src_mac"]):
                self.bindings.setdefault(f["src"], {"mac": f["slla"] or f["src_mac"], "ts": ts})
            return []
        if f["type"] == "ra":
            self.bindings.setdefault(f["src"], {"mac": f["slla"] or f["src_mac"], "ts": ts})
            return []
        if f["type"] != "na" or not f["target"]:
            return []
        return self._advert(f, ts)

    def _flood(self, f, ts) -> tuple:
        mine = self.sent.setdefault(f["src_mac"], collections.deque(maxlen=FLOOD_COUNT))
        mine.append((ts, f["target"]))
        self.all_nas.append((ts, f["src_mac"], f["target"]))
        recent = [(m, t) for s, m, t in self.all_nas if ts - s <= FLOOD_WINDOW_S]
        own = {t for s, t in mine if ts - s <= FLOOD_WINDOW_S}
        return len(own), len({t for _, t in recent}), len({m for m, _ in recent})

    def _advert(self, f, ts) -> list:
        target, mac = f["target"], f["tlla"] or f["src_mac"]
        own_targets, all_targets, all_macs = self._flood(f, ts)
        prev = self.bindings.get(target)
        known = prev["mac"] if prev else self.lan.mac_of(target)
        changed = known is not None and known != mac
        owner = self.owners.setdefault(target, known or mac)     # the first MAC known for it
        if changed and mac == owner:
            self.bindings[target] = {"mac": mac, "ts": ts}         # the owner answering back: it is the victim
            return []
        ind = Indicators()
        if changed:
            ind.add("binding_overridden", 50 if f["override"] else 40,
                    f"{target} moved from {known} to {mac}" + (" (Override flag set)" if f["override"] else ""))
        if own_targets >= FLOOD_COUNT or all_targets >= 2 * FLOOD_COUNT:
            ind.add("na_flood", 80, f"{max(own_targets, all_targets)} addresses advertised within "
                    f"{FLOOD_WINDOW_S:.0f} s by {all_macs} MAC(s)")
        if changed or self.bindings.get(target) is None:
            self.bindings[target] = {"mac": mac, "ts": ts}
        if not ind:
            if prev:
                prev["ts"] = ts
            return []
        if changed:
            flips = self.changes.setdefault(target, collections.deque(maxlen=3))
            flips.append(ts)
            if len(flips) >= 2 and ts - flips[-2] <= FLIP_S:
                ind.add("flip_flop", 20, f"{target} changed MAC again within {FLIP_S:.0f} s: the owner still answers")
            if self.lan.is_router(known) or known in self.lan.routers or target in self.lan.router_ips:
                ind.add("router", 20, f"{target} is a router's address")
            if ts - self.asked.get(target, -1e18) > SOLICIT_S:
                ind.add("unsolicited", 15, f"nobody solicited {target}")
        others = self.lan.own_ips(mac, but=target)
        if changed and others:
            ind.add("mac_claims_many", 30, f"{mac} also is {', '.join(others[:3])}")
        if f["tlla"] and f["src_mac"] and f["tlla"] != f["src_mac"]:
            ind.add("ethernet_mismatch", 20, f"sent from Ethernet {f['src_mac']}, advertising {f['tlla']}")
        own = self.lan.own_ip(mac, but=target) or (f["src"] if f["src"] != target and
                                                    self.lan.mac_of(f["src"]) in (None, mac) else None)
        flood = ind.has("na_flood") and not changed
        evidence = {"target": target, "claimed_by": mac, "previous_mac": known, "override": f["override"],
                    "solicited_flag": f["solicited"], "router_flag": f["router"], "src": f["src"], "dst": f["dst"],
                    "ethernet_src": f["src_mac"], "attacker_ip": own, "vlan": f["vlan"]}
        key = f"ndp_spoof|{mac}|{'flood' if flood else target}"
        return [finding("ndp_spoof", ind, ts=ts, src=own or mac, dst="link" if flood else target, protocol="ICMPv6",
                        summary=f"NDP spoofing: {mac} " + ("floods advertisements" if flood else f"claims {target}"),
                        evidence=evidence, key=key, src_mac=mac, dst_mac=f["dst_mac"], attacker=own or mac,
                        attacker_mac=mac)]
