"""ARP, IPv6 neighbour discovery and DHCP records parsed in C against
tshark's decoding of the shared captures, and ARP records on ARP events."""
import dataclasses
import subprocess

import pytest

from hwdrivers import records
from tests.conftest import pcap
from tests.pcapfiles import read_pcap

ND_FIELDS = ["frame.number", "icmpv6.type", "icmpv6.nd.ns.target_address", "icmpv6.nd.na.target_address",
             "icmpv6.opt.type", "icmpv6.opt.linkaddr", "icmpv6.nd.ra.router_lifetime", "icmpv6.nd.ra.flag.prf",
             "icmpv6.nd.ra.cur_hop_limit", "icmpv6.opt.prefix", "icmpv6.opt.prefix.length", "icmpv6.opt.mtu",
             "icmpv6.nd.na.flag.s", "icmpv6.nd.na.flag.o", "icmpv6.nd.na.flag.r", "icmpv6.opt.rdnss"]
DHCP_FIELDS = ["frame.number", "dhcp.option.dhcp", "dhcp.id", "dhcp.hw.mac_addr", "dhcp.ip.your",
               "dhcp.option.dhcp_server_id", "dhcp.option.requested_ip_address", "dhcp.option.router",
               "dhcp.option.ip_address_lease_time", "dhcp.type", "dhcp.ip.client", "dhcp.option.domain_name_server"]


