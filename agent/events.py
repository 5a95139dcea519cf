"""Events the agent's services publish: frozen dataclasses, JSON through as_dict()."""
import dataclasses
from typing import Optional


@dataclasses.dataclass(frozen=True)
class Detection:
    """One finding of a detector: the packet facts that caused it and how sure it is."""

    type: str                  # arp_spoof, dns_hijack, ssl_strip, tls_downgrade
    score: int                 # 0-100, the sum of its indicators' points
    severity: str              # low, medium, high, critical
    confidence: float          # 0-1
    src: str                   # the sender of what was suspicious (the attacker's side)
    dst: str                   # the host it was aimed at
    protocol: str              # ARP, DNS, HTTP, TLS
    description: str
    evidence: dict
    first_seen: float          # packet time, unix seconds
    src_mac: str = ""
    dst_mac: str = ""
    attacker: str = ""         # the attacker's address: its own IP when known, else src
    attacker_mac: str = ""
    key: str = ""              # the same attack seen again has the same key
    verify: Optional[dict] = None  # what verification should check: {"kind": "dns"|"url", ...}

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)
