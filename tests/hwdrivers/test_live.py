"""Live capture, driven for real: real captures replayed with tcpreplay into
one end of a veth pair (tests/hwdrivers/conftest.py), captured on the other
end by the afpacket and pcap backends, in-process (hwdrivers.Session) and
through `capbox capture --json`, and held to the offline analysis of the same
file (`capbox analyze --json`, `capbox flows`).

Nothing but tcpreplay talks on the pair (IPv6 is off, no addresses), so the
counts are compared exactly, with no filter to hide stray packets.
"""
import collections
import contextlib
import json
import os
import random
import struct
import subprocess
import threading
import time

import pytest

from hwdrivers import CaptureError, ErrorCode, RunResult, backends
from tests.conftest import ROOT, pcap
from tests.hwdrivers.conftest import CAPBOX, cli_offline_report, offline_flows, offline_report

pytestmark = pytest.mark.root

LIVE = ["afpacket", "pcap"]
MIXED = "ndpi__1kxun.pcap"       # 1723 packets, 197 flows, frames up to 37 kB
SMALL = "zeek__wikipedia.pcap"   # 136 packets, 34 flows, TCP and UDP
SETTLE_S = 0.2                   # after the expected count: time for a stray packet to show
DRAIN_TIMEOUT_S = 10


# -- helpers -------------------------------------------------------------------

class Runner:
    """Session.run() in its own thread, as the agent runs it."""

    def __init__(self, session, **kwargs):
        self.session = session
        self.result = None
        self.error = None
        self.returned_at = None
        self.thread = threading.Thread(target=self._body, kwargs=kwargs, daemon=True,
                                       name=f"capture-{session.config.backend}")
        self.thread.start()

    def _body(self, **kwargs):
        try:
            self.result = self.session.run(**kwargs)
        except BaseException as e:  # re-raised in the test's thread
            self.error = e
        self.returned_at = time.monotonic()

    def join(self, timeout=5.0):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"run() did not return within {timeout} s"
        if self.error is not None:
            raise self.error
        return self.result

    def stop(self, timeout=5.0):
        self.session.stop()
        return self.join(timeout)