def tshark_fields(tshark: str, path: str, display: str, fields: list) -> list:
    argv = [tshark, "-n", "-r", path, "-Y", display, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|"]
    for f in fields:
        argv += ["-e", f]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return [dict(zip(fields, line.split("\t"))) for line in out.splitlines()]


def l4_payload(frame: bytes) -> tuple:
    """(IP protocol, L4 bytes) of an untagged Ethernet IPv4/IPv6 frame without extension headers."""
    etype = int.from_bytes(frame[12:14], "big")
    if etype == 0x86DD:
        return frame[20], frame[54:]
    ihl = (frame[14] & 15) * 4
    return frame[23], frame[14 + ihl:]


@pytest.mark.parametrize("name", ["zeek__icmp6-nd-options.pcap", "zeek__icmp6-neighbor-advert.pcap",
                                  "zeek__icmp6-router-advert.pcap"])
def test_ndp_records_match_tshark(name, tshark):
    path = pcap(name)
    frames = read_pcap(path)
    rows = tshark_fields(tshark, path, "icmpv6.type >= 133 && icmpv6.type <= 137", ND_FIELDS)
    assert rows
    for row in rows:
        proto, icmp = l4_payload(frames[int(row["frame.number"]) - 1][2])
        assert proto == 58
        r = records.parse_ndp(icmp)
        assert not isinstance(r, str), f"frame {row['frame.number']}: {r}"
        assert r.type == int(row["icmpv6.type"])
        target = row["icmpv6.nd.ns.target_address"] or row["icmpv6.nd.na.target_address"]
        if target:
            assert r.target == target
        kinds = row["icmpv6.opt.type"].split("|") if row["icmpv6.opt.type"] else []
        addrs = iter(row["icmpv6.opt.linkaddr"].split("|") if row["icmpv6.opt.linkaddr"] else [])
        macs = {k: next(addrs) for k in kinds if k in ("1", "2")}
        assert (r.source_mac, r.target_mac) == (macs.get("1", ""), macs.get("2", ""))
        if r.type == 134:
            assert r.router_lifetime == int(row["icmpv6.nd.ra.router_lifetime"])
            assert r.hop_limit == int(row["icmpv6.nd.ra.cur_hop_limit"])
            assert r.router_pref == {0: 0, 1: 1, 3: -1, 2: 0}[int(row["icmpv6.nd.ra.flag.prf"])]
            prefixes = row["icmpv6.opt.prefix"].split("|") if row["icmpv6.opt.prefix"] else []
            assert [p.prefix for p in r.prefixes] == prefixes[:4]
            assert [str(p.length) for p in r.prefixes] == row["icmpv6.opt.prefix.length"].split("|")[:len(prefixes)][:4]
            if row["icmpv6.opt.mtu"]:
                assert r.mtu == int(row["icmpv6.opt.mtu"])
            assert list(r.rdnss) == (row["icmpv6.opt.rdnss"].split("|") if row["icmpv6.opt.rdnss"] else [])[:4]
        if r.type == 136:
            assert bool(r.flags & 0x40) == (row["icmpv6.nd.na.flag.s"] in ("1", "True"))
            assert bool(r.flags & 0x20) == (row["icmpv6.nd.na.flag.o"] in ("1", "True"))
            assert bool(r.flags & 0x80) == (row["icmpv6.nd.na.flag.r"] in ("1", "True"))


def test_dhcp_records_match_tshark(tshark):
    path = pcap("zeek__dhcp.pcap")
    frames = read_pcap(path)
    rows = tshark_fields(tshark, path, "dhcp", DHCP_FIELDS)
    assert rows
    for row in rows:
        proto, udp = l4_payload(frames[int(row["frame.number"]) - 1][2])
        assert proto == 17
        r = records.parse_dhcp(udp[8:], 4)
        assert not isinstance(r, str), f"frame {row['frame.number']}: {r}"
        assert (r.msg_type, r.xid, r.client_mac) == (int(row["dhcp.option.dhcp"]), int(row["dhcp.id"], 16),
                                                     row["dhcp.hw.mac_addr"])
        assert r.op == int(row["dhcp.type"])
        assert (r.offered or "0.0.0.0") == row["dhcp.ip.your"]
        assert r.server_id == row["dhcp.option.dhcp_server_id"]
        assert r.requested == row["dhcp.option.requested_ip_address"]
        assert r.router == row["dhcp.option.router"].split("|")[0]
        assert r.lease_s == int(row["dhcp.option.ip_address_lease_time"] or 0)
        assert r.client_ip == row["dhcp.ip.client"]
        assert list(r.routers) == (row["dhcp.option.router"].split("|") if row["dhcp.option.router"] else [])[:4]
        assert list(r.dns) == (row["dhcp.option.domain_name_server"].split("|")
                               if row["dhcp.option.domain_name_server"] else [])[:4]


def test_dhcpv6_advertise():
    duid_client = b"\x00\x01\x00\x01\x2a\x2b\x2c\x2d\x02\x00\x00\x00\x00\x07"
    duid_server = b"\x00\x03\x00\x01\x02\x00\x00\x00\x00\x35"
    iaaddr = bytes.fromhex("20010db8000000000000000000000042") + (3600).to_bytes(4, "big") + (7200).to_bytes(4, "big")
    ia_na = b"\x00\x00\x00\x01" + bytes(8) + b"\x00\x05" + len(iaaddr).to_bytes(2, "big") + iaaddr
    opts = (b"\x00\x01" + len(duid_client).to_bytes(2, "big") + duid_client +
            b"\x00\x02" + len(duid_server).to_bytes(2, "big") + duid_server +
            b"\x00\x03" + len(ia_na).to_bytes(2, "big") + ia_na +
            b"\x00\x17\x00\x20" + bytes.fromhex("20010db8000000000000000000000053" "20010db8000000000000000000000054"))
    r = records.parse_dhcp(b"\x02\x12\x34\x56" + opts, 6)
    assert (r.msg_type, r.xid, r.client_mac, r.server_id, r.offered, r.lease_s) == (
        2, 0x123456, "02:00:00:00:00:07", duid_server.hex(), "2001:db8::42", 7200)
    assert r.dns == ("2001:db8::53", "2001:db8::54")
    assert records.parse_dhcp(b"\x02\x12\x34\x56\x00\x01\x00\x20", 6) == "dhcp"


@pytest.mark.parametrize("icmp", [b"\x86\x00\x00\x00", b"\x87\x00\x00\x00" + bytes(20) + b"\x01\x00",
                                  b"\x88\x00\x00\x00" + bytes(20) + b"\x02\x01\x00\x00"])
def test_malformed_ndp_is_named(icmp):
    assert records.parse_ndp(icmp) == "ndp"


def test_arp_events_carry_their_record(tshark):
    from hwdrivers import CaptureConfig, RunResult, Session
    path = pcap("chrissanders__arp_resolution.pcapng")
    rows = tshark_fields(tshark, path, "arp", ["arp.opcode", "arp.src.hw_mac", "arp.src.proto_ipv4",
                                               "arp.dst.hw_mac", "arp.dst.proto_ipv4"])
    with Session(CaptureConfig(source=path, events=frozenset({"arp"}), lossless=True)) as s:
        while s.run(timeout_ms=500) != RunResult.EOF:
            pass
        evs = s.read_events()
    assert [dataclasses.astuple(e.record) for e in evs] == [(int(r["arp.opcode"]), r["arp.src.hw_mac"], r["arp.src.proto_ipv4"],
                                               r["arp.dst.hw_mac"], r["arp.dst.proto_ipv4"]) for r in rows]


ND_DISPLAY = "icmpv6.type >= 133 && icmpv6.type <= 137"


@pytest.mark.parametrize("name,kind,display", [("zeek__icmp6-router-advert.pcap", "ndp", ND_DISPLAY),
                                               ("zeek__icmp6-nd-options.pcap", "ndp", ND_DISPLAY),
                                               ("zeek__dhcp.pcap", "dhcp", "dhcp")])
def test_ndp_and_dhcp_events_carry_their_record(name, kind, display, tshark):
    """The record on the event is the one the C parser gives for the same packet (held to tshark above)."""
    from hwdrivers import CaptureConfig, RunResult, Session
    path = pcap(name)
    frames = read_pcap(path)
    rows = tshark_fields(tshark, path, display, ["frame.number"])
    with Session(CaptureConfig(source=path, events=frozenset({kind}), lossless=True)) as s:
        while s.run(timeout_ms=500) != RunResult.EOF:
            pass
        evs = s.read_events()
    l4s = [l4_payload(frames[int(row["frame.number"]) - 1][2])[1] for row in rows]
    l4s = [l4 for l4 in l4s if len(l4) > 8]       # an ND message with nothing after its 8 bytes is no event
    assert len(evs) == len(l4s) > 0
    for ev, l4 in zip(evs, l4s):
        want = records.parse_ndp(l4) if kind == "ndp" else records.parse_dhcp(l4[8:], 4)
        assert ev.record_error == "" and ev.record == want
