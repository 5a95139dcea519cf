"""Calls rebuilt from the real SIP/RTP captures, held to tshark: Call-IDs,
participants and message counts (-Y sip fields, -z sip,stat), and each RTP
stream's packets, loss and jitter (-z rtp,streams)."""
import collections
import re
import subprocess

import pytest

from agent.calls import offline, quality, sdp, sip
from tests.conftest import pcap

SIP_PCAPS = ["ndpi__sip.pcap", "ndpi__FAX-Call-t38-CA-TDM-SIP-FB-1.pcap"]
# tshark also reads the MEGACO (H.248) SDP of the fax capture and decodes 27 RTP packets of the gateway as T.38
# after it; capbox follows SIP signalling only, so the oracle runs without MEGACO (docs/CALLS.md).
TSHARK = ["--disable-protocol", "megaco"]


def tshark_sip(tshark, path):
    out = subprocess.run([tshark, *TSHARK, "-r", path, "-Y", "sip", "-T", "fields", "-E", "separator=|",
                          "-e", "sip.Call-ID", "-e", "ip.src", "-e", "ipv6.src", "-e", "udp.srcport", "-e", "tcp.srcport",
                          "-e", "ip.dst", "-e", "ipv6.dst", "-e", "udp.dstport", "-e", "tcp.dstport", "-e", "sip.Method",
                          "-e", "sip.Status-Code"], capture_output=True, text=True, check=True).stdout
    calls = collections.defaultdict(lambda: {"messages": 0, "participants": set(), "labels": collections.Counter()})
    for line in out.splitlines():
        cid, s4, s6, su, st, d4, d6, du, dt, method, status = line.split("|")
        c = calls[cid]
        c["messages"] += 1
        c["participants"] |= {f"{s4 or s6}:{su or st}", f"{d4 or d6}:{du or dt}"}
        c["labels"][method or int(status)] += 1
    return calls


def tshark_rtp_streams(tshark, path):
    out = subprocess.run([tshark, *TSHARK, "-q", "-r", path, "-z", "rtp,streams"], capture_output=True, text=True,
                         check=True).stdout
    rows = {}
    for line in out.splitlines():
        m = re.match(r"\s*[\d.]+\s+[\d.]+\s+(\S+)\s+(\d+)\s+(\S+)\s+(\d+)\s+(0x[0-9A-F]+)\s+.*?\s(\d+)\s+(-?\d+) \(.*?\)"
                     r"\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", line)
        if m:
            key = (m[1], int(m[2]), m[3], int(m[4]), int(m[5], 16))
            rows[key] = {"packets": int(m[6]), "lost": int(m[7]), "max_delta": float(m[10]),
                         "mean_jitter": float(m[12]), "max_jitter": float(m[13])}
    return rows


@pytest.fixture(scope="module")
def analysed():
    return {name: offline.analyse(pcap(name)) for name in SIP_PCAPS}


@pytest.mark.parametrize("name", SIP_PCAPS)
def test_call_ids_participants_and_messages_equal_tsharks(tshark, analysed, name):
    truth = tshark_sip(tshark, pcap(name))
    calls = {c.call_id: c for c in analysed[name].calls}
    assert set(calls) == set(truth)
    for cid, t in truth.items():
        s = calls[cid].summary()
        assert s["events_count"] == t["messages"], cid
        assert set(s["participants"]) == t["participants"], cid
        labels = collections.Counter(m.msg.method or m.msg.status for m in calls[cid].messages)
        assert labels == t["labels"], cid


@pytest.mark.parametrize("name", SIP_PCAPS)
def test_sip_statistics_equal_tshark_sip_stat(tshark, analysed, name):
    out = subprocess.run([tshark, *TSHARK, "-q", "-r", pcap(name), "-z", "sip,stat"], capture_output=True,
                         text=True, check=True).stdout
    total = int(re.search(r"Number of SIP messages: (\d+)", out)[1])
    statuses = {int(c): int(n) for c, n in re.findall(r"SIP (\d{3}) .*?:\s+(\d+) Packets", out)}
    methods = {m: int(n) for m, n in re.findall(r"^\s+([A-Z]+)\s+:\s+(\d+) Packets", out, re.M)}
    msgs = [m.msg for c in analysed[name].calls for m in c.messages]
    assert len(msgs) == total == analysed[name].tracker.messages
    assert collections.Counter(m.status for m in msgs if m.status) == statuses
    assert collections.Counter(m.method for m in msgs if m.method) == methods


