"""Rogue Router Advertisements (fake_router6, flood_router6, a misconfigured
router): an RA from a MAC that is not the known router, or one that changes
what the known router announces.

The first router heard (or one whose address is in [detection] gateways)
is the known router.  Indicators:
- an RA from an unknown MAC while a known router is alive (60);
- a prefix the known routers never announced (20), a higher default-router
  preference than theirs (15), an RA that claims a known router's address
  from another MAC (30), lifetime 0 from another MAC (kills the router, 20);
- the known router itself changes its prefixes (35) or raises its
  preference (25);
- a flood: RAs from many MACs or prefixes within seconds (80).
The attacker is the RA's Ethernet source, by its link-local when that is
its own; a flood names the last MAC and keeps a sample."""
import collections

from agent.detectors.detector import Detector as Base, Indicators, Recent, finding
from agent.detectors.lan import LEARN_KINDS
from agent.detectors.ndp import parse

ROUTER_ALIVE_S = 3600.0
FLOOD_WINDOW_S = 10.0
FLOOD_COUNT = 20           # RAs from distinct MACs or with distinct prefixes within FLOOD_WINDOW_S
FLOOD_SUSPECT = 3          # unknown routers within FLOOD_WINDOW_S: raised as one flood, not one threat each
RANK = {"low": 0, "medium": 1, "reserved": 1, "high": 2}


class Detector(Base):
    name = "rogue_ra"
    kinds = ("ndp",)
    learns = tuple(k for k in LEARN_KINDS if k != "ndp")
    threshold_key = "ndp_threshold"
    parse = staticmethod(parse)

    def __init__(self, cfg):
        super().__init__(cfg)
        self.routers = Recent(1024)   # mac -> {"ip", "first", "last", "prefixes", "preference"}: the known ones
        self.recent = collections.deque(maxlen=8 * FLOOD_COUNT)   # (ts, mac, prefixes)

    def detect(self, f) -> list:
        if f["type"] != "ra":
            return []
        ts, mac = f["ts"], f["src_mac"]
        prefixes = {p["prefix"] for p in f["prefixes"]}
        self.recent.append((ts, mac, frozenset(prefixes)))
        alive = {m: r for m, r in self.routers.items() if ts - r["last"] <= ROUTER_ALIVE_S}
        if mac in alive or not alive or f["src"] in self.cfg.gateways:
            return self._known(f, ts, mac, prefixes)
        ind = Indicators()
        window = [(m, p) for s, m, p in self.recent if ts - s <= FLOOD_WINDOW_S]
        macs = {m for m, _ in window} - set(alive)
        seen_prefixes = {x for _, p in window for x in p}
        if len(macs) >= FLOOD_COUNT or len(seen_prefixes) >= FLOOD_COUNT:
            ind.add("ra_flood", 80, f"RAs from {len(macs)} MACs with {len(seen_prefixes)} prefixes "
                    f"within {FLOOD_WINDOW_S:.0f} s")
        known_prefixes = {x for r in alive.values() for x in r["prefixes"]}
        ind.add("unknown_router", 60, f"RA from {mac}; the router is {', '.join(sorted(alive)[:2]) or 'unknown'}")
        new = sorted(prefixes - known_prefixes)
        if new and known_prefixes:
            ind.add("new_prefix", 20, f"announces {', '.join(new[:3])}, never announced by the router")
        if alive and RANK[f["preference"]] > max(RANK[r["preference"]] for r in alive.values()):
            ind.add("higher_preference", 15, f"default-router preference {f['preference']}")
        spoofed = [m for m, r in alive.items() if r["ip"] == f["src"]]
        if spoofed:
            ind.add("router_address", 30, f"sent from {f['src']}, the address of router {spoofed[0]}")
        if f["lifetime"] == 0 and spoofed:
            ind.add("router_killed", 20, "router lifetime 0: hosts drop the real router")
        # several unknown routers at once are one flood (flood_router6 forges a MAC per RA): one threat
        return [self._finding(ind, f, mac, spoofed, flood=len(macs) >= FLOOD_SUSPECT, sample=sorted(macs)[:8])]

    def _known(self, f, ts, mac, prefixes) -> list:
        r = self.routers.get(mac)
        if r is None:
            self.routers[mac] = {"ip": f["src"], "first": ts, "last": ts, "prefixes": set(prefixes),
                                 "preference": f["preference"]}
            return []
        ind = Indicators()
        new = sorted(prefixes - r["prefixes"])
        if new and r["prefixes"] and ts - r["first"] > 1.0:
            ind.add("prefix_changed", 35, f"the router now announces {', '.join(new[:3])}")
        if RANK[f["preference"]] > RANK[r["preference"]]:
            ind.add("preference_raised", 25, f"preference {r['preference']} -> {f['preference']}")
        r["last"] = ts
        r["prefixes"] |= prefixes
        r["preference"] = f["preference"]
        return [self._finding(ind, f, mac, [], flood=False, sample=[])] if ind else []

    def _finding(self, ind, f, mac, spoofed, flood, sample) -> object:
        own = None if spoofed else (f["src"] if self.lan.mac_of(f["src"]) in (None, mac) else None)
        own = own or self.lan.own_ip(mac, but=f["src"])
        evidence = {"router_mac": mac, "source": f["src"], "attacker_ip": own, "preference": f["preference"],
                    "lifetime": f["lifetime"], "prefixes": [p["prefix"] for p in f["prefixes"]], "rdnss": f["rdnss"],
                    "known_routers": sorted(self.routers)[:4], "spoofed_router": spoofed[:1], "flood_macs": sample,
                    "managed": f["managed"], "other": f["other"], "vlan": f["vlan"]}
        key = "rogue_ra|flood|link" if flood else f"rogue_ra|{mac}|link"
        return finding("rogue_ra", ind, ts=f["ts"], src=own or mac, dst=f["dst"], protocol="ICMPv6",
                       summary=f"rogue Router Advertisement from {mac}" + (" (flood)" if flood else ""),
                       evidence=evidence, key=key, src_mac=mac, dst_mac=f["dst_mac"], attacker=own or mac,
                       attacker_mac=mac)
