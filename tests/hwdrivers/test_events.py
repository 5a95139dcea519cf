"""The event ring through Session.inject: which packets become events, what
each carries, the event mask, snippet bounds and a full ring."""
import pytest

from hwdrivers import CaptureError, ErrorCode
from tests.hwdrivers.packets import (
    A4, A6, ACK, B4, B6, BROADCAST, ETH_ARP, ETH_IPV6, HTTP_200, HTTP_GET, MS, PSH, RST,
    SIP_INVITE, SSL2_CLIENT_HELLO, SYN, T0, TCP, TLS_ALERT, UDP, arp, dns_query, eth, flows,
    host_mac, ipv6, session, tcp4, tls_hello, udp, udp4,
)

ALL = frozenset({"dns", "arp", "tls", "http", "sip", "tcp_src"})


def events_of(tmp_path, frames, events=ALL, **config):
    """(events, counters, flow records) after injecting frames 1 ms apart."""
    with session(tmp_path, events=events, **config) as s:
        for i, frame in enumerate(frames):
            s.inject(frame, ts_ns=T0 + i * MS)
        evs = s.read_events()
        c = s.counters()
        recs = flows(s)
    return evs, c, recs


def nonzero(d: dict) -> dict:
    return {k: v for k, v in d.items() if v}


# ---- DNS -----------------------------------------------------------------------

def test_dns_over_udp_one_event_per_packet(tmp_path):
    query, answer = dns_query(), dns_query()[:2] + b"\x81\x80" + dns_query()[4:]
    frames = [udp4(A4, B4, 40000, 53, query), udp4(B4, A4, 53, 40000, answer)]
    evs, c, [r] = events_of(tmp_path, frames)
    assert [(e.kind, e.src, e.dst, e.sport, e.dport, e.proto, e.flow_id, e.from_initiator) for e in evs] == [
        ("dns", A4, B4, 40000, 53, UDP, r.id, True),
        ("dns", B4, A4, 53, 40000, UDP, r.id, False),
    ]
    assert [(e.payload, e.payload_len, e.wirelen, e.ts_ns) for e in evs] == [
        (query, len(query), len(frames[0]), T0), (answer, len(answer), len(frames[1]), T0 + MS)]
    assert [(e.src_mac, e.dst_mac) for e in evs] == [(host_mac(A4), host_mac(B4)), (host_mac(B4), host_mac(A4))]
    assert nonzero(c.events) == {"dns": 2} and nonzero(c.events_dropped) == {}


def test_dns_over_tcp(tmp_path):
    msg = len(dns_query()).to_bytes(2, "big") + dns_query()
    frames = [
        tcp4(A4, B4, 40000, 53, flags=SYN, seq=100),
        tcp4(B4, A4, 53, 40000, flags=SYN | ACK, seq=900, ack=101),
        tcp4(A4, B4, 40000, 53, flags=ACK, seq=101, ack=901, pad_to=60),       # padding is not payload
        tcp4(A4, B4, 40000, 53, flags=ACK | PSH, seq=101, ack=901, payload=msg),
        tcp4(B4, A4, 53, 40000, flags=ACK, seq=901, ack=101 + len(msg)),
    ]
    evs, c, [r] = events_of(tmp_path, frames, events=frozenset({"dns"}))
    assert [(e.kind, e.proto, e.sport, e.dport, e.payload, e.payload_len, e.seq, e.ack, e.flow_id) for e in evs] == [
        ("dns", TCP, 40000, 53, msg, len(msg), 101, 901, r.id)]
    assert nonzero(c.events) == {"dns": 1}


def test_dns_event_carries_vlan_and_ipv6_addresses(tmp_path):
    frame = eth(ipv6(A6, B6, UDP, udp(40000, 53, dns_query())), ETH_IPV6)
    evs, _, _ = events_of(tmp_path, [frame, udp4(payload=dns_query(), vlan=77)])
    assert [(e.src, e.dst, e.vlan) for e in evs] == [(A6, B6, 0), (A4, B4, 77)]


# ---- ARP ----------------------------------------------------------------------------

def test_arp_events_carry_addresses_and_the_arp_body(tmp_path):
    request = arp(1, host_mac(A4), A4, "00:00:00:00:00:00", B4)
    reply = arp(2, host_mac(B4), B4, host_mac(A4), A4)
    frames = [eth(request, ETH_ARP, host_mac(A4), BROADCAST), eth(reply, ETH_ARP, host_mac(B4), host_mac(A4))]
    evs, c, recs = events_of(tmp_path, frames)
    assert [(e.kind, e.src, e.dst, e.src_mac, e.dst_mac, e.flow_id, e.proto) for e in evs] == [
        ("arp", A4, B4, host_mac(A4), BROADCAST, 0, 0),
        ("arp", B4, A4, host_mac(B4), host_mac(A4), 0, 0),
    ]
    assert [(e.payload, e.payload_len, e.wirelen) for e in evs] == [(request, 28, 42), (reply, 28, 42)]
    assert nonzero(c.events) == {"arp": 2} and recs == []


