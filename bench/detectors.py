"""Per detector: true and false positives, false negatives, precision,
recall and time to detect, on three sets of labelled cases, listed in this
order in bench/RESULTS.md:

1. the attack lab (tests/lab): real tools on a namespace LAN, a live agent
   capturing on its bridge; run here through pytest (root needed), each
   test's threats recorded (CAPBOX_LAB_RESULTS);
2. the labelled real captures in ../shared/pcaps (MANIFEST.md's ground
   truth), through the offline path (capbox detect);
3. the generated scenarios (tests/detectors/scenarios.py, lan_scenarios.py).

A true positive is an attack case whose detector raised a threat naming the
right attacker (lab: the attacker's MAC, never an innocent address); a false
negative an attack case missed or blamed on someone else; a false positive
any threat above low on a benign case, or one naming the wrong attacker.
Time to detect (the lab only): packet time of the first right threat minus
the attack's first packet (tcpdump on the attacker's switch port); the
captures and generated scenarios do not mark where an attack starts.  Usage: python bench/detectors.py [--no-lab] [--write]"""
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.config import DetectionSection  # noqa: E402
from agent.detectors import TYPES  # noqa: E402
from agent.detectors.offline import detect_file  # noqa: E402
from bench.sections import markers, write_section  # noqa: E402
from tests.conftest import PCAPS  # noqa: E402
from tests.detectors.lan_scenarios import LAN_SCENARIOS  # noqa: E402
from tests.detectors.scenarios import SCENARIOS  # noqa: E402

# shared captures: (file, detector, attack?, attacker) -- MANIFEST.md's ground truth
SHARED = [("zeek__tls_ssl.v3.pcap", "tls_downgrade", True, "194.127.84.106"),
          ("zeek__tls_tls1_1.pcap", "tls_downgrade", True, "216.58.192.14"),
          ("chrissanders__arp_gratuitous.pcapng", "arp_spoof", False, None),
          ("chrissanders__arp_resolution.pcapng", "arp_spoof", False, None),
          ("zeek__dns-two-responses.pcap", "dns_hijack", False, None),
          ("chrissanders__dns_query_nonexistent.pcapng", "dns_hijack", False, None),
          ("ndpi__1kxun.pcap", "dns_hijack", False, None),
          ("zeek__http_http-11-request-then-cruft.pcap", "ssl_strip", False, None),
          ("zeek__tls_ssl-to-http-server.pcap", "ssl_strip", False, None),
          ("zeek__wikipedia.pcap", "dns_hijack", False, None),
          ("zeek__icmp6-router-advert.pcap", "rogue_ra", False, None),
          ("zeek__icmp6-neighbor-advert.pcap", "ndp_spoof", False, None),
          ("zeek__icmp6-nd-options.pcap", "ndp_spoof", False, None),
          ("zeek__dhcp.pcap", "rogue_dhcp", False, None),
          ("ndpi__http_ipv6.pcap", "tls_intercept", False, None)]

# lab tests: test name -> (detector, attack?)
LAB = {"test_dsniff_arpspoof": ("arp_spoof", True), "test_ettercap_arp_remote": ("arp_spoof", True),
       "test_bettercap_arp_spoof": ("arp_spoof", True), "test_dsniff_dnsspoof": ("dns_hijack", True),
       "test_ettercap_dns_spoof": ("dns_hijack", True), "test_bettercap_dns_spoof": ("dns_hijack", True),
       "test_parasite6": ("ndp_spoof", True), "test_fake_router6": ("rogue_ra", True),
       "test_flood_router6": ("rogue_ra", True), "test_rogue_dhcpv4": ("rogue_dhcp", True),
       "test_rogue_dhcpv6": ("rogue_dhcp", True), "test_mitmproxy_tls_interception": ("tls_intercept", True),
       "test_mitmproxy_ssl_strip": ("ssl_strip", True), "test_bettercap_proxies_with_sslstrip": ("ssl_strip", True),
       "test_layer2_life": (None, False), "test_dns_life": (None, False), "test_https_upgrade_and_login": (None, False)}
GW_MAC = "02:16:00:00:00:11"
INNOCENT = {"192.168.77.10", "192.168.77.1", "11.1.1.10", "11.1.1.11", "fd77:16::10", "fd77:16::1"}


NOTES = ("The lab's cases are real tools nobody here wrote (tests/lab, docs/DETECTION.md); its time to detect "
         "runs from the tool's first packet on the wire, reconnaissance included (arpspoof and ettercap first ARP "
         "for their targets, about a second before they poison), to the packet time of the first right threat, "
         "read back over REST (milliseconds).  flood_router6 forges a MAC per RA: its threats name forged MACs, "
         "counted right when they are not the router's.  The interception cases use TLS 1.2 clients: TLS 1.3 "
         "encrypts certificates.  The shared captures hold two weak-TLS sessions as attacks and benign ARP, DNS, "
         "HTTP, ND, DHCP and TLS traffic; the generated scenarios were written beside the detectors, so they show "
         "the detectors do what they were built for, not how they fare on traffic nobody here wrote.")