@pytest.mark.parametrize("name", SIP_PCAPS)
def test_rtp_loss_and_jitter_equal_tshark_rtp_streams(tshark, analysed, name):
    truth = tshark_rtp_streams(tshark, pcap(name))
    ours = {(s.src, s.sport, s.dst, s.dport, s.ssrc): s for c in analysed[name].calls for s in c.rtp_streams()}
    assert truth and set(ours) == set(truth)
    for key, t in truth.items():
        s = ours[key]
        assert (s.packets, s.lost) == (t["packets"], t["lost"]), key
        assert s.mean_jitter_ms == pytest.approx(t["mean_jitter"], abs=0.1), key
        assert s.max_jitter_ms == pytest.approx(t["max_jitter"], abs=0.1), key
        assert s.max_delta_ms == pytest.approx(t["max_delta"], abs=0.01), key


def test_the_fax_call_as_the_manifest_tells_it(analysed):
    calls = {c.call_id: c for c in analysed["ndpi__FAX-Call-t38-CA-TDM-SIP-FB-1.pcap"].calls}
    call = calls["00e9d4a500e9d48-0015-0001-0000-0000@10.35.40.25"]
    s = call.summary()
    m = s["metrics"]
    assert (s["type"], s["method"], s["state"], s["final_status"]) == ("SIP", "INVITE", "completed", 200)
    assert m["setup_time_ms"] == pytest.approx(6841, abs=1) and m["ringing_time_ms"] == pytest.approx(169, abs=1)
    assert s["start_time"].startswith("2008-12-05T09:22:38.651") and m["codec"] == "PCMA"
    assert m["rtp_packets"] == 1171 + 159 and m["rtp_lost"] == 1712 and 0 < m["rtp_loss"] < 1
    assert m["mos"] < 3 and m["talk_time_ms"] == pytest.approx((104.748265 - 27.861911) * 1000, abs=1)
    retrans = [e for e in call.events() if e["retransmission"]]
    assert retrans and all(e["details"]["call_id"] == call.call_id for e in retrans)
    other = calls["SD4909701-9ff11bf72eb4a347c92974d8fbbc2668-ao8o3i1"].summary()
    assert other["participants"] == ["138.132.169.101:5060", "192.168.100.219:5060"] and other["metrics"]["mos"] is None


def test_the_failed_calls_of_the_sip_sample(analysed):
    by_id = {c.call_id: c.summary() for c in analysed["ndpi__sip.pcap"].calls}
    assert by_id["105090259-446faf7a@192.168.1.2"]["state"] == "cancelled"
    assert by_id["85216695-42dcdb1d@192.168.1.2"]["final_status"] == 403
    early = by_id["11894297-4432a9f8@192.168.1.2"]
    assert (early["state"], early["final_status"], early["metrics"]["rtp_packets"]) == ("rejected", 480, 9)
    assert early["metrics"]["ringing_time_ms"] == pytest.approx(426.5, abs=0.5)
    assert early["metrics"]["rtcp_packets"] == 1 and early["metrics"]["setup_time_ms"] is None
    assert by_id["29858147-465b0752@29858051-465b07b2"]["method"] == "REGISTER"
    assert by_id["29858147-465b0752@29858051-465b07b2"]["state"] == "completed"


def test_sip_parsing_compact_headers_folding_and_truncation():
    raw = (b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\nv: SIP/2.0/UDP pc33;branch=z9hG4bK1\r\n"
           b"f: Alice <sip:alice@atlanta.example.com>;tag=1928\r\nt: <sip:bob@biloxi.example.com>\r\n"
           b"i: a84b4c76e66710\r\nCSeq: 314159\r\n INVITE\r\nc: application/sdp\r\nl: 4\r\n\r\nv=0\r\n")
    m = sip.parse(raw)
    assert (m.method, m.call_id, m.cseq, m.from_uri, m.from_tag, m.to_tag) == (
        "INVITE", "a84b4c76e66710", (314159, "INVITE"), "sip:alice@atlanta.example.com", "1928", "")
    assert m.body == b"v=0\r" and m.complete and m.content_type == "application/sdp"
    r = sip.parse(b"SIP/2.0 180 Ringing\r\nCall-ID: x\r\nContent-Length: 100\r\n\r\nshort")
    assert (r.status, r.reason, r.label, r.complete) == (180, "Ringing", "180 Ringing", False)
    with pytest.raises(sip.SipError):
        sip.parse(b"HTTP/1.1 200 OK\r\n\r\n")
    assert sip.parse(b"BYE sip:a@b SIP/2.0\r\nCall-ID: y", truncated=True).call_id == "y"