def test_arp_event_payload_is_only_the_arp_body(tmp_path):
    """A padded ARP frame (60 bytes on the wire) still hands on 28 bytes."""
    body = arp(1, host_mac(A4), A4, "00:00:00:00:00:00", B4)
    frame = eth(body, ETH_ARP, host_mac(A4), BROADCAST) + bytes(18)
    [e], _, _ = events_of(tmp_path, [frame])
    assert (e.payload, e.payload_len, e.wirelen) == (body, 28, 60)


# ---- TLS, HTTP, SIP -------------------------------------------------------------------

CERTIFICATE = b"\x16\x03\x03\x00\x04\x0b\x00\x00\x00"      # a Certificate message starting a segment (TLS <= 1.2)
SSL2_SERVER_HELLO = b"\x80\x0c\x04\x00\x01\x00\x02\x00\x00\x00\x03\x00\x10\x01\x00\x80"


@pytest.mark.parametrize("payload", [tls_hello(1), tls_hello(2), TLS_ALERT, SSL2_CLIENT_HELLO, CERTIFICATE,
                                     SSL2_SERVER_HELLO],
                         ids=["client-hello", "server-hello", "alert", "sslv2-client-hello", "certificate",
                              "sslv2-server-hello"])
@pytest.mark.parametrize("port", [443, 4433])
def test_tls_records_are_events_on_any_port(tmp_path, payload, port):
    frame = tcp4(A4, B4, 40000, port, flags=ACK | PSH, payload=payload)
    evs, _, [r] = events_of(tmp_path, [frame])
    assert [(e.kind, e.payload, e.payload_len, e.dport, e.flow_id) for e in evs] == [
        ("tls", payload, len(payload), port, r.id)]


@pytest.mark.parametrize("payload", [
    b"\x17\x03\x03\x00\x10" + bytes(16),                          # application data
    b"\x16\x03\x03\x00\x04\x0e\x00\x00\x00",                      # ServerHelloDone, not a hello
    b"\x80\x1c\x04\x03\x01" + bytes(25),                          # SSLv2 header, neither hello of SSL 2.0
    b"\x15\x03\x03\x00",                                          # alert cut before its body
], ids=["application-data", "server-hello-done", "sslv2-other", "short-alert"])
def test_other_tls_records_are_not_events(tmp_path, payload):
    evs, _, _ = events_of(tmp_path, [tcp4(A4, B4, 40000, 443, flags=ACK | PSH, payload=payload)])
    assert evs == []


def test_tls_hello_over_udp_is_not_a_tls_event(tmp_path):
    evs, _, _ = events_of(tmp_path, [udp4(A4, B4, 40000, 443, tls_hello(1))])
    assert evs == []


def test_http_request_and_response_heads(tmp_path):
    body = b"<html>" + bytes(100)
    frames = [
        tcp4(A4, B4, 40000, 8081, flags=ACK | PSH, seq=1, ack=1, payload=HTTP_GET),
        tcp4(B4, A4, 8081, 40000, flags=ACK | PSH, seq=1, ack=1 + len(HTTP_GET), payload=HTTP_200),
        tcp4(B4, A4, 8081, 40000, flags=ACK | PSH, seq=1 + len(HTTP_200), ack=1 + len(HTTP_GET), payload=body),
    ]
    evs, c, [r] = events_of(tmp_path, frames)
    assert [(e.kind, e.payload, e.from_initiator, e.flow_id) for e in evs] == [
        ("http", HTTP_GET, True, r.id), ("http", HTTP_200, False, r.id)]
    assert nonzero(c.events) == {"http": 2}


@pytest.mark.parametrize("method", [b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"CONNECT", b"TRACE"])
def test_every_http_method_is_an_event(tmp_path, method):
    head = method + b" / HTTP/1.1\r\nHost: x\r\n\r\n"
    [e], _, _ = events_of(tmp_path, [tcp4(flags=ACK | PSH, payload=head)])
    assert (e.kind, e.payload) == ("http", head)


def test_sip_by_port_and_by_request_line(tmp_path):
    status = b"SIP/2.0 200 OK\r\n\r\n"
    keepalive = b"\r\n\r\n"
    frames = [
        udp4(A4, B4, 5060, 5060, SIP_INVITE),
        udp4(B4, A4, 5060, 5060, status),
        udp4(A4, B4, 5060, 5060, keepalive),      # port 5060: whatever it carries
        udp4(A4, B4, 5070, 5080, SIP_INVITE),     # another port: by its request line
        udp4(A4, B4, 5070, 5080, b"INVITEsip:bob@example.com"),
        udp4(A4, B4, 5070, 5080, b"hello"),
        tcp4(A4, B4, 40000, 5090, flags=ACK | PSH, payload=SIP_INVITE),
    ]
    evs, c, _ = events_of(tmp_path, frames)
    assert [(e.kind, e.sport, e.dport, e.proto, e.payload) for e in evs] == [
        ("sip", 5060, 5060, UDP, SIP_INVITE), ("sip", 5060, 5060, UDP, status),
        ("sip", 5060, 5060, UDP, keepalive), ("sip", 5070, 5080, UDP, SIP_INVITE),
        ("sip", 40000, 5090, TCP, SIP_INVITE),
    ]
    assert nonzero(c.events) == {"sip": 5}


