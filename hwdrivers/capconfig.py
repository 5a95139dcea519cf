"""What a session is asked to do (struct hw_config): CaptureConfig and the
tunnels it peels.  Every default is C's (hw_config_init), read once here."""
import dataclasses
from typing import Optional

from hwdrivers._hw import ffi, lib
from hwdrivers.errors import CaptureError, ErrorCode
from hwdrivers.flows import TUNNEL_NAMES

FANOUT_MODES = {"hash": 0, "lb": 1, "cpu": 2, "rollover": 3, "rnd": 4, "qm": 5}


def _defaults():
    c = ffi.new("struct hw_config *")
    lib.hw_config_init(c)
    return c


_D = _defaults()


def _ports(ports) -> tuple:
    return tuple(str(p) for p in ports if p)


@dataclasses.dataclass(frozen=True)
class Tunnels:
    """Decapsulation: the tunnels peeled to meter what they carry (also the
    agent's [tunnels] config section, so it is declared here once)."""

    off: tuple = ()                  # types left whole: gre, erspan, vxlan, geneve, gtp, ipip
    depth: int = _D.tunnel_depth     # tunnels peeled per packet (a deeper one is malformed); 0: none
    vxlan_ports: tuple = _ports(_D.vxlan_ports)   # UDP destination ports (at most 4 per type)
    geneve_ports: tuple = _ports(_D.geneve_ports)
    gtp_ports: tuple = _ports(_D.gtp_ports)
    meter_outer: bool = False        # also meter each packet's tunnel as a flow of its own

    def problem(self):
        """(field, message) of the first bad value, or None."""
        for name in self.off:
            if name not in TUNNEL_NAMES[1:]:
                return "off", f"{name!r} is not one of {', '.join(TUNNEL_NAMES[1:])}"
        if not 0 <= self.depth <= lib.HW_TUN_DEPTH_MAX:
            return "depth", f"must be between 0 and {lib.HW_TUN_DEPTH_MAX}"
        for field in ("vxlan_ports", "geneve_ports", "gtp_ports"):
            ports = getattr(self, field)
            if len(ports) > lib.HW_TUN_PORTS:
                return field, f"at most {lib.HW_TUN_PORTS} ports"
            if not all(str(p).isdigit() and 1 <= int(p) <= 65535 for p in ports):
                return field, "ports are integers in 1..65535"
        return None

    def fill(self, cfg) -> None:
        """Set the tunnel fields of a struct hw_config."""
        bad = self.problem()
        if bad:
            raise CaptureError(ErrorCode.ARG, f"tunnels.{bad[0]}: {bad[1]}")
        cfg.tunnel_off = sum(1 << TUNNEL_NAMES.index(n) for n in set(self.off))
        cfg.tunnel_depth = self.depth
        cfg.tunnel_outer = int(self.meter_outer)
        for field in ("vxlan_ports", "geneve_ports", "gtp_ports"):
            ports = [int(p) for p in getattr(self, field)]
            setattr(cfg, field, ports + [0] * (lib.HW_TUN_PORTS - len(ports)))


@dataclasses.dataclass(frozen=True)
class CaptureConfig:
    """What to capture and how to meter it.  The defaults are C's (hw_config_init):
    the request schema and the config section take theirs from here."""

    source: str
    backend: str = ffi.string(_D.backend).decode()
    bpf: str = ""
    snaplen: int = _D.snaplen
    buffer_size_mb: int = _D.buffer_size_mb
    promisc: bool = bool(_D.promisc)
    fanout_group: Optional[int] = _D.fanout_group     # afpacket: -1 (or None) for none
    fanout_mode: str = next(k for k, v in FANOUT_MODES.items() if v == _D.fanout_mode)
    block_size_kb: int = _D.block_size_kb
    block_timeout_ms: int = _D.block_timeout_ms
    pace: float = _D.pace
    loop: bool = bool(_D.loop)
    max_flows: int = _D.max_flows
    max_hosts: int = _D.max_hosts
    idle_timeout_s: int = _D.idle_timeout_s
    active_timeout_s: int = _D.active_timeout_s
    events: frozenset = frozenset()    # event kinds to queue: dns, arp, tls, http, sip, tcp_src, token, ndp, dhcp
    event_ring: int = _D.event_ring
    flow_ring: int = _D.flow_ring      # expired-flow records to queue; 0 = none
    lossless: bool = bool(_D.lossless)  # files: stop and let Python drain instead of dropping
    window_s: int = _D.window_s        # traffic windows of this many seconds; 0 = none
    window_ring: int = _D.window_ring  # closed windows queued for Python
    long_flow_s: int = _D.long_flow_s  # a flow open this long is named in its window
    sample_rate: int = _D.sample_rate  # meter one IP packet in N (systematic); 1 = every packet
    tunnels: Tunnels = Tunnels()


DEFAULTS = CaptureConfig(source="")
