"""Detectors of man-in-the-middle attacks: one module each, one registry.

Each module has parse(event) and a Detector (agent.detectors.detector);
the live path runs each in its own service thread on its bus channels, the
CLI feeds the same classes from a capture file."""
from agent.detectors import arp_spoof, dns_hijack, ssl_strip, tls_downgrade

DETECTORS = [arp_spoof.Detector, dns_hijack.Detector, ssl_strip.Detector, tls_downgrade.Detector]
TYPES = tuple(d.name for d in DETECTORS)
