"""The fpga backend against fpga-sim, driven as a user drives it: a Session
with CaptureConfig(backend="fpga", source=<device path>).  Same flows as
pcapfile on the same capture; capture refused before firmware; every
injected fault reported once and recovered from."""
import collections
import ipaddress
import os
import zlib

import pytest

import hwdrivers
from hwdrivers import CaptureConfig, CaptureError, ErrorCode, RunResult, Session, fpga
from hwdrivers.flows import proto_name
from hwdrivers.fpgasim import Simulator
from tests.conftest import card_path, pcap
from tests.hwdrivers.conftest import offline_flows, offline_report

TARGET = "capbox-fpga1"
FIRMWARE = bytes(range(256)) * 40 + b"bitstream"


@pytest.fixture
def sim(request):
    """fpga-sim fed from a capture (parametrize indirectly with its name), firmware loaded."""
    name = getattr(request, "param", "ndpi__1kxun.pcap")
    s = Simulator(pcap(name), device=card_path(), target=TARGET, desc_count=1024, data_mb=2, flow_entries=1 << 14)
    s.start()
    fpga.load(s.device, FIRMWARE, TARGET, (3, 1, 4), 2)
    yield s
    s.close()


def capture(device: str, bpf: str = "", faults=()) -> tuple:
    """Run a capture on the card to its end of stream, as report.flows does on a
    file: (counters, flow rows, errors reported on the way, the card's flow cache)."""
    cfg = CaptureConfig(source=device, backend="fpga", bpf=bpf, idle_timeout_s=0, active_timeout_s=0,
                        flow_ring=4096, lossless=True)
    rows, errors = [], []
    for kind, at, arg in faults:   # armed on the card; `at` counts frames of the capture that starts next
        fpga.inject_fault(device, kind, at, arg)
    with Session(cfg) as s:
        while True:
            try:
                result = s.run(timeout_ms=1000)
            except CaptureError as e:
                errors.append(e)
                assert len(errors) < 5, errors
                continue
            rows += [r.as_dict() for r in s.read_flows()]
            if result == RunResult.EOF:
                break
        while s.flush():
            rows += [r.as_dict() for r in s.read_flows()]
        rows += [r.as_dict() for r in s.read_flows()]
        return s.counters(), rows, errors, s.offload_flows()


def key(row: dict) -> tuple:
    return row["src"], row["dst"], row["sport"], row["dport"], row["proto"], row["vlan"], row["first"]


def comparable(rows) -> list:
    # flow ids are creation order: equal too, but compare the content
    return sorted((key(r), {k: v for k, v in r.items() if k != "id"}) for r in rows)


@pytest.mark.parametrize("sim", ["ndpi__1kxun.pcap", "zeek__mixed-vlan-mpls.pcap", "ndpi__http_ipv6.pcap",
                                 "chrissanders__tcp_retransmissions.pcapng", "ndpi__badpackets.pcap"],
                         indirect=True)
def test_same_flows_as_pcapfile(sim):
    path = sim.source
    counters, rows, errors, _ = capture(sim.device)
    assert not errors
    want = offline_report(path)
    assert (counters.packets, counters.bytes, counters.flows_created) == (want["packets"], want["bytes"], want["flows"])
    assert counters.malformed == want["malformed"]["total"]
    assert comparable(rows) == comparable(offline_flows(path))
    assert counters.backend_received == counters.packets and counters.backend_dropped == 0


def test_hardware_timestamps_are_the_capture_s(sim):
    counters, rows, _, _ = capture(sim.device)
    with Session(CaptureConfig(source=pcap("ndpi__1kxun.pcap"), idle_timeout_s=0, active_timeout_s=0)) as s:
        s.run()
        want = s.counters()
    assert (counters.first_ns, counters.last_ns) == (want.first_ns, want.last_ns)
    info = fpga.info(sim.device)
    assert info.clock_ns == want.last_ns and info.rx_packets == want.packets
    caps = {b.name: b for b in hwdrivers.backends()}["fpga"].capabilities
    assert {"hwtstamp", "flowoffload", "bpf"} <= set(caps)


