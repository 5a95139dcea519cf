"""The FPGA capture card: its identity and state, firmware load, faults of
the software model, and the flow cache as plain Python objects.

Capture goes through a Session like every backend:
CaptureConfig(backend="fpga", source=<device path>).  `load` hands a
payload to the card; it is the agent's to call, and only with the payload
of an image whose verification (firmware/) came out ok."""
import dataclasses
import socket

from hwdrivers._hw import ffi, lib
from hwdrivers.errors import CaptureError, ErrorCode, check

DEFAULT_DEVICE = "/dev/shm/capbox-fpga0"
FAULTS = {"stall": lib.HW_FPGA_FAULT_STALL, "corrupt": lib.HW_FPGA_FAULT_CORRUPT,
          "link": lib.HW_FPGA_FAULT_LINK, "fw_crc": lib.HW_FPGA_FAULT_FW_CRC}
FW_STATES = {lib.HW_FPGA_FW_NONE: "none", lib.HW_FPGA_FW_LOADING: "loading",
             lib.HW_FPGA_FW_RUNNING: "running", lib.HW_FPGA_FW_FAILED: "failed"}


def _errbuf():
    return ffi.new("char[]", lib.HW_ERRBUF_SIZE)


@dataclasses.dataclass(frozen=True)
class CardInfo:
    device: str
    target: str
    hw_version: str
    model: bool
    firmware_state: str             # none, loading, running, failed
    firmware_version: str           # "" when none runs
    firmware_rollback: int
    firmware_crc32: int
    firmware_length: int
    firmware_loads: int
    last_load_error: str            # why the last load failed (target, length, crc, sequence), or ""
    link_up: bool
    dma_running: bool
    end_of_stream: bool
    linktype: int
    rx_packets: int
    rx_bytes: int
    rx_dropped: int
    link_downs: int
    dma_resets: int
    faults_fired: int
    clock_ns: int
    flowcache_entries: int
    flowcache_used: int
    flowcache_overflow: int
    desc_count: int
    data_ring_bytes: int

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _fw_error_name(code: int) -> str:
    name = lib.hw_fpga_fw_error_name(code)
    return ffi.string(name).decode() if name != ffi.NULL else ""


def info(device: str = DEFAULT_DEVICE) -> CardInfo:
    """Identity and state of the card at `device`; CaptureError(NODEV) when none is there."""
    out = ffi.new("struct hw_fpga_info *")
    errbuf = _errbuf()
    check(lib.hw_fpga_info(device.encode(), out, errbuf), errbuf)
    running = out.fw_state == lib.HW_FPGA_FW_RUNNING
    return CardInfo(
        device=device, target=ffi.string(out.target).decode("ascii", "replace"),
        hw_version=f"{out.hw_version >> 16}.{out.hw_version & 0xffff}", model=bool(out.model),
        firmware_state=FW_STATES.get(out.fw_state, str(out.fw_state)),
        firmware_version=f"{out.fw_major}.{out.fw_minor}.{out.fw_patch}" if running else "",
        firmware_rollback=out.fw_rollback, firmware_crc32=out.fw_crc, firmware_length=out.fw_length,
        firmware_loads=out.fw_loads, last_load_error=_fw_error_name(out.fw_error),
        link_up=bool(out.link_up), dma_running=bool(out.dma_running), end_of_stream=bool(out.end_of_stream),
        linktype=out.linktype, rx_packets=out.rx_packets, rx_bytes=out.rx_bytes, rx_dropped=out.rx_dropped,
        link_downs=out.link_downs, dma_resets=out.dma_resets, faults_fired=out.faults_fired,
        clock_ns=out.ts_now_ns, flowcache_entries=out.flowcache_entries, flowcache_used=out.flowcache_used,
        flowcache_overflow=out.flowcache_overflow, desc_count=out.desc_count, data_ring_bytes=out.data_size)


def load(device: str, payload: bytes, target: str, version: tuple, rollback: int) -> None:
    """Load a verified image's payload into the card through its mailbox; the
    card checks target, length and CRC-32 and runs it.  CaptureError when it
    refuses (the image that ran before keeps running)."""
    if not payload:
        raise CaptureError(ErrorCode.ARG, "empty firmware payload")
    major, minor, patch = version
    errbuf = _errbuf()
    check(lib.hw_fpga_load(device.encode(), target.encode(), major, minor, patch, rollback,
                           ffi.from_buffer(payload), len(payload), errbuf), errbuf)


def inject_fault(device: str, kind: str, at_packet: int = 0, arg: int = 0) -> None:
    """Make fpga-sim misbehave before frame `at_packet` of the capture:
    stall, corrupt (one descriptor), link (down for `arg` ms), fw_crc (the
    next firmware chunk is damaged)."""
    if kind not in FAULTS:
        raise CaptureError(ErrorCode.ARG, f"unknown fault {kind!r}; use one of {', '.join(FAULTS)}")
    errbuf = _errbuf()
    check(lib.hw_fpga_fault(device.encode(), FAULTS[kind], at_packet, arg, errbuf), errbuf)


@dataclasses.dataclass(frozen=True)
class OffloadFlow:
    """A conversation the card metered; endpoints in canonical order (a <= b)."""

    addr_a: str
    addr_b: str
    port_a: int
    port_b: int
    proto: int
    vlan: int
    family: int
    packets: int
    bytes: int
    first_ns: int
    last_ns: int


def offload_flow_from_cdata(c) -> OffloadFlow:
    fam = socket.AF_INET6 if c.family == 6 else socket.AF_INET
    size = 16 if c.family == 6 else 4

    def addr(raw):
        return socket.inet_ntop(fam, bytes(ffi.buffer(raw, 16))[:size])
    return OffloadFlow(addr(c.addr_a), addr(c.addr_b), c.port_a, c.port_b, c.proto, c.vlan, c.family,
                       c.packets, c.bytes, c.first_ns, c.last_ns)
