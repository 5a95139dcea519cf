"""Detectors of man-in-the-middle attacks: one module each, one registry.

Each module has parse(event) and a Detector (agent.detectors.detector);
the live path runs each in its own service thread on its bus channels, the
CLI feeds the same classes from a capture file.  Every detector also learns
the LAN (agent.detectors.lan) from the other kinds it is fed."""
from agent.detectors import (arp_spoof, dns_hijack, ndp_spoof, rogue_dhcp, rogue_ra, ssl_strip, tls_downgrade,
                             tls_intercept)

DETECTORS = [arp_spoof.Detector, dns_hijack.Detector, ssl_strip.Detector, tls_downgrade.Detector, ndp_spoof.Detector,
             rogue_ra.Detector, rogue_dhcp.Detector, tls_intercept.Detector]
TYPES = tuple(d.name for d in DETECTORS)