def test_offloaded_flow_metering_agrees_with_the_core(sim):
    """The card's flow cache, read through the session, holds per conversation
    what the core's flow records add up to."""
    counters, rows, _, offload = capture(sim.device)
    totals = collections.Counter()
    packets = collections.Counter()
    for r in rows:
        (a, pa), (b, pb) = sorted([(r["src"], r["sport"]), (r["dst"], r["dport"])],
                                  key=lambda e: (ipaddress.ip_address(e[0]).packed.ljust(16, b"\0"), e[1]))
        k = (a, b, pa, pb, r["proto"], r["vlan"])
        totals[k] += r["bytes"]
        packets[k] += r["packets"]
    got_bytes = {(f.addr_a, f.addr_b, f.port_a, f.port_b, proto_name(f.proto), f.vlan): f.bytes for f in offload}
    got_packets = {(f.addr_a, f.addr_b, f.port_a, f.port_b, proto_name(f.proto), f.vlan): f.packets for f in offload}
    assert got_bytes == dict(totals) and got_packets == dict(packets)
    assert sum(packets.values()) == counters.ip_packets
    assert fpga.info(sim.device).flowcache_used == len(offload)
    with Session(CaptureConfig(source=pcap("ndpi__1kxun.pcap"))) as plain:
        with pytest.raises(CaptureError) as e:
            plain.offload_flows()
    assert e.value.code == ErrorCode.UNSUPPORTED


def test_bpf_on_the_card_matches_pcapfile(sim):
    counters, rows, _, _ = capture(sim.device, bpf="udp")
    want = offline_report(pcap("ndpi__1kxun.pcap"), "udp")
    assert (counters.packets, counters.flows_created) == (want["packets"], want["flows"])
    assert counters.backend_filtered == want["filtered_out"]


def test_capture_refused_before_firmware():
    with Simulator(pcap("ndpi__1kxun.pcap"), device=card_path(), target=TARGET, desc_count=1024, data_mb=1,
                   flow_entries=1024) as s:
        with pytest.raises(CaptureError) as e:
            Session(CaptureConfig(source=s.device, backend="fpga"))
        assert e.value.code == ErrorCode.STATE and "firmware" in e.value.message
        assert fpga.info(s.device).firmware_state == "none"
        # the card checks what it is given: another target, a damaged transfer
        with pytest.raises(CaptureError) as e:
            fpga.load(s.device, FIRMWARE, "capbox-fpga2", (1, 0, 0), 0)
        assert e.value.code == ErrorCode.ARG and "target" in e.value.message
        fpga.inject_fault(s.device, "fw_crc")
        with pytest.raises(CaptureError) as e:
            fpga.load(s.device, FIRMWARE, TARGET, (1, 0, 0), 0)
        assert e.value.code == ErrorCode.IO and "CRC" in e.value.message
        with pytest.raises(CaptureError):
            Session(CaptureConfig(source=s.device, backend="fpga"))
        fpga.load(s.device, FIRMWARE, TARGET, (1, 0, 0), 0)
        info = fpga.info(s.device)
        assert info.firmware_crc32 == zlib.crc32(FIRMWARE) and info.firmware_version == "1.0.0"
        with Session(CaptureConfig(source=s.device, backend="fpga")) as cap:
            # one capture at a time, and no load under it
            with pytest.raises(CaptureError) as e:
                Session(CaptureConfig(source=s.device, backend="fpga"))
            assert e.value.code == ErrorCode.STATE
            with pytest.raises(CaptureError) as e:
                fpga.load(s.device, FIRMWARE, TARGET, (1, 0, 1), 0)
            assert e.value.code == ErrorCode.STATE
            assert cap.run(timeout_ms=2000) in (RunResult.EOF, RunResult.TIMEOUT)