def test_sip_over_tcp_split_and_joined_messages():
    a = b"MESSAGE sip:a@b SIP/2.0\r\nCall-ID: 1\r\nContent-Length: 5\r\n\r\nhello"
    b = b"SIP/2.0 200 OK\r\nCall-ID: 1\r\nContent-Length: 0\r\n\r\n"
    t = sip.TcpStreams()
    key = ("a", 1, "b", 2)
    assert t.feed(key, 100, a[:20], 1) == []
    assert t.feed(key, 100 + 20 + 10, a[30:] + b"\r\n" + b, 3) == []          # out of order: waits
    got = t.feed(key, 120, a[20:30], 2)
    assert [(m.label, m.body, ts) for m, ts in got] == [("MESSAGE", b"hello", 1), ("200 OK", b"", 3)]
    assert t.feed(key, 120, a[20:30], 4) == []                                  # a retransmission
    assert [m.label for m, _ in t.feed(key, 100 + len(a) + 2 + len(b), b"garbage\r\n" + b, 5)] == ["200 OK"]


def test_sdp_media_rtcp_ports_and_clocks():
    body = (b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0 101\r\n"
            b"a=rtpmap:101 telephone-event/8000\r\nm=video 5000 RTP/AVP 96\r\nc=IN IP6 2001:db8::5\r\n"
            b"a=rtpmap:96 H264/90000\r\na=rtcp:5005\r\nm=audio 6000 RTP/AVP 8\r\na=rtcp-mux\r\n"
            b"m=image 7000 udptl t38\r\nm=audio 0 RTP/AVP 0\r\n")
    media = sdp.parse(body)
    assert [(m.kind, m.addr, m.port, m.rtcp_port, m.is_rtp) for m in media] == [
        ("audio", "10.0.0.1", 4000, 4001, True), ("video", "2001:db8::5", 5000, 5005, True),
        ("audio", "10.0.0.1", 6000, 0, True), ("image", "10.0.0.1", 7000, 7001, False),
        ("audio", "10.0.0.1", 0, 0, False)]
    assert media[0].clock_rates() == {101: 0} and media[1].clock_rates() == {96: 90000}
    assert (media[0].codec(), media[1].codec(), media[2].codec()) == ("PCMU", "H264", "PCMA")


def test_mos_estimate():
    assert quality.estimate(0.0, 0.0, "PCMA") == pytest.approx(4.4, abs=0.05)
    assert quality.estimate(0.05, 20.0, "PCMA") < quality.estimate(0.01, 20.0, "PCMA") < 4.4
    assert quality.estimate(1.0, 500.0) == 1.0 and quality.estimate(0.0, 0.0, "G729") < 4.2


def test_hostile_payloads_never_raise_anything_but_sip_errors():
    from hypothesis import given, settings, strategies as st

    seeds = [b"INVITE sip:a@b SIP/2.0\r\nCall-ID: x\r\nContent-Length: 9\r\nContent-Type: application/sdp\r\n\r\n",
             b"SIP/2.0 200 OK\r\ni: y\r\nl: 99999\r\n\r\n", b"m=audio 99999999 RTP/AVP x\r\nc=IN IP4 999.1.1.1\r\n"]

    @settings(max_examples=300, deadline=None)
    @given(st.sampled_from(seeds), st.binary(max_size=300), st.booleans())
    def check(seed, tail, truncated):
        for data in (seed + tail, tail, seed[:len(tail) % len(seed)] + tail):
            try:
                m = sip.parse(data, truncated)
                m.cseq, m.from_uri, m.to_tag, m.label, m.content_type
            except sip.SipError:
                pass
            sdp.parse(data)
            sip.TcpStreams().feed(("a", 1, "b", 2), 7, data, 1)
    check()
