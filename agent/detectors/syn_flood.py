"""SYN floods, from the C core's per-source TCP summaries (tcp_src events,
hwdrivers/src/srcsum.c): Python never sees the SYNs, only what each source
did over a span of up to 10 s (SYNs, RSTs, distinct hosts and ports).

Indicators (a finding needs syn_flood_threshold, 60):
- a source sent at least FLOOD_SYNS SYNs at FLOOD_RATE a second or more to a
  few hosts and a few ports on each (60); at ten times that rate (+15);
- all of them to one or two services (+15);
- the target refuses them (RSTs back for half or more: +10).
Port scans (many ports or hosts, few SYNs each) are the analysis's
port_scan (agent/analysis/anomalies.py, from the traffic windows' per-source
sketches); this detector does not judge them twice.  A flood from spoofed
sources (one SYN each) shows no source that floods: left to the traffic
windows' spike and SYN counters."""
from agent.detectors.detector import Detector as Base, Indicators, finding
from agent.detectors.lan import LEARN_KINDS

FLOOD_SYNS = 1000           # SYNs in one summary
FLOOD_RATE = 100.0          # SYNs a second, over the summary's span (1 s at least)
FEW_HOSTS = 4
FEW_PORTS = 4               # ports per host: more is a scan (the sketch counts a few per cent high or low)


def parse(ev):
    rec = ev.record
    if rec is None or rec.syns < FLOOD_SYNS:
        return None
    span = max(1.0, rec.last_ts - rec.first_ts)
    return {"src": ev.src, "dst": ev.dst, "src_mac": ev.src_mac, "dst_mac": ev.dst_mac, "ts": ev.ts, "vlan": ev.vlan,
            "syns": rec.syns, "rate": rec.syns / span, "span": span, "hosts": rec.hosts, "ports": rec.ports,
            "rsts_received": rec.rsts_received}


class Detector(Base):
    name = "syn_flood"
    kinds = ("tcp_src",)
    learns = tuple(k for k in LEARN_KINDS if k != "tcp_src")
    threshold_key = "syn_flood_threshold"
    parse = staticmethod(parse)

    def judge(self, event) -> list:
        """A summary below FLOOD_SYNS (or without a record) has no facts (parse): counted as Detector.judge counts
        it, without its calls (large.pcap: 39,925 summaries, none a flood)."""
        if event.kind == "tcp_src" and (event.record is None or event.record.syns < FLOOD_SYNS):
            self.counts["events"] += 1
            return []
        return super().judge(event)

    def detect(self, f) -> list:
        if f["rate"] < FLOOD_RATE or f["hosts"] > FEW_HOSTS or f["ports"] > FEW_PORTS * f["hosts"]:
            return []                                   # slow, or spread over many hosts or ports (a scan)
        ind = Indicators()
        ind.add("syn_flood", 60, f"{f['syns']} SYNs in {f['span']:.0f} s ({f['rate']:,.0f}/s) to {f['hosts']} host(s), "
                f"{f['ports']} port(s)")
        if f["rate"] >= 10 * FLOOD_RATE:
            ind.add("syn_rate", 15, f"at {f['rate']:,.0f} SYNs/s")
        if f["ports"] <= 2:
            ind.add("single_service", 15, "to one service")
        if f["rsts_received"] * 2 >= f["syns"]:
            ind.add("refused", 10, f"{f['rsts_received']} refused")
        key = f"syn_flood|{f['src']}|{f['dst'] if f['hosts'] <= 1 else ''}"
        if self.seen(key, f["ts"], ind.score):
            self.counts["repeats_unbuilt"] += 1
            return []
        attacker, _ = self.lan.sender(f["src"], f["src_mac"])
        evidence = {"syns": f["syns"], "span_s": round(f["span"], 3), "syns_per_s": round(f["rate"], 1),
                    "hosts": f["hosts"], "ports": f["ports"], "rsts_received": f["rsts_received"],
                    "target": f["dst"], "vlan": f["vlan"]}
        return [finding("syn_flood", ind, ts=f["ts"], src=f["src"], dst=f["dst"], protocol="TCP",
                        summary=f"SYN flood from {f['src']}", evidence=evidence, key=key, src_mac=f["src_mac"],
                        dst_mac=f["dst_mac"], attacker=attacker, attacker_mac=f["src_mac"])]
