"""Detectors of man-in-the-middle attacks: one module each, one registry.

Each module has parse(event) and a Detector (agent.detectors.detector);
one pipeline (agent.detectors.pipeline) routes each event to the detectors
that read its kind and then learns the LAN (agent.detectors.lan) from it
once; the live service and the CLI's `capbox detect` both feed it."""
import importlib

MODULES = ("arp_spoof", "dns_hijack", "ssl_strip", "tls_downgrade", "ndp_spoof", "rogue_ra", "rogue_dhcp",
           "tls_intercept", "syn_flood")


def __getattr__(name: str):
    """DETECTORS and TYPES on first use: a command that needs only SEVERITIES (the CLI's parser,
    loaded by every `capbox` process on the box) does not load the eight modules and the C core."""
    if name == "DETECTORS":
        value = [importlib.import_module(f"agent.detectors.{m}").Detector for m in MODULES]
    elif name == "TYPES":
        value = tuple(d.name for d in __getattr__("DETECTORS"))
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value