def wait_for(predicate, timeout=DRAIN_TIMEOUT_S, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def drain(session, expected, key=lambda c: c.packets, timeout=DRAIN_TIMEOUT_S):
    """Wait for `expected` packets, then a little longer so extra ones would show."""
    wait_for(lambda: key(session.counters()) >= expected, timeout=timeout)
    time.sleep(SETTLE_S)
    return session.counters()


@contextlib.contextmanager
def replayed(veth, path, expected=None, timeout=DRAIN_TIMEOUT_S, **config):
    """A session on veth.rx (config: CaptureConfig fields) that captured one
    replay of path: yields (session, counters, what tcpreplay sent), run() stopped."""
    with veth.session(**config) as s:
        run = Runner(s)
        sent = veth.replay(path)
        c = drain(s, sent["packets"] if expected is None else expected, timeout=timeout)
        assert run.stop() == RunResult.BREAK
        yield s, c, sent


def wait_filter_applied(session):
    """set_filter() is applied by run() between two polls: two more polls and it is in."""
    p0 = session.counters().polls
    assert wait_for(lambda: session.counters().polls >= p0 + 2, timeout=5), "run() stopped polling"


def need_backend(name):
    info = {b.name: b for b in backends()}
    if name not in info:
        pytest.skip(f"backend {name} is not compiled in")
    if not info[name].available:
        pytest.skip(f"backend {name} cannot run here: {info[name].reason}")


def flow_key(d: dict) -> tuple:
    """What a flow must have the same live and offline (not its timestamps).  A segment that fills a hole is
    out of order within the flow's RTT of the data past it and a retransmission after: that split follows the
    replay's timing (a loaded host stretches tcpreplay's gaps), so live and offline are held to their sum."""
    return (d["src"], d["dst"], d["sport"], d["dport"], d["proto"], d["vlan"], d["packets_fwd"],
            d["packets_rev"], d["bytes_fwd"], d["bytes_rev"], d["retransmissions"] + d["out_of_order"],
            d["state"], d["app"])


def live_flows(records) -> collections.Counter:
    return collections.Counter(flow_key(r.as_dict()) for r in records)


def layers(counters) -> dict:
    return {k: v for k, v in counters.layer_packets.items() if v}


def all_sent(veth, sent, path):
    """Byte and flow totals compare only when every frame of the file went out."""
    want = offline_report(path)["packets"]
    if sent["packets"] != want:
        pytest.skip(f"tcpreplay sent {sent['packets']} of {want} frames (veth MTU {veth.mtu}); "
                    "totals need every frame")


def cli_ready(proc, ifindex, timeout=15):
    """Wait until the capbox process holds a packet socket bound to ifindex."""
    def bound():
        if proc.poll() is not None:
            return True
        try:
            inodes = set()
            for fd in os.listdir(f"/proc/{proc.pid}/fd"):
                link = os.readlink(f"/proc/{proc.pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
            with open(f"/proc/{proc.pid}/net/packet") as f:
                rows = [line.split() for line in f.read().splitlines()[1:]]
        except (FileNotFoundError, ProcessLookupError):
            return False
        return any(len(r) >= 9 and int(r[4]) == ifindex and r[8] in inodes for r in rows)

    assert wait_for(bound, timeout=timeout), "capbox capture did not open the interface in time"
    assert proc.poll() is None, f"capbox capture exited early: {proc.communicate()}"
    time.sleep(0.2)  # the drop-all gate opens right after the bind


# -- every packet, byte and flow --------------------------------------------------

@pytest.mark.parametrize("backend", LIVE)
def test_session_replay_matches_offline(veth, backend):
    """Replay a real mixed capture: the live counters, protocol mix and flow
    records equal the offline analysis of the file, and nothing is dropped."""
    need_backend(backend)
    path = pcap(MIXED)
    want = offline_report(path)
    wall0 = time.time_ns()
    with replayed(veth, path, backend=backend, flow_ring=1 << 14, idle_timeout_s=0,
                  active_timeout_s=0) as (s, c, sent):
        wall1 = time.time_ns()
        assert c.packets == sent["packets"], sent["output"]
        assert c.backend_dropped == 0 and c.backend_if_dropped == 0
        assert c.backend_received >= c.packets
        assert wall0 <= c.first_ns <= c.last_ns <= wall1, "live timestamps are not wall-clock ns"
        all_sent(veth, sent, path)
        assert sent["bytes"] == want["bytes"]
        assert (c.packets, c.bytes, c.captured_bytes) == (want["packets"], want["bytes"], want["captured_bytes"])
        assert c.malformed == want["malformed"]["total"]
        assert c.truncated == want["truncated"]["total"]
        assert c.ip_packets + c.arp_packets + c.other_packets + c.malformed == c.packets
        assert layers(c) == {k: v["packets"] for k, v in want["protocols"]["layers"].items()}
        assert {k: v for k, v in c.app_packets.items() if v} == \
            {k: v["packets"] for k, v in want["protocols"]["applications"].items()}
        assert c.flows_created == want["flows"]
        assert {"tcp": c.flows_tcp, "udp": c.flows_udp, "icmp": c.flows_icmp,
                "other": c.flows_other} == want["flows_by_proto"]
        assert s.flush() == 0
        records = s.read_flows()
        assert live_flows(records) == collections.Counter(flow_key(f) for f in offline_flows(path))
        assert all(wall0 <= r.first_ns <= r.last_ns <= wall1 for r in records)


@pytest.mark.parametrize("backend", LIVE)
def test_cli_capture_json_matches_offline(veth, backend):
    """`capbox capture IFACE --backend B --count N --json` as a subprocess (--duration only as a safety
    net: on a loaded machine a replay can take longer than any fixed capture time)."""
    need_backend(backend)
    path = pcap(MIXED)
    want = cli_offline_report(path)
    proc = subprocess.Popen(veth.argv(*CAPBOX, "capture", veth.rx, "--backend", backend,
                                      "--count", str(want["packets"]), "--duration", "30", "--json"),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        cli_ready(proc, veth.ifindex(veth.rx))
        sent = veth.replay(path)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    r = json.loads(out)
    assert r["error"] is None
    assert r["backend"] == backend and r["file"] == veth.rx and r["link"] == "EN10MB"
    assert r["packets"] == sent["packets"], sent["output"]
    assert r["dropped"] == 0
    assert r["received"] >= r["packets"]
    all_sent(veth, sent, path)
    for key in ("packets", "bytes", "captured_bytes", "flows", "flows_by_proto", "malformed",
                "truncated", "protocols", "top_talkers"):
        assert r[key] == want[key], key
    assert r["duration_s"] < 2


def frame_lengths(path):
    """Wire lengths of the records of a classic pcap file."""
    with open(path, "rb") as f:
        data = f.read()
    order = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<",
             b"\xa1\xb2\xc3\xd4": ">", b"\xa1\xb2\x3c\x4d": ">"}[data[:4]]
    out, off = [], 24
    while off + 16 <= len(data):
        incl, orig = struct.unpack_from(order + "II", data, off + 8)
        out.append(orig)
        off += 16 + incl
    return out


@pytest.mark.parametrize("backend", LIVE)
def test_snaplen_cuts_captured_bytes_only(veth, backend):
    """A 96-byte snap length: wire bytes, flows and packets as offline, captured
    bytes cut, and every longer frame counted as truncated by snaplen."""
    need_backend(backend)
    path = pcap(MIXED)
    want = offline_report(path)
    lengths = frame_lengths(path)
    with replayed(veth, path, backend=backend, snaplen=96) as (s, c, sent):
        all_sent(veth, sent, path)
        assert (c.packets, c.bytes) == (want["packets"], want["bytes"])
        assert c.captured_bytes == sum(min(n, 96) for n in lengths)
        assert c.truncated_by["snaplen"] == sum(n > 96 for n in lengths) == c.truncated
        assert c.malformed == 0
        assert c.flows_created == want["flows"]


def test_idle_flows_expire_on_wall_clock(veth):
    """Live, time moves on without packets: idle flows end about idle_timeout_s
    after the traffic stops, as records in the flow ring."""
    need_backend("afpacket")
    path = pcap(SMALL)
    want = offline_report(path)
    with veth.session(backend="afpacket", idle_timeout_s=1, active_timeout_s=0, flow_ring=1 << 10) as s:
        run = Runner(s)
        sent = veth.replay(path)
        assert sent["packets"] == want["packets"], sent["output"]
        c = drain(s, want["packets"])
        idle_s = (time.time_ns() - c.last_ns) / 1e9
        assert c.flows_created == want["flows"]
        assert c.flows_expired_idle == 0 or idle_s >= 1, f"flows ended after {idle_s:.2f} s idle"
        assert wait_for(lambda: s.counters().flows_active == 0, timeout=8), "idle flows never expired"
        c = s.counters()
        assert c.flows_expired_idle == want["flows"]
        records = s.read_flows()
        assert len(records) == want["flows"] and {r.end_reason for r in records} == {"idle"}
        assert sum(r.total_packets for r in records) == c.ip_packets
        assert run.stop() == RunResult.BREAK


# -- drops are reported, not hidden -------------------------------------------------

@pytest.mark.parametrize("backend", LIVE)
def test_overflowing_ring_reports_drops(veth, backend):
    """A 1 MB ring nobody reads while 2.5 MB arrive: the kernel drops, and the
    counters say so: every packet sent is either captured or counted dropped."""
    need_backend(backend)
    path = pcap(MIXED)
    extra = {"block_size_kb": 64} if backend == "afpacket" else {}
    with veth.session(backend=backend, buffer_size_mb=1, **extra) as s:
        sent = veth.replay(path)
        time.sleep(0.1)
        run = Runner(s)
        c = drain(s, sent["packets"], key=lambda c: c.packets + c.backend_dropped)
        assert run.stop() == RunResult.BREAK
        assert c.backend_dropped > 0, "a 1 MB ring cannot hold 2.5 MB: drops went unreported"
        assert 0 < c.packets < sent["packets"]
        assert c.packets + c.backend_dropped == sent["packets"]
        assert c.backend_received == sent["packets"]


# -- BPF ------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", LIVE)
def test_bpf_udp_live_matches_offline(veth, backend):
    """The kernel filter `udp` keeps what `capbox analyze --bpf udp` keeps."""
    need_backend(backend)
    path = pcap(MIXED)
    want = offline_report(path, "udp")
    assert 0 < want["packets"] < offline_report(path)["packets"]
    with replayed(veth, path, expected=want["packets"], backend=backend, bpf="udp") as (s, c, sent):
        all_sent(veth, sent, path)
        assert (c.packets, c.bytes) == (want["packets"], want["bytes"])
        assert c.flows_created == want["flows"] == c.flows_udp
        assert layers(c) == {k: v["packets"] for k, v in want["protocols"]["layers"].items()}
        assert c.backend_dropped == 0
        assert c.backend_received >= c.packets


@pytest.mark.parametrize("backend", LIVE)
def test_set_filter_at_run_time(veth, backend):
    """set_filter() from another thread while run() captures: all, then udp
    only, then all again."""
    need_backend(backend)
    path = pcap(SMALL)
    n_all = offline_report(path)["packets"]
    n_udp = offline_report(path, "udp")["packets"]
    assert 0 < n_udp < n_all
    with veth.session(backend=backend) as s:
        time.sleep(0.1)
        run = Runner(s)
        expected = 0
        for bpf, n in (("", n_all), ("udp", n_udp), ("", n_all)):
            if expected:
                s.set_filter(bpf)
                wait_filter_applied(s)
            sent = veth.replay(path)
            assert sent["packets"] == n_all, sent["output"]
            expected += n
            c = drain(s, expected)
            assert c.packets == expected, f"after the {bpf or 'empty'} filter"
        assert c.layer_packets["udp"] == 2 * offline_report(path)["protocols"]["layers"]["udp"]["packets"] + n_udp
        assert run.stop() == RunResult.BREAK


@pytest.mark.parametrize("backend", LIVE)
def test_bad_filter_is_capture_error(veth, backend):
    """A filter that does not compile is CaptureError(FILTER), at open and from
    set_filter(); a refused set_filter() leaves the old filter in place."""
    need_backend(backend)
    with pytest.raises(CaptureError) as e:
        veth.session(backend=backend, bpf="udp and and")
    assert e.value.code == ErrorCode.FILTER
    path = pcap(SMALL)
    n_udp = offline_report(path, "udp")["packets"]
    with veth.session(backend=backend, bpf="udp") as s:
        run = Runner(s)
        with pytest.raises(CaptureError) as e:
            s.set_filter("port 99999")
        assert e.value.code == ErrorCode.FILTER
        with pytest.raises(CaptureError) as e:
            s.set_filter("no such ( filter")
        assert e.value.code == ErrorCode.FILTER
        wait_filter_applied(s)
        # the refused filters left the session capturing with the one it had
        veth.replay(path)
        c = drain(s, n_udp)
        assert c.packets == n_udp
        assert run.stop() == RunResult.BREAK


# -- VLAN ------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", LIVE)
@pytest.mark.parametrize("name", ["zeek__q-in-q.pcap", "zeek__mixed-vlan-mpls.pcap"])
def test_vlan_ids_match_offline(veth, backend, name):
    """The veth receive path strips the outer 802.1Q tag into the skb (the
    packet socket sees it as metadata); the backend puts it back, so flows
    carry the same VLAN id, and packets the same length, as offline."""
    need_backend(backend)
    path = pcap(name)
    want = offline_report(path)
    want_flows = offline_flows(path)
    assert any(f["vlan"] for f in want_flows)
    with replayed(veth, path, backend=backend, flow_ring=1 << 12, idle_timeout_s=0,
                  active_timeout_s=0) as (s, c, sent):
        assert sent["packets"] == want["packets"], sent["output"]
        assert (c.packets, c.bytes, c.captured_bytes) == (want["packets"], want["bytes"], want["captured_bytes"])
        assert c.malformed == 0
        assert layers(c) == {k: v["packets"] for k, v in want["protocols"]["layers"].items()}
        active = {(r.src, r.dst, r.sport, r.dport, r.proto_name, r.vlan) for r in s.active_flows(limit=1000)}
        assert active == {(f["src"], f["dst"], f["sport"], f["dport"], f["proto"], f["vlan"]) for f in want_flows}
        s.flush()
        assert live_flows(s.read_flows()) == collections.Counter(flow_key(f) for f in want_flows)


@pytest.mark.parametrize("backend", ["afpacket", "pcap"])
@pytest.mark.parametrize("name,bpf", [("zeek__q-in-q.pcap", "vlan 13"),
                                      ("zeek__mixed-vlan-mpls.pcap", "vlan")])
def test_vlan_filter_live_matches_offline(veth, backend, name, bpf):
    """`vlan` filters keep live what they keep offline (the tag the kernel
    stripped must count, as libpcap makes it count)."""
    need_backend(backend)
    path = pcap(name)
    want = offline_report(path, bpf)
    assert want["packets"] > 0
    # where the filter wrongly drops everything nothing arrives: do not wait long
    with replayed(veth, path, expected=want["packets"], timeout=0.5, backend=backend, bpf=bpf) as (s, c, sent):
        assert (c.packets, c.bytes) == (want["packets"], want["bytes"])


# -- fanout ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["hash", "lb"])
def test_fanout_group_counts_every_packet_once(veth, mode):
    """Two afpacket sessions in one fanout group: each packet goes to exactly one."""
    need_backend("afpacket")
    path = pcap(MIXED)
    want = offline_report(path)
    group = random.randint(1, 0xffff)
    with veth.session(backend="afpacket", fanout_group=group, fanout_mode=mode) as a, \
            veth.session(backend="afpacket", fanout_group=group, fanout_mode=mode) as b:
        time.sleep(0.1)
        runs = [Runner(a), Runner(b)]
        sent = veth.replay(path)
        wait_for(lambda: a.counters().packets + b.counters().packets >= sent["packets"])
        time.sleep(SETTLE_S)
        ca, cb = a.counters(), b.counters()
        assert [r.stop() for r in runs] == [RunResult.BREAK] * 2
        assert ca.packets > 0 and cb.packets > 0, "one member of the group got everything"
        assert ca.packets + cb.packets == sent["packets"]
        for c in (ca, cb):
            assert c.backend_dropped == 0
            assert c.backend_received == c.packets
        if mode == "lb":
            assert abs(ca.packets - cb.packets) <= 1, "lb is round robin"
        all_sent(veth, sent, path)
        assert ca.bytes + cb.bytes == want["bytes"]
        assert ca.malformed + cb.malformed == 0


def test_fanout_group_is_per_interface(veth):
    """A second socket of the same group on another interface is refused by the kernel."""
    need_backend("afpacket")
    group = random.randint(1, 0xffff)
    with veth.session(backend="afpacket", fanout_group=group):
        with pytest.raises(CaptureError) as e:
            veth.session(backend="afpacket", source=veth.tx, fanout_group=group)
        assert e.value.code == ErrorCode.OPEN


# -- errors, stop ---------------------------------------------------------------------

@pytest.mark.parametrize("backend", LIVE)
def test_nonexistent_interface(veth, backend):
    """Opening an interface that does not exist is CaptureError(NODEV)."""
    need_backend(backend)
    with pytest.raises(CaptureError) as e:
        veth.session(backend=backend, source="cbxnosuchdev0")
    assert e.value.code == ErrorCode.NODEV


@pytest.mark.parametrize("backend", LIVE)
def test_cli_nonexistent_interface(veth, backend):
    """`capbox capture NOSUCHDEV`: one error line, exit status 1, no report."""
    need_backend(backend)
    p = subprocess.run(veth.argv(*CAPBOX, "capture", "cbxnosuchdev0", "--backend", backend,
                                 "--duration", "1", "--json"),
                       cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert p.stdout == ""
    assert p.stderr.startswith("capbox: error: ") and p.stderr.count("\n") == 1, p.stderr


@pytest.mark.parametrize("backend", LIVE)
def test_stop_from_another_thread(veth, backend):
    """stop() makes a run() with no timeout return BREAK within ~100 ms, idle or busy."""
    need_backend(backend)
    path = pcap(MIXED)
    with veth.session(backend=backend) as s:
        run = Runner(s, timeout_ms=-1)
        time.sleep(0.3)
        assert run.thread.is_alive()
        t0 = time.monotonic()
        assert run.stop() == RunResult.BREAK
        assert run.returned_at - t0 < 0.5
        assert s.counters().packets == 0
        # again while packets arrive
        replay = subprocess.Popen(veth.argv("tcpreplay", f"--intf1={veth.tx}", "--pps=2000", path),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            run = Runner(s, timeout_ms=-1)
            assert wait_for(lambda: s.counters().packets > 0, timeout=5)
            t0 = time.monotonic()
            assert run.stop() == RunResult.BREAK
            assert run.returned_at - t0 < 0.5
        finally:
            replay.terminate()
            replay.wait(timeout=30)


@pytest.mark.parametrize("backend", LIVE)
def test_run_timeout_on_idle_interface(veth, backend):
    """Nothing on the wire: run(timeout_ms) returns TIMEOUT on time."""
    need_backend(backend)
    with veth.session(backend=backend) as s:
        t0 = time.monotonic()
        assert s.run(timeout_ms=250) == RunResult.TIMEOUT
        assert 0.25 <= time.monotonic() - t0 < 1.0
        assert s.counters().packets == 0


@pytest.mark.parametrize("backend", LIVE)
def test_close_from_another_thread(veth, backend):
    """close() while run() captures in another thread: run() returns BREAK, then
    the session refuses every call."""
    need_backend(backend)
    s = veth.session(backend=backend)
    run = Runner(s, timeout_ms=-1)
    time.sleep(0.2)
    t0 = time.monotonic()
    s.close()
    assert time.monotonic() - t0 < 1.0
    assert run.join() == RunResult.BREAK
    with pytest.raises(CaptureError) as e:
        s.counters()
    assert e.value.code == ErrorCode.STATE


@pytest.mark.parametrize("backend", LIVE)
def test_interface_removed_while_capturing(veth, backend):
    """The interface goes away under a running capture: run() raises an IO error at once."""
    need_backend(backend)
    with veth.session(backend=backend) as s:
        run = Runner(s, timeout_ms=-1)
        time.sleep(0.2)
        subprocess.run(["ip", "-n", veth.ns, "link", "del", veth.tx], check=True, timeout=20)
        t0 = time.monotonic()
        with pytest.raises(CaptureError) as e:
            run.join(timeout=3)
        assert e.value.code == ErrorCode.IO
        assert run.returned_at - t0 < 1.0


@pytest.mark.parametrize("backend", LIVE)
def test_run_max_packets_stops_at_budget(veth, backend):
    """run(max_packets=10) with 136 packets waiting processes 10 and returns BUDGET."""
    need_backend(backend)
    path = pcap(SMALL)
    with veth.session(backend=backend) as s:
        sent = veth.replay(path, pps=None)
        assert sent["packets"] > 10
        time.sleep(0.3)  # everything is queued in the ring before run() starts
        assert s.run(max_packets=10, timeout_ms=2000) == RunResult.BUDGET
        assert s.counters().packets == 10


# -- what a live capture hands on: flow export and recording --------------------------

@pytest.mark.parametrize("backend", LIVE)
def test_live_capture_exports_and_records(veth, backend, nfcapd, tmp_path):
    """The exporters and the recorder work on live backends as on files: nfcapd
    gets the flows `capbox flows` finds in the file, the recording holds every
    frame tcpreplay sent, byte for byte, in a file tshark reads."""
    from hwdrivers import ExporterConfig, RecordConfig
    from tests.collector import expected_uniflows, nf_key
    from tests.pcapfiles import read_packets, read_pcapng
    path = pcap(SMALL)
    collector = nfcapd()
    host, port = collector.address.split(":")
    with veth.session(backend=backend) as s:
        # made in this thread, the exporter's socket is in the root namespace, with nfcapd
        s.add_exporter(ExporterConfig(host, int(port), "ipfix", export_interval_ms=100))
        s.start_recording(RecordConfig(str(tmp_path), if_name=veth.rx, flush_ms=100))
        run = Runner(s)
        sent = veth.replay(path)
        drain(s, sent["packets"])
        assert run.stop() == RunResult.BREAK
        all_sent(veth, sent, path)
        s.flush()
        st = s.stop_recording()
        (e,) = s.exporters()
    assert st.packets == sent["packets"] and st.dropped == 0 and st.files == st.files_closed == 1
    (f,) = tmp_path.glob("capbox-*.pcapng")
    rec = read_pcapng(f)
    assert rec["interfaces"][0]["name"] == veth.rx
    assert [(w, d) for _, w, d in rec["packets"]] == [(w, d) for _, w, d in read_packets(path)]
    got = collections.Counter((nf_key(r), r["in_packets"], r["in_bytes"]) for r in collector.records())
    assert got == collections.Counter(expected_uniflows(offline_flows(path))) and e.records_dropped == 0
