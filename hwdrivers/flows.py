"""Flow records from the C flow table, as plain Python objects."""
import dataclasses
import socket
from typing import Optional

from hwdrivers._hw import ffi, lib

_PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp", 47: "gre", 50: "esp"}


def proto_name(proto: int) -> str:
    return _PROTO_NAMES.get(proto, str(proto))


def format_addr(family: int, raw) -> str:
    b = bytes(ffi.buffer(raw, 16))
    if family == 6:
        return socket.inet_ntop(socket.AF_INET6, b)
    return socket.inet_ntop(socket.AF_INET, b[:4])


def community_id(src: str, dst: str, proto: int, sport: int = 0, dport: int = 0, seed: int = 0) -> Optional[str]:
    """The community ID (v1) of a flow, made in C; None for ICMP (no type/code mapping) or a bad address."""
    family, af = (6, socket.AF_INET6) if ":" in src else (4, socket.AF_INET)
    try:
        a, b = socket.inet_pton(af, src), socket.inet_pton(af, dst)
    except OSError:
        return None
    out = ffi.new("char[32]")
    if lib.hw_community_id(family, a, b, proto, sport or 0, dport or 0, seed, out):
        return None
    return ffi.string(out).decode()


def format_mac(raw) -> str:
    return bytes(ffi.buffer(raw, 6)).hex(":")


def _names(fn, count: int) -> list:
    return [ffi.string(fn(i)).decode() for i in range(count)]


END_NAMES = _names(lib.hw_end_name, lib.HW_END_EVICTED + 1)
STATE_NAMES = _names(lib.hw_tcp_state_name, lib.HW_TCP_RESET + 1)
APP_NAMES = _names(lib.hw_app_name, lib.HW_APP_COUNT)
TUNNEL_NAMES = _names(lib.hw_tunnel_name, lib.HW_TUN_COUNT)
ORDERS = {"bytes": lib.HW_ORDER_BYTES, "packets": lib.HW_ORDER_PACKETS,
          "last": lib.HW_ORDER_LAST, "first": lib.HW_ORDER_FIRST}


@dataclasses.dataclass(frozen=True)
class FlowRecord:
    """One conversation; `src` is the initiator, index 0 of each pair its direction."""

    id: int
    src: str
    dst: str
    sport: int
    dport: int
    proto: int
    vlan: int
    family: int
    first_ns: int
    last_ns: int
    packets: tuple
    bytes: tuple
    rtt_ns: int
    syn_synack_ns: int
    retransmissions: tuple
    out_of_order: tuple
    tcp_flags: tuple
    state: str
    end_reason: str
    app: str
    continued: bool
    src_mac: str
    dst_mac: str
    vlan_inner: int = 0           # QinQ's second tag
    tunnel: str = ""              # the tunnel that carried it (the innermost): gre, erspan, vxlan, geneve, gtp, ipip
    tunnel_src: str = ""          # the tunnel's own addresses, the initiator's side first
    tunnel_dst: str = ""
    tunnel_id: tuple = (0, 0)     # per direction: VNI, ERSPAN session, GTP TEID or GRE key

    @property
    def total_packets(self) -> int:
        return self.packets[0] + self.packets[1]

    @property
    def total_bytes(self) -> int:
        return self.bytes[0] + self.bytes[1]

    @property
    def rtt_ms(self):
        return self.rtt_ns / 1e6 if self.rtt_ns else None

    @property
    def proto_name(self) -> str:
        return proto_name(self.proto)

    def as_dict(self) -> dict:
        """The row `capbox flows` prints and the API returns."""
        return {
            "id": self.id, "src": self.src, "dst": self.dst, "sport": self.sport, "dport": self.dport,
            "proto": self.proto_name, "vlan": self.vlan,
            "packets": self.total_packets, "bytes": self.total_bytes,
            "packets_fwd": self.packets[0], "packets_rev": self.packets[1],
            "bytes_fwd": self.bytes[0], "bytes_rev": self.bytes[1],
            "first": self.first_ns / 1e9, "last": self.last_ns / 1e9,
            "duration_s": (self.last_ns - self.first_ns) / 1e9,
            "rtt_ms": round(self.rtt_ns / 1e6, 3) if self.rtt_ns else None,
            "retransmissions": self.retransmissions[0] + self.retransmissions[1],
            "out_of_order": self.out_of_order[0] + self.out_of_order[1],
            "state": self.state, "app": self.app, "end": self.end_reason,
            "tcp_flags_fwd": self.tcp_flags[0], "tcp_flags_rev": self.tcp_flags[1],
            "vlan_inner": self.vlan_inner, "tunnel": self.tunnel or None,
            "tunnel_src": self.tunnel_src or None, "tunnel_dst": self.tunnel_dst or None,
            "tunnel_id": self.tunnel_id[0] if self.tunnel else None,
            "tunnel_id_rev": self.tunnel_id[1] if self.tunnel else None,
        }


def from_cdata(r) -> FlowRecord:
    return FlowRecord(
        id=r.id, src=format_addr(r.family, r.src), dst=format_addr(r.family, r.dst),
        sport=r.sport, dport=r.dport, proto=r.proto, vlan=r.vlan, family=r.family,
        first_ns=r.first_ns, last_ns=r.last_ns,
        packets=(r.packets[0], r.packets[1]), bytes=(r.bytes[0], r.bytes[1]),
        rtt_ns=r.rtt_ns, syn_synack_ns=r.syn_synack_ns,
        retransmissions=(r.retransmissions[0], r.retransmissions[1]),
        out_of_order=(r.out_of_order[0], r.out_of_order[1]),
        tcp_flags=(r.tcp_flags[0], r.tcp_flags[1]),
        state=STATE_NAMES[r.state] if r.proto == 6 else "",
        end_reason=END_NAMES[r.end_reason], app=APP_NAMES[r.app], continued=bool(r.continued),
        src_mac=format_mac(r.src_mac), dst_mac=format_mac(r.dst_mac), vlan_inner=r.vlan_inner,
        **(_tunnel(r) if r.tun_type else {}),
    )


def _tunnel(r) -> dict:
    return {"tunnel": TUNNEL_NAMES[r.tun_type], "tunnel_src": format_addr(r.tun_family, r.tun_src),
            "tunnel_dst": format_addr(r.tun_family, r.tun_dst), "tunnel_id": (r.tun_id[0], r.tun_id[1])}


@dataclasses.dataclass(frozen=True)
class Host:
    """A talker: totals of the flows it took part in."""

    addr: str
    bytes_out: int
    bytes_in: int
    packets_out: int
    packets_in: int
    flows: int

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["bytes"] = self.bytes_out + self.bytes_in
        d["packets"] = self.packets_out + self.packets_in
        return d


def host_from_cdata(h) -> Host:
    return Host(format_addr(h.family, h.addr), h.bytes_out, h.bytes_in, h.packets_out,
                h.packets_in, h.flows)