def test_no_card():
    with pytest.raises(CaptureError) as e:
        Session(CaptureConfig(source="/dev/shm/capbox-no-such-card", backend="fpga"))
    assert e.value.code == ErrorCode.NODEV
    with pytest.raises(CaptureError) as e:
        fpga.info(pcap("ndpi__1kxun.pcap"))        # a file, but not a card
    assert e.value.code == ErrorCode.NODEV


@pytest.mark.parametrize("fault, lost, message", [
    (("stall", 700, 0), 0, "stalled"),
    (("corrupt", 700, 0), 1, "corrupt DMA descriptor"),
    (("link", 700, 150), 0, "link down"),
])
def test_injected_faults_are_reported_and_recovered_from(sim, fault, lost, message):
    counters, rows, errors, _ = capture(sim.device, faults=[fault])
    assert len(errors) == 1 and errors[0].code == ErrorCode.IO and message in errors[0].message
    want = offline_report(pcap("ndpi__1kxun.pcap"))
    assert counters.packets == want["packets"] - lost
    assert counters.backend_if_dropped == lost
    info = fpga.info(sim.device)
    assert info.faults_fired == 1 and info.firmware_state == "running"
    if not lost:
        assert comparable(rows) == comparable(offline_flows(pcap("ndpi__1kxun.pcap")))
    # and the card captures normally afterwards
    again, rows2, errors2, _ = capture(sim.device)
    assert not errors2 and again.packets == want["packets"]


def test_the_sim_refuses_a_second_model_and_bad_settings():
    with Simulator(pcap("ndpi__1kxun.pcap"), device=card_path(), desc_count=1024, data_mb=1,
                   flow_entries=1024) as s:
        with pytest.raises(CaptureError) as e:
            Simulator(pcap("ndpi__1kxun.pcap"), device=s.device, desc_count=1024, data_mb=1, flow_entries=1024)
        assert e.value.code == ErrorCode.STATE
    with pytest.raises(CaptureError) as e:
        Simulator(pcap("ndpi__1kxun.pcap"), device=card_path(), desc_count=1000)
    assert e.value.code == ErrorCode.ARG
    with pytest.raises(CaptureError) as e:
        Simulator("/nonexistent.pcap", device=card_path())
    assert e.value.code == ErrorCode.OPEN
    # a file that is not a card's device is never replaced
    with pytest.raises(CaptureError) as e:
        Simulator(pcap("ndpi__1kxun.pcap"), device=pcap("zeek__wikipedia.pcap"))
    assert e.value.code == ErrorCode.OPEN and "not a card" in e.value.message
    assert os.path.getsize(pcap("zeek__wikipedia.pcap")) > 0


@pytest.mark.root
def test_the_card_fed_from_an_interface():
    """fpga-sim on a live interface (loopback, through the pcap backend): frames
    sent after the capture starts arrive through the driver with the kernel's stamps."""
    import socket
    import time
    if os.geteuid() != 0:
        pytest.skip("capturing on an interface needs root")
    with Simulator("lo", device=card_path(), target=TARGET, live=True, desc_count=1024, data_mb=1,
                   flow_entries=1024) as s:
        fpga.load(s.device, FIRMWARE, TARGET, (1, 0, 0), 0)
        with Session(CaptureConfig(source=s.device, backend="fpga", bpf="udp and port 47999")) as cap:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
                t0 = time.time_ns()
                for i in range(40):
                    tx.sendto(b"card %d" % i, ("127.0.0.1", 47999))
                deadline = time.monotonic() + 10
                while cap.counters().packets < 40 and time.monotonic() < deadline:
                    cap.run(timeout_ms=200)
            c = cap.counters()
            flows = cap.active_flows()
    assert c.packets == 40 and c.first_ns >= t0 - 10**9
    assert [(f.dport, f.total_packets) for f in flows] == [(47999, 40)]
