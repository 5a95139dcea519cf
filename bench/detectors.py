"""Precision and recall of each detector on the labelled scenarios
(tests/detectors/scenarios.py) and the labelled shared captures.

A labelled case is an attack (the detector must raise a finding naming the
right attacker) or benign (it must raise nothing).  Per detector: a true
positive is an attack case found with the right attacker; a false negative
an attack case missed (or blamed on someone else); a false positive any
finding of that detector on a benign case, or with the wrong attacker.
Prints a markdown table.  Usage: python bench/detectors.py"""
import pathlib
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from agent.config import DetectionSection  # noqa: E402
from agent.detectors import TYPES  # noqa: E402
from agent.detectors.offline import detect_file  # noqa: E402
from tests.conftest import PCAPS  # noqa: E402
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
          ("zeek__wikipedia.pcap", "dns_hijack", False, None)]


def main() -> int:
    cfg = DetectionSection()
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        for make in SCENARIOS:
            s = make()
            found, _, _ = detect_file(str(s.write(pathlib.Path(tmp))), cfg)
            cases.append((s.name, s.detector, s.attack, s.attacker, found))
        for name, det, attack, attacker in SHARED:
            if (PCAPS / name).exists():
                found, _, _ = detect_file(str(PCAPS / name), cfg)
                cases.append((name, det, attack, attacker, found))
    print("| detector | attack cases | benign cases | TP | FN | FP | precision | recall |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for det in TYPES:
        tp = fn = fp = n_attack = n_benign = 0
        for name, d, attack, attacker, found in cases:
            mine = [f for f in found if f.type == det]
            if d == det and attack:
                n_attack += 1
                right = [f for f in mine if f.attacker == attacker or f.src == attacker]
                tp += bool(right)
                fn += not right
                fp += len(mine) - len(right)
            else:
                n_benign += d == det
                fp += len(mine)
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        print(f"| {det} | {n_attack} | {n_benign} | {tp} | {fn} | {fp} | {precision:.2f} | {recall:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