# ---- TCP SYN and RST: per-source summaries (tests/hwdrivers/test_srcsum.py) ---------------

def test_syn_with_data_is_a_summary_and_a_payload_event(tmp_path):
    frame = tcp4(A4, B4, 40000, 80, flags=SYN, seq=1000, payload=HTTP_GET)   # TCP Fast Open
    evs, _, [r] = events_of(tmp_path, [frame])
    assert [(e.kind, e.payload, e.payload_len) for e in evs] == [("tcp_src", b"", 0), ("http", HTTP_GET, len(HTTP_GET))]
    assert (evs[0].record.syns, evs[0].record.reason, evs[1].flow_id) == (1, "new", r.id)


# ---- the mask ------------------------------------------------------------------------

MIXED = [
    udp4(A4, B4, 40000, 53, dns_query()),
    eth(arp(1, host_mac(A4), A4, "00:00:00:00:00:00", B4), ETH_ARP, host_mac(A4), BROADCAST),
    tcp4(A4, B4, 40000, 443, flags=SYN, seq=1),
    tcp4(A4, B4, 40000, 443, flags=ACK | PSH, seq=2, payload=tls_hello(1)),
    tcp4(A4, B4, 40001, 80, flags=ACK | PSH, payload=HTTP_GET),
    udp4(A4, B4, 5060, 5060, SIP_INVITE),
    tcp4(A4, B4, 40000, 443, flags=RST, seq=2 + len(tls_hello(1))),
]


@pytest.mark.parametrize("kinds", [{"dns"}, {"arp", "tcp_src"}, {"tls", "http", "sip"}, {"tcp_src"}, ALL],
                         ids=lambda k: "+".join(sorted(k)))
def test_only_enabled_kinds_are_produced(tmp_path, kinds):
    evs, c, _ = events_of(tmp_path, MIXED, events=frozenset(kinds))
    order = ["dns", "arp", "tcp_src", "tls", "http", "sip"]     # the source's first SYN sends its summary at once
    assert [e.kind for e in evs] == [k for k in order if k in kinds]
    assert nonzero(c.events) == {k: 1 for k in kinds}
    assert nonzero(c.events_dropped) == {}


def test_no_events_without_a_mask(tmp_path):
    evs, c, recs = events_of(tmp_path, MIXED, events=frozenset())
    assert evs == [] and nonzero(c.events) == {}
    assert len(recs) == 4


def test_unknown_event_kind_is_refused(tmp_path):
    with pytest.raises(CaptureError) as err:
        session(tmp_path, events=frozenset({"dns", "smtp"}))
    assert err.value.code == ErrorCode.ARG


# ---- snippets --------------------------------------------------------------------------

def test_long_payload_is_cut_to_the_snippet_size(tmp_path):
    head = b"POST /upload HTTP/1.1\r\nContent-Length: 3000\r\n\r\n"
    payload = head + bytes(range(256)) * 12
    big_dns = dns_query() + bytes(2000)
    evs, _, _ = events_of(tmp_path, [tcp4(flags=ACK | PSH, payload=payload), udp4(payload=big_dns)])
    assert [(e.kind, len(e.payload), e.payload_len) for e in evs] == [
        ("http", 1536, len(payload)), ("dns", 1536, len(big_dns))]
    assert evs[0].payload == payload[:1536] and evs[1].payload == big_dns[:1536]


def test_snaplen_cut_payload_keeps_the_announced_length(tmp_path):
    payload = HTTP_GET + bytes(900)
    frame = tcp4(flags=ACK | PSH, payload=payload)
    with session(tmp_path, events=ALL) as s:
        s.inject(frame[:54 + 20], ts_ns=T0, wirelen=len(frame))
        [e] = s.read_events()
    assert (e.kind, e.payload, e.payload_len, e.wirelen) == ("http", payload[:20], len(payload), len(frame))


# ---- a full ring --------------------------------------------------------------------------

def test_full_ring_counts_drops(tmp_path):
    frame = udp4(payload=dns_query())
    with session(tmp_path, events=frozenset({"dns", "tcp_src"}), event_ring=1024) as s:
        for k in range(1100):
            s.inject(frame, ts_ns=T0 + k)
        s.inject(tcp4(flags=SYN), ts_ns=T0 + 2000)
        full = s.counters()
        evs = s.read_events()
        s.inject(frame, ts_ns=T0 + 3000)
        after = s.counters()
        [last] = s.read_events()
    assert (nonzero(full.events), nonzero(full.events_dropped)) == ({"dns": 1024}, {"dns": 76, "tcp_src": 1})
    assert [e.ts_ns for e in evs] == [T0 + k for k in range(1024)]
    assert (after.events["dns"], after.events_dropped["dns"], last.ts_ns) == (1025, 76, T0 + 3000)
