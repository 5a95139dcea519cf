"""Rogue DHCP servers (a second dnsmasq, bettercap's dhcp6.spoof, a home
router plugged in backwards): an OFFER, ACK, ADVERTISE or REPLY from a
server that is not the network's.

The first server heard answering (or one whose address is in [detection]
dhcp_servers) is the network's, per address family.  Indicators:
- an answer from another server while the known one is alive (60);
- it hands out another router (20) or other resolvers (15) than the
  known server does, or names itself as router or resolver (10);
- it answers the same transaction as the known server (a race, 10).
The attacker is the answering server: its MAC, and its own address."""
from agent.detectors.detector import Detector as Base, Indicators, Recent, finding
from agent.detectors.dhcp import parse
from agent.detectors.lan import LEARN_KINDS

SERVER_ALIVE_S = 86400.0


class Detector(Base):
    name = "rogue_dhcp"
    kinds = ("dhcp",)
    learns = tuple(k for k in LEARN_KINDS if k != "dhcp")
    threshold_key = "dhcp_threshold"
    parse = staticmethod(parse)

    def __init__(self, cfg):
        super().__init__(cfg)
        self.servers = Recent(256)   # (family, mac) -> {"id", "ip", "routers", "dns", "last"}: the known ones
        self.answered = Recent()     # (family, xid) -> set of server MACs that answered it

    def detect(self, f) -> list:
        if not f["from_server"] or not f["src_mac"]:
            return []
        ts, fam, mac = f["ts"], f["family"], f["src_mac"]
        racers = self.answered.setdefault((fam, f["xid"]), set())
        racers.add(mac)
        alive = {m: s for (fa, m), s in self.servers.items() if fa == fam and ts - s["last"] <= SERVER_ALIVE_S}
        configured = f["src"] in self.cfg.dhcp_servers or f["server_id"] in self.cfg.dhcp_servers
        if mac in alive or not alive or configured:
            s = self.servers.setdefault((fam, mac), {"id": f["server_id"], "ip": f["src"], "routers": set(),
                                                     "dns": set(), "last": ts})
            s["last"] = ts
            s["routers"].update(f["routers"])
            s["dns"].update(f["dns"])
            return []
        ind = Indicators()
        known = sorted(alive)
        ind.add("unknown_server", 60, f"a DHCPv{fam} {f['message'].upper()} from {mac} ({f['src']}); "
                f"the network's server is {known[0]}")
        routers = {r for s in alive.values() for r in s["routers"]}
        dns = {r for s in alive.values() for r in s["dns"]}
        if f["routers"] and routers and not set(f["routers"]) & routers:
            ind.add("other_router", 20, f"hands out router {', '.join(f['routers'][:2])}, "
                    f"not {', '.join(sorted(routers)[:2])}")
        if f["dns"] and dns and not set(f["dns"]) & dns:
            ind.add("other_dns", 15, f"hands out resolvers {', '.join(f['dns'][:2])}")
        if f["src"] in f["routers"] or f["src"] in f["dns"]:
            ind.add("names_itself", 10, f"names itself ({f['src']}) as router or resolver")
        if racers & set(alive):
            ind.add("race", 10, f"answered transaction {f['xid']:#x} the network's server answered too")
        own = f["src"] if f["src"] not in ("0.0.0.0", "::") and self.lan.mac_of(f["src"]) in (None, mac) else None
        own = own or self.lan.own_ip(mac)
        evidence = {"server_mac": mac, "server_ip": f["src"], "server_id": f["server_id"], "message": f["message"],
                    "family": fam, "transaction_id": f["xid"], "client_mac": f["client_mac"],
                    "offered_ip": f["your_ip"],
                    "routers": f["routers"], "dns": f["dns"], "lease": f["lease"], "known_servers": known[:4],
                    "attacker_ip": own, "vlan": f["vlan"]}
        return [finding("rogue_dhcp", ind, ts=ts, src=own or mac, dst=f["your_ip"] or f["dst"], protocol=f"DHCPv{fam}",
                        summary=f"rogue DHCPv{fam} server {mac}", evidence=evidence,
                        key=f"rogue_dhcp|{mac}|v{fam}", src_mac=mac, dst_mac=f["dst_mac"], attacker=own or mac,
                        attacker_mac=mac)]