class Tally:
    def __init__(self):
        self.rows = {d: {"attack": 0, "benign": 0, "tp": 0, "fn": 0, "fp": 0, "ttd": []} for d in TYPES}

    def case(self, det, attack: bool, right: list, wrong: int, ttd=None):
        r = self.rows[det]
        r["attack" if attack else "benign"] += 1
        if attack:
            r["tp"] += bool(right)
            r["fn"] += not right
            if right and ttd is not None:
                r["ttd"].append(ttd)
        r["fp"] += wrong

    def stray(self, det, n: int):
        self.rows[det]["fp"] += n

    def table(self) -> str:
        out = ["| detector | attack cases | benign cases | TP | FN | FP | precision | recall | time to detect (median / max) |",
               "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for det, r in self.rows.items():
            if not (r["attack"] or r["benign"] or r["fp"]):
                continue
            p = r["tp"] / (r["tp"] + r["fp"]) if r["tp"] + r["fp"] else 1.0
            rec = r["tp"] / (r["tp"] + r["fn"]) if r["tp"] + r["fn"] else 1.0
            ttd = f"{statistics.median(r['ttd']):.2f} s / {max(r['ttd']):.2f} s" if r["ttd"] else "—"
            out.append(f"| {det} | {r['attack']} | {r['benign']} | {r['tp']} | {r['fn']} | {r['fp']} | {p:.2f} | "
                       f"{rec:.2f} | {ttd} |")
        return "\n".join(out)


def lab_table() -> tuple:
    """Run the lab through pytest; its tally and the pytest summary line."""
    results = pathlib.Path(tempfile.mkdtemp()) / "lab.jsonl"
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/lab"], cwd=ROOT,
                       env={**os.environ, "CAPBOX_LAB_RESULTS": str(results)}, capture_output=True, text=True)
    summary = (p.stdout.strip().splitlines() or ["(no output)"])[-1]
    t = Tally()
    from tests.lab.conftest import ts
    for line in results.read_text().splitlines() if results.exists() else []:
        rec = json.loads(line)
        det, attack = LAB.get(rec["test"].split("[")[0], (None, False))    # a parametrized test: its own label
        threats = [x for x in rec["threats"] if "attack_type" in x]
        if attack:
            # flood_router6 forges a MAC per RA: any threat naming one of those (not the router) names the attack;
            # a threat that says its sender could not be identified names no one, rightly or wrongly
            mine = [x for x in threats if x["attack_type"] == det and x["attacker_mac"]]
            right = [x for x in mine if x["attacker_mac"] == rec["attacker_mac"] and x["attacker"] not in INNOCENT
                     or (rec["test"] == "test_flood_router6" and x["attacker_mac"] != GW_MAC)]
            # the API's times are milliseconds, the tcpdump's microseconds: a threat on the first packet is 0
            ttd = max(0.0, min(ts(x["first_seen"]) for x in right) - rec["t0"]) if right and rec["t0"] else None
            t.case(det, True, right, len(mine) - len(right), ttd)
        else:
            for x in threats:
                if x["severity"] != "low":
                    t.stray(x["attack_type"], 1)
            for d in TYPES:                   # every detector watched the benign run
                t.rows[d]["benign"] += 1
    return t, summary


def offline_tally(cases) -> Tally:
    t = Tally()
    for det, attack, attacker, found, first in cases:
        mine = [f for f in found if f.type == det]
        if attack:
            right = [f for f in mine if f.attacker == attacker]
            ttd = min(f.first_seen for f in right) - first if right and first is not None else None
            t.case(det, True, right, len(mine) - len(right), ttd)
        else:
            t.case(det, False, [], len([f for f in mine if f.severity != "low"]))
        for f in found:
            if f.type != det and f.severity != "low" and not attack:
                t.stray(f.type, 1)
    return t


def main(argv) -> int:
    cfg = DetectionSection()
    shared, generated = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for make in SCENARIOS + LAN_SCENARIOS:
            s = make()
            found, _, _ = detect_file(str(s.write(pathlib.Path(tmp))), cfg)
            generated.append((s.detector, s.attack, s.attacker, found, None))
        for name, det, attack, attacker in SHARED:
            if (PCAPS / name).exists():
                found, _, _ = detect_file(str(PCAPS / name), cfg)
                shared.append((det, attack, attacker, found, None))
    parts = []
    if "--no-lab" not in argv and os.geteuid() == 0:
        lab, summary = lab_table()
        parts.append(f"### 1. The attack lab (real tools, live capture on the bridge)\n\npytest: {summary}\n\n{lab.table()}")
    else:
        parts.append("### 1. The attack lab\n\nnot run (needs root; --no-lab)")
    parts.append(f"### 2. Labelled real captures (../shared/pcaps)\n\n{offline_tally(shared).table()}")
    parts.append(f"### 3. Generated scenarios\n\n{offline_tally(generated).table()}")
    text = "\n\n".join(parts)
    print(text)
    if "--write" in argv:
        begin, end = markers("detectors")
        body = (f"{begin}\n## Detectors: precision, recall and time to detect\n\n`python bench/detectors.py --write` "
                f"(root, about 3 minutes with the lab; the machine was shared with four other engineers' work, so "
                f"the times are upper bounds).  Default thresholds.  {NOTES}\n\n{text}\n{end}\n")
        write_section(ROOT / "bench" / "RESULTS.md", "detectors", body)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
