"""Flow export (hwdrivers/src/ipfix.c) through `capbox export`, read back by
the real collectors: nfcapd/nfdump must hold, flow for flow, the packets and
bytes `capbox flows` reports for the same capture, for IPFIX, NetFlow v9 and
v5; tshark's CFLOW dissector must decode every message without a warning."""
import collections
import json
import subprocess
import sys

import pytest

from hwdrivers import CaptureConfig, CaptureError, ErrorCode, ExporterConfig, Session
from tests.collector import TcpRelay, UdpSink, expected_uniflows, nf_key, tshark_decode
from tests.conftest import ROOT, pcap
from tests.hwdrivers.conftest import offline_flows

CAPBOX = [sys.executable, "-m", "agent"]


def export(*args, check=True) -> subprocess.CompletedProcess:
    p = subprocess.run([*CAPBOX, "export", *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def export_json(*args) -> dict:
    return json.loads(export(*args, "--json").stdout)


def export_decoded(tshark: str, tmp_path, path: str, *args) -> tuple:
    """(report, sink, capture of the datagrams) of an export to a UDP sink that tshark decodes without warnings."""
    sink = UdpSink()
    r = export_json(path, "--collector", sink.address, *args)
    sink.stop()
    cap = tmp_path / "export.pcap"
    sink.write_pcap(cap)
    warnings, text = tshark_decode(tshark, cap, sink.port)
    assert warnings == [], text
    return r, sink, cap


def nf_uniflows(records) -> collections.Counter:
    return collections.Counter((nf_key(r), r["in_packets"], r["in_bytes"]) for r in records)


@pytest.mark.parametrize("source, version", [
    ("synthetic", "ipfix"), ("synthetic", "v9"), ("synthetic", "v5"),
    ("zeek__wikipedia.pcap", "ipfix"), ("zeek__mixed-vlan-mpls.pcap", "v9"),
])
def test_nfcapd_holds_every_flow_of_capbox_flows(source, version, nfcapd, synthetic_pcap):
    path = synthetic_pcap[0] if source == "synthetic" else pcap(source)
    collector = nfcapd()
    r = export_json(path, "--collector", collector.address, "--version", version)
    rows = offline_flows(path)
    want = expected_uniflows(rows, family=4 if version == "v5" else 0)
    got = nf_uniflows(collector.records())
    if version == "v5":  # v5 records have no VLAN
        want = [((*key[:5], 0), packets, bytes_) for key, packets, bytes_ in want]
    assert got == collections.Counter(want)
    (e,) = r["exporters"]
    assert e["records"] == len(want) and e["records_dropped"] == 0 and e["flows"] == len(rows)
    # v5 has no IPv6: those directions are counted, not sent
    assert e["records_skipped"] == (len(expected_uniflows(rows)) - len(want) if version == "v5" else 0)
    assert collector.summary()["Sequence failures"] == "0"


def test_synthetic_uniflows_equal_the_generators_truth(nfcapd, synthetic_pcap):
    """The count softflowd -> nfcapd gets on the benchmark capture: capbox must match it."""
    path, truth = synthetic_pcap
    collector = nfcapd()
    export(path, "--collector", collector.address, "--version", "v9")
    s = collector.summary()
    assert int(s["Flows"]) == truth["uniflows"]
    assert int(s["Packets"]) == truth["packets"]
    assert int(s["Flows_icmp"]) == truth["by_type"]["icmp"]["uniflows"]


def test_icmp_type_and_code_reach_the_collector(nfcapd, synthetic_pcap):
    """Echo requests and replies are separate records with their type (8 / 0, 128 / 129)."""
    path, _ = synthetic_pcap
    collector = nfcapd()
    export(path, "--collector", collector.address)
    icmp = [r for r in collector.records() if r["proto"] in (1, 58)]
    assert icmp
    kinds = collections.Counter((r["proto"], r["icmp_type"], r["icmp_code"]) for r in icmp)
    assert set(kinds) == {(1, 8, 0), (1, 0, 0), (58, 128, 0), (58, 129, 0)}


def test_biflow_records_carry_both_directions(nfcapd, synthetic_pcap):
    path, truth = synthetic_pcap
    collector = nfcapd()
    r = export_json(path, "--collector", collector.address, "--biflow")
    records = collector.records()
    assert len(records) == truth["flows"] == r["exporters"][0]["records"]
    got = collections.Counter((nf_key(x), x["in_packets"], x["in_bytes"], x.get("out_packets", 0),
                               x.get("out_bytes", 0)) for x in records)
    want = collections.Counter()
    for row in offline_flows(path):
        (key, _, _), *_ = expected_uniflows([{**row, "packets_fwd": 1, "packets_rev": 0}])
        want[(key, row["packets_fwd"], row["bytes_fwd"], row["packets_rev"], row["bytes_rev"])] += 1
    assert got == want


def test_several_collectors_get_the_same_flows(nfcapd):
    path = pcap("zeek__wikipedia.pcap")
    a, b = nfcapd("a"), nfcapd("b")
    r = export_json(path, "--collector", a.address, "--collector", b.address, "--version", "v9")
    assert len(r["exporters"]) == 2
    assert nf_uniflows(a.records()) == nf_uniflows(b.records()) == collections.Counter(
        expected_uniflows(offline_flows(path)))


def test_ipfix_over_tcp(nfcapd, synthetic_pcap):
    """The stream is cut into messages by their length fields and each handed to nfcapd."""
    path, _ = synthetic_pcap
    collector = nfcapd()
    relay = TcpRelay(collector.address)
    r = export_json(path, "--collector", relay.address, "--transport", "tcp")
    relay.join()
    assert relay.errors == [] and relay.connections == 1
    assert relay.messages == r["exporters"][0]["messages"] > 1
    assert nf_uniflows(collector.records()) == collections.Counter(expected_uniflows(offline_flows(path)))


def test_active_timeout_splits_long_flows_and_keeps_the_totals(nfcapd, synthetic_pcap):
    path, truth = synthetic_pcap
    collector = nfcapd()
    export(path, "--collector", collector.address, "--active-timeout", "5")
    s = collector.summary()
    assert int(s["Flows"]) > truth["uniflows"]
    assert int(s["Packets"]) == truth["packets"]
    assert int(s["Bytes"]) == truth["bytes_frames"]


@pytest.mark.parametrize("version, extra", [
    ("ipfix", ["--observation-domain", "77"]), ("ipfix", ["--biflow"]), ("ipfix", ["--sample", "3"]),
    ("v9", ["--sample", "3"]), ("v5", ["--sample", "3"]),
])
def test_tshark_decodes_every_message_without_warnings(version, extra, tshark, tmp_path, synthetic_pcap):
    path, truth = synthetic_pcap
    r, sink, cap = export_decoded(tshark, tmp_path, path, "--version", version, "--mtu", 1400, *extra)
    e = r["exporters"][0]
    assert len(sink.datagrams) == e["messages"] and max(map(len, sink.datagrams)) <= 1400
    fields = subprocess.run([tshark, "-r", str(cap), "-d", f"udp.port=={sink.port},cflow", "-T", "fields",
                             "-E", "occurrence=a", "-e", "cflow.srcaddr", "-e", "cflow.srcaddrv6",
                             "-e", "cflow.sampling_interval", "-e", "cflow.samplingmode", "-e", "cflow.od_id",
                             "-e", "cflow.samplerate",
                             "-e", "cflow.sequence"],
                            capture_output=True, text=True, timeout=60, check=True).stdout.splitlines()
    decoded = sum(len(f.split(",")) for line in fields for f in line.split("\t")[:2] if f)
    assert decoded == e["records"]
    if "--sample" in extra:
        interval = {v for line in fields for v in line.split("\t")[2].split(",") if v}
        if version == "v5":  # the header's two bits of mode and fourteen of interval
            assert {line.split("\t")[3] for line in fields} == {"1"}
            assert {int(line.split("\t")[5]) for line in fields} == {3}
        else:
            assert interval == {"3"}
        assert r["packets_unsampled"] > 0
    if version == "ipfix":
        domains = {v for line in fields for v in line.split("\t")[4].split(",")}
        assert domains == {"77" if "--observation-domain" in extra else "0"}


def test_sequence_numbers_per_version(synthetic_pcap):
    """IPFIX counts data records, v9 export packets, v5 flows: checked message by message."""
    import struct
    path, _ = synthetic_pcap
    for version in ("ipfix", "v9", "v5"):
        sink = UdpSink()
        export(path, "--collector", sink.address, "--version", version)
        seq = 0
        for d in sink.stop():
            if version == "ipfix":
                assert struct.unpack("!HHIII", d[:16])[3] == seq
                seq += _ipfix_data_records(d)
            elif version == "v9":
                assert struct.unpack("!HHIIII", d[:20])[4] == seq
                seq += 1
            else:
                count, = struct.unpack("!H", d[2:4])
                assert struct.unpack("!I", d[16:20])[0] == seq and count <= 30
                seq += count


def _ipfix_data_records(msg: bytes) -> int:
    """Data records in one IPFIX message, from its templates (tests only: fixed-length fields)."""
    import struct
    sizes = _ipfix_data_records.sizes
    n, off = 0, 16
    while off < len(msg):
        set_id, length = struct.unpack("!HH", msg[off:off + 4])
        body = msg[off + 4:off + length]
        if set_id in (2, 3):
            p = 0
            while p + 4 <= len(body):
                tid, count = struct.unpack("!HH", body[p:p + 4])
                p += 6 if set_id == 3 else 4
                size = 0
                for _ in range(count):
                    ie, ln = struct.unpack("!HH", body[p:p + 4])
                    p += 8 if ie & 0x8000 else 4
                    size += ln
                sizes[tid] = size
        else:
            n += len(body) // sizes[set_id]
        off += length
    return n


_ipfix_data_records.sizes = {}


def test_bad_collectors_are_refused_with_a_message():
    path = pcap("zeek__wikipedia.pcap")
    for args, words in [
        (["--collector", "no-such-host.invalid:9995"], "cannot resolve"),
        (["--collector", "127.0.0.1:99999"], "out of range"),
        (["--collector", "127.0.0.1:x"], "not a number"),
        (["--collector", "127.0.0.1:9", "--version", "v9", "--transport", "tcp"], "only IPFIX"),
        (["--collector", "127.0.0.1:9", "--version", "v5", "--biflow"], "IPFIX only"),
        (["--collector", "127.0.0.1:1", "--transport", "tcp"], "cannot connect"),
        (["--collector", "127.0.0.1:9", "--sample", "20000"], "sample_rate"),
    ]:
        p = export(path, *args, check=False)
        assert p.returncode == 1 and words in p.stderr, (args, p.stderr)
        assert "Traceback" not in p.stderr


def test_session_exporters_from_python():
    """The Python face: add, list with counters, remove; bad configurations raise CaptureError."""
    sink = UdpSink()
    host, port = sink.address.split(":")
    with Session(CaptureConfig(source=pcap("zeek__wikipedia.pcap"), idle_timeout_s=0, active_timeout_s=0)) as s:
        a = s.add_exporter(ExporterConfig(host, int(port), "ipfix", export_interval_ms=0))
        b = s.add_exporter(ExporterConfig(host, int(port), "v5"))
        assert [e.id for e in s.exporters()] == [a, b]
        while s.run().name != "EOF":
            pass
        s.flush()
        stats = {e.id: e for e in s.exporters()}
        s.remove_exporter(b)
        assert [e.id for e in s.exporters()] == [a]
        with pytest.raises(CaptureError) as err:
            s.remove_exporter(b)
        assert err.value.code == ErrorCode.ARG
        for bad in (ExporterConfig("not-an-ip"), ExporterConfig("127.0.0.1", version="v7"),
                    ExporterConfig("127.0.0.1", transport="sctp"), ExporterConfig("127.0.0.1", 0)):
            with pytest.raises(CaptureError):
                s.add_exporter(bad)
        with pytest.raises(CaptureError) as err:
            s.add_exporter(ExporterConfig("127.0.0.1", 9995, mtu=100))
        assert err.value.code == ErrorCode.ARG
    sink.stop()
    assert stats[a].records > 0 and stats[a].flows == stats[b].flows
    assert sum(len(d) for d in sink.datagrams) == stats[a].bytes + stats[b].bytes


@pytest.mark.parametrize("extra", [[], ["--biflow"]])
def test_ipfix_carries_the_vxlan_segment_and_inner_addresses(extra, tshark, tmp_path):
    # MANIFEST v37: every flow inside VXLAN VNI 1111; layer2SegmentId = 0x01 (VXLAN) << 56 | VNI
    r, sink, cap = export_decoded(tshark, tmp_path, pcap("ndpi__vxlan.pcap"), "--version", "ipfix", *extra)
    out = subprocess.run([tshark, "-r", str(cap), "-d", f"udp.port=={sink.port},cflow", "-T", "fields",
                          "-E", "occurrence=a", "-E", "aggregator=;", "-E", "separator=/t",
                          "-e", "cflow.srcaddr", "-e", "cflow.layer2_segment_id"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    sources, segments = [], []
    for line in out.splitlines():
        src, segment = line.split("\t")
        sources += [a for a in src.split(";") if a]
        segments += [int(v, 0) for v in segment.split(";") if v]
    assert set(sources) <= {"10.10.20.4", "8.8.8.8", "157.240.224.35"} and "10.10.20.4" in sources
    assert len(sources) == len(segments) == r["exporters"][0]["records"]
    assert set(segments) == {1 << 56 | 1111}
