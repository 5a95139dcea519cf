"""Decapsulation's cost and correctness on a synthetic capture: the file
metered with decapsulation off and on (no tunnel inside: the cost of the
check), and a VXLAN-wrapped copy of it (every packet peeled), which must
meter the same flows as the original.

    python bench/tunnels.py CAPTURE.pcap [WORKDIR]
prints one JSON object."""
import json
import pathlib
import struct
import sys
import time

from hwdrivers import CaptureConfig, RunResult, Session, Tunnels

VXLAN_HEAD = bytes.fromhex("02000000000102000000000208004500")  # outer Ethernet, IPv4 version/IHL/TOS


def wrap(src: str, dst: str) -> None:
    """Each frame of a classic little-endian pcap inside Ethernet/IPv4/UDP 4789/VXLAN VNI 7."""
    with open(src, "rb") as f, open(dst, "wb") as out:
        out.write(f.read(24))
        vx = struct.pack("!BBHI", 0x08, 0, 0, 7 << 8)
        while True:
            head = f.read(16)
            if len(head) < 16:
                break
            sec, frac, cap, wire = struct.unpack("<IIII", head)
            frame = f.read(cap)
            udp = struct.pack("!HHHH", 49152 + (cap & 0xFFF), 4789, 8 + 8 + wire, 0)
            ip = VXLAN_HEAD[14:] + struct.pack("!HHHBBH4s4s", 20 + 8 + 8 + wire, 0, 0, 64, 17, 0,
                                               b"\xc0\x00\x02\x01", b"\xc0\x00\x02\x02")
            outer = VXLAN_HEAD[:14] + ip + udp + vx
            out.write(struct.pack("<IIII", sec, frac, cap + len(outer), wire + len(outer)) + outer + frame)


def meter(path: str, tunnels: Tunnels) -> tuple:
    """(seconds, packets, flows as a sorted list of keys and counts)."""
    flows = []
    t0 = time.perf_counter()
    with Session(CaptureConfig(path, flow_ring=1 << 16, lossless=True, idle_timeout_s=0, active_timeout_s=0,
                               max_flows=1 << 22, tunnels=tunnels)) as s:
        while True:
            result = s.run()
            flows.extend(s.read_flows())
            if result == RunResult.EOF:
                break
        s.flush()
        flows.extend(s.read_flows())
        packets = s.counters().packets
    seconds = time.perf_counter() - t0
    keys = sorted((f.src, f.dst, f.sport, f.dport, f.proto, f.packets) for f in flows)
    return seconds, packets, keys


def main() -> int:
    src = sys.argv[1]
    work = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else pathlib.Path(src).parent)
    wrapped = str(work / (pathlib.Path(src).stem + "-vxlan.pcap"))
    wrap(src, wrapped)
    off_s, n, off_flows = meter(src, Tunnels(depth=0))
    on_s, _, on_flows = meter(src, Tunnels())
    vx_s, _, vx_flows = meter(wrapped, Tunnels())
    print(json.dumps({"packets": n, "flows": len(on_flows), "decap_off_s": round(off_s, 2),
                      "decap_on_s": round(on_s, 2), "check_cost_percent": round(100 * (on_s / off_s - 1), 1),
                      "vxlan_s": round(vx_s, 2), "vxlan_cost_percent": round(100 * (vx_s / on_s - 1), 1),
                      "same_flows_without_tunnels": off_flows == on_flows,
                      "vxlan_same_flows": vx_flows == on_flows}))
    pathlib.Path(wrapped).unlink()
    return 0 if vx_flows == on_flows else 1


if __name__ == "__main__":
    sys.exit(main())
