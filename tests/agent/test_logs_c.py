"""The dns, conn, http and tls log lines the C core writes (hwdrivers.logs) equal, byte
for byte, the lines the Python Builder writes of the same packets (its
records through json.dumps, as the live log service writes them), over
every shared capture; and the JSON text helpers equal json.dumps on the
strings and floats that are hard to get right."""
import json
import struct

import pytest

from agent.logs.offline import log_text
from agent.logs.records import Builder
from hwdrivers import CaptureConfig, Session
from hwdrivers.logs import Logger
from tests.conftest import ALL_PCAPS, TUNNEL_PCAPS
from tests.hwdrivers.packets import A4, B4, EN10MB, MS, T0, dns_query, session, udp4

TYPES = ("dns", "conn", "http", "tls")


def python_lines(path: str, salt: bytes) -> dict:
    """The records of the file by the Python Builder only (every event and flow as a Python object)."""
    b = Builder(TYPES, salt)
    out = {t: [] for t in TYPES}

    def put(records) -> None:
        for kind, rec in records:
            out[kind].append(json.dumps(rec, separators=(",", ":"), default=str))
    config = CaptureConfig(source=path, backend="pcapfile", events=frozenset({"dns", "http", "tls"}),
                           event_ring=1 << 14, lossless=True, flow_ring=1 << 16, idle_timeout_s=0, active_timeout_s=0,
                           max_flows=1 << 20)
    with Session(config) as s:
        def batch() -> None:
            for ev in s.read_events():
                put(b.feed(ev))
            for f in s.read_flows():
                put(b.flow(f.as_dict()))
            put(b.expire())
        s.run_to_eof(batch)
        while s.flush():
            batch()
        batch()
        put(b.flush())
    return out


def c_lines(path: str, salt: bytes, types: tuple = TYPES) -> dict:
    out = {t: [] for t in types}
    import agent.logs.offline as offline
    real = offline.Builder
    offline.Builder = lambda types: real(types, salt)        # the same uids on both sides
    try:
        log_text(path, types, lambda kind, lines: out[kind].extend(bytes(lines).decode().splitlines()))
    finally:
        offline.Builder = real
    return out


@pytest.mark.parametrize("path", ALL_PCAPS + TUNNEL_PCAPS, ids=lambda p: p.name)
def test_c_lines_equal_python_lines(path):
    salt = bytes(range(16))
    want, got = python_lines(str(path), salt), c_lines(str(path), salt)
    for kind in TYPES:
        assert sorted(got[kind]) == sorted(want[kind]), kind


def test_queries_held_bounded_repeated_and_alone_equal_python(tmp_path):
    """Five queries at once with room for two: three go out alone early (counted); a query sent twice
    counts its repeat; answers pair by flow, id and name, one to a query never seen; what is left goes at
    the flush.  The logger attached to the session and the Builder fed the same messages as events (the
    ring and the logger both on) write the same lines."""
    salt = bytes(range(16))
    lg = Logger(["dns"], salt, pending_max=2)
    b = Builder(["dns"], salt)
    want = []

    def answer(q: bytes) -> bytes:
        return q[:2] + b"\x81\x80" + q[4:]
    queries = [dns_query(f"n{i}.example", ident=i) for i in range(5)]
    frames = [udp4(A4, B4, 40000 + i, 53, q) for i, q in enumerate(queries)]
    frames += [udp4(A4, B4, 40004, 53, queries[4]), udp4(B4, A4, 53, 40004, answer(queries[4])),
               udp4(B4, A4, 53, 40009, answer(dns_query("never.asked", ident=9))),
               udp4(A4, B4, 40010, 53, dns_query("left.example", ident=10))]
    with session(tmp_path, events=frozenset({"dns"})) as s:
        s.set_logger(lg)
        for i, frame in enumerate(frames):
            s.inject(frame, ts_ns=T0 + i * MS)
            for ev in s.read_events():
                for kind, rec in b.feed(ev):
                    want.append(json.dumps(rec, separators=(",", ":")))
    stats = lg.stats()
    assert stats["held_early"] == 3 and stats["pending"] == 2
    lg.flush()
    want += [json.dumps(rec, separators=(",", ":")) for _, rec in b.flush()]
    got = lg.take()[0][1].decode().splitlines()
    records = [json.loads(x) for x in got]
    assert [r["query"] for r in records if "rcode" not in r] == ["n0.example", "n1.example", "n2.example",
                                                                 "n3.example", "left.example"]
    paired = [r for r in records if "rtt" in r]
    assert [(r["query"], r["query_repeats"], r["rtt"]) for r in paired] == [("n4.example", 1, 0.002)]
    assert [r["query"] for r in records if "rcode" in r and "rtt" not in r] == ["never.asked"]
    assert sorted(got) == sorted(want) and len(got) == 7


@pytest.mark.parametrize("one_flow", [False, True], ids=["flows", "mdns-like"])
def test_many_queries_waiting_pair_with_their_answers_equal_python(tmp_path, one_flow):
    """3,000 queries waiting at once (the table's buckets grow from 256 as it fills, every query hashed again)
    and their answers in another order: each pairs with its own query, as the Builder pairs them.  mDNS-like:
    all of them on one flow under id 0, told apart by their names only."""
    import random
    salt = bytes(range(16))
    lg = Logger(["dns"], salt)
    b = Builder(["dns"], salt)
    want = []
    queries = [(5353 if one_flow else 1000 + i, dns_query(f"q{i}.example", ident=0 if one_flow else i % 7))
               for i in range(3000)]
    answers = [udp4(B4, A4, 53, port, q[:2] + b"\x81\x80" + q[4:]) for port, q in queries]
    random.Random(22).shuffle(answers)
    with session(tmp_path, events=frozenset({"dns"})) as s:
        s.set_logger(lg)
        for i, frame in enumerate([udp4(A4, B4, port, 53, q) for port, q in queries] + answers):
            s.inject(frame, ts_ns=T0 + i * MS)
            for ev in s.read_events():
                want += [json.dumps(rec, separators=(",", ":")) for _, rec in b.feed(ev)]
    assert lg.stats()["pending"] == 0
    got = lg.take()[0][1].decode().splitlines()
    assert len(got) == 3000 and all("rtt" in json.loads(x) for x in got) and got == want


def test_a_files_lines_are_taken_a_megabyte_at_a_time(tmp_path):
    """A file of 12,000 answered queries (about 6 MB of dns lines) read in one go: the session hands back each
    time the logger holds about a megabyte, so the lines reach the writer in chunks that stay in cache (not
    the whole file's between two progress ticks), and every line is there once."""
    path = tmp_path / "dns.pcap"
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, EN10MB))
        for i in range(12000):
            q = dns_query(f"host{i}.a-rather-long-name-for-the-line.example", ident=i)
            for k, frame in enumerate((udp4(A4, B4, 20000 + i, 53, q), udp4(B4, A4, 53, 20000 + i,
                                                                            q[:2] + b"\x81\x80" + q[4:]))):
                f.write(struct.pack("<IIII", 1_700_000_000, 2 * i + k, len(frame), len(frame)) + frame)
    chunks = []
    result = log_text(str(path), ["dns"], lambda kind, lines: chunks.append(bytes(lines)))
    lines = b"".join(chunks).splitlines()
    assert result["records"]["dns"] == 12000 and len(set(lines)) == 12000
    assert len(chunks) >= 5 and max(map(len, chunks)) < 1.25 * (1 << 20), [len(c) for c in chunks]


def v6_address(rng) -> list:
    """16 bytes: words zero at random (runs of every length and place), or ::a.b.c.d, ::ffff:a.b.c.d, ::, ::1."""
    words = [rng.choice((0, 0, 1, 0xffff, rng.randrange(1 << 16), rng.randrange(16), rng.randrange(256)))
             for _ in range(8)]
    v4 = [rng.randrange(256) for _ in range(4)]
    form = rng.randrange(8)
    if form == 0:
        return [0] * 12 + v4
    if form == 1:
        return [0] * 10 + [0xff, 0xff] + v4
    if form == 2:
        return [0] * 16 if rng.random() < 0.5 else [0] * 15 + [1]
    return [x for w in words for x in (w >> 8, w & 0xff)]


def test_conn_lines_equal_python_on_random_flows():
    """Random flow records (times that round on a half, durations below 1e-4, ports, flags, tunnels, vlans)
    through the C logger and through the Builder: the same text, float for float (and IPv6 address for
    address as inet_ntop writes them; community IDs made two flows at once, an odd count's last alone)."""
    import random
    from hwdrivers import flows
    from hwdrivers._hw import ffi
    rng = random.Random(22)
    n = 4001
    buf = ffi.new("struct hw_flow_record[]", n)
    for i in range(n):
        f = buf[i]
        f.id = i + 1
        f.family = rng.choice((4, 6))
        f.proto = rng.choice((6, 17, 132, 47, 50, 6, 17))
        for k in range(16 if f.family == 6 else 4):
            f.src[k], f.dst[k] = rng.randrange(256), rng.randrange(256)
        if f.family == 6:       # the forms inet_ntop writes differently: runs of zeros, embedded IPv4
            f.src, f.dst = v6_address(rng), v6_address(rng)
        f.sport, f.dport = rng.randrange(65536), rng.randrange(65536)
        base = rng.choice((1_300_000_000, 1_700_000_000, 4_100_000_000, 12, 0))
        f.first_ns = base * 10**9 + rng.choice((rng.randrange(10**9), rng.randrange(2000) * 500, 999_999_500))
        f.last_ns = f.first_ns + rng.choice((0, rng.randrange(10**5), rng.randrange(10**12), 500, 1500))
        f.rtt_ns = rng.choice((0, rng.randrange(10**4), rng.randrange(10**9), 500, rng.randrange(10**7) * 1000 + 500))
        f.packets = [rng.randrange(10**6), rng.randrange(3)]
        f.bytes = [rng.randrange(10**9), rng.randrange(10**4)]
        f.retransmissions = [rng.randrange(5), rng.randrange(5)]
        f.tcp_flags = [rng.randrange(256), rng.randrange(256)]
        f.state, f.end_reason, f.app = rng.randrange(6), rng.randrange(6), rng.randrange(24)
        f.vlan = rng.choice((0, 0, 100))
        f.tun_type, f.tun_family = rng.choice((0, 0, 1, 3)), 4
    salt = bytes(range(16))
    lg = Logger(["conn"], salt)
    assert lg.flows(buf, n) == []
    got = lg.take()[0][1].decode().splitlines()
    b = Builder(["conn"], salt)
    want = [json.dumps(b.flow(flows.from_cdata(buf[i]).as_dict())[0][1], separators=(",", ":")) for i in range(n)]
    assert got == want


def test_lines_nobody_takes_are_bounded_and_counted():
    """A logger whose lines are not taken (the log service stalled) holds at most bytes_max of them: the rest
    are dropped and counted, never grown without end; after a take it logs again."""
    from hwdrivers._hw import ffi
    n = 1000
    buf = ffi.new("struct hw_flow_record[]", n)
    for i in range(n):
        buf[i].id, buf[i].family, buf[i].proto, buf[i].sport, buf[i].dport = i + 1, 4, 6, 40000, 443
        buf[i].first_ns = buf[i].last_ns = 1_700_000_000 * 10**9 + i
    lg = Logger(["conn"], bytes(16), bytes_max=16 << 10)
    lg.flows(buf, n)
    stats = lg.stats()
    held = lg.take()[0][1]
    kept, dropped = stats["records"]["conn"], stats["dropped"]["conn"]
    assert kept + dropped == n and 0 < kept < n and len(held.splitlines()) == kept
    assert (16 << 10) - 1024 < len(held) <= 16 << 10          # full to the bound, never past it
    lg.flows(buf, 10)
    assert lg.stats()["records"]["conn"] == kept + 10 and lg.stats()["dropped"]["conn"] == dropped


def test_http_pairs_held_bounded_and_cut_equal_python(tmp_path, monkeypatch):
    """HTTP requests through the C logger attached to the session and through the Builder fed the same heads
    as events, with room for two waiting flows (and two counted depths): a retransmitted request is told once;
    a 100 Continue then the final answer acknowledging the second of two pipelined requests (the first goes
    unanswered, the second carries info_code); a response with no request; bytes that are not UTF-8; a head cut
    short; a flow past its 256 waiting requests; flows that wait beyond the table's room go out early (counted);
    what waits goes out when the flow ends or at the flush.  The same text, line for line."""
    import agent.logs.records as records
    from tests.hwdrivers.packets import tcp4
    monkeypatch.setattr(records, "PENDING_MAX", 2)
    salt = bytes(range(16))
    lg = Logger(["http"], salt, pending_max=2)
    b = Builder(["http"], salt)
    psh = 0x18
    get_a = b"GET /a HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t/1\r\n\r\n"
    get_b = b"POST /b?\xff\xfe=\xc3\xa9 HTTP/1.0\r\nHost: h\xe9.example\r\nContent-Length: 12\r\n\r\n"
    end_a, end_b = 1000 + len(get_a), 1000 + len(get_a) + len(get_b)
    frames = [tcp4(A4, B4, 40001, 80, flags=psh, seq=1000, payload=get_a),
              tcp4(A4, B4, 40001, 80, flags=psh, seq=1000, payload=get_a),
              tcp4(A4, B4, 40001, 80, flags=psh, seq=end_a, payload=get_b),
              tcp4(B4, A4, 80, 40001, flags=psh, seq=9000, ack=end_b, payload=b"HTTP/1.1 100 Continue\r\n\r\n"),
              tcp4(B4, A4, 80, 40001, flags=psh, seq=9025, ack=end_b,
                   payload=b"HTTP/1.1 302 Found\r\nLocation: /n\xe9w\x80\r\nContent-Type: text/html\r\n"
                           b"Content-Length: 0\r\n\r\n"),
              tcp4(B4, A4, 80, 40002, flags=psh, seq=1, payload=b"HTTP/1.0 404 Not Found\r\n\r\n"),
              tcp4(A4, B4, 40003, 80, flags=psh, seq=1, payload=b"GET /cut HTTP/1.1\r\nHost: x\r\nAccept"),
              tcp4(A4, B4, 40004, 8080, flags=psh, seq=1, payload=b"DELETE /d HTTP/1.1\r\n\r\n"),
              tcp4(A4, B4, 40005, 80, flags=psh, seq=1, payload=b"GET / HTTP/1.1\r\n\r\n")]
    frames += [tcp4(A4, B4, 40006, 80, flags=psh, seq=100 * i, payload=b"GET /p%d HTTP/1.1\r\n\r\n" % i)
               for i in range(258)]
    want = []
    with session(tmp_path, events=frozenset({"http"})) as s:
        s.set_logger(lg)
        for i, frame in enumerate(frames):
            s.inject(frame, ts_ns=T0 + i * MS)
            for ev in s.read_events():
                want += [json.dumps(rec, separators=(",", ":")) for _, rec in b.feed(ev)]
        s.flush()
        for f in s.read_flows():
            if f.sport == 40006:                            # one flow ends: its waiting requests go
                lg.ended(f.id)
                want += [json.dumps(rec, separators=(",", ":")) for _, rec in b.ended(f.id)]
    assert lg.stats()["held_early"] == b.overflow >= 4
    lg.flush()
    want += [json.dumps(rec, separators=(",", ":")) for _, rec in b.flush()]
    got = lg.take()[0][1].decode().splitlines()
    assert sorted(got) == sorted(want) and len(got) == 2 + 1 + 3 + 258
    records_ = [json.loads(x) for x in got]
    answered = [r for r in records_ if r.get("status_code") == 302]
    assert len(answered) == 1 and answered[0]["info_code"] == 100 and answered[0]["uri"] == "/b?\\xff\\xfe=\u00e9"
    assert answered[0]["location"] == "/n\\xe9w\\x80" and answered[0]["trans_depth"] == 2
    assert [r["uri"] for r in records_ if r.get("head_cut")] == ["/cut"]


def test_tls_handshakes_gathered_held_and_expired_equal_python(tmp_path, monkeypatch):
    """TLS handshakes through the C logger and through the Builder, with room for two: a ClientHello sent
    again with another name (the latest wins), an alert; a TLS 1.3 ServerHello seen before any ClientHello
    (told at once, its fields first); a suite with no name; a handshake untold for 30 s of packet time
    (logged as it is, when a later packet shows the time); handshakes beyond the table's room (the oldest goes
    early, counted); the rest at the flush.  The same text, line for line."""
    import agent.logs.records as records
    from agent.detectors.suites import SUITES
    from tests.detectors.scenarios import tls_client_hello, tls_server_hello
    from tests.hwdrivers.packets import S, TLS_ALERT, tcp4
    monkeypatch.setattr(records, "PENDING_MAX", 2)
    salt = bytes(range(16))
    lg = Logger(["tls"], salt, pending_max=2, suites=SUITES)
    b = Builder(["tls"], salt)
    psh = 0x18
    steps = [(0, tcp4(A4, B4, 40001, 443, flags=psh, seq=1, payload=tls_client_hello("a.example"))),
             (1, tcp4(A4, B4, 40001, 443, flags=psh, seq=1, payload=tls_client_hello("b.example", versions=()))),
             (2, tcp4(B4, A4, 443, 40001, flags=psh, seq=1, payload=tls_server_hello(0x0303, 0xC02F))),
             (3, tcp4(B4, A4, 443, 40001, flags=psh, seq=99, payload=TLS_ALERT)),
             (4, tcp4(B4, A4, 443, 40002, flags=psh, seq=1, payload=tls_server_hello(0x0304, 0x1301))),
             (5, tcp4(B4, A4, 443, 40003, flags=psh, seq=1, payload=tls_server_hello(0x0303, 0xFFFE))),
             (6, tcp4(A4, B4, 40003, 443, flags=psh, seq=1, payload=tls_client_hello("c.example"))),
             (35 * S // MS, tcp4(B4, A4, 443, 40007, flags=psh, seq=1, payload=TLS_ALERT)),   # time passes
             (40 * S // MS, tcp4(A4, B4, 40004, 443, flags=psh, seq=1, payload=tls_client_hello("d.example"))),
             (40 * S // MS + 1, tcp4(A4, B4, 40005, 443, flags=psh, seq=1, payload=tls_client_hello("e.example"))),
             (40 * S // MS + 2, tcp4(A4, B4, 40006, 443, flags=psh, seq=1, payload=tls_client_hello("f.example")))]
    want = []

    def put(recs) -> None:
        want.extend(json.dumps(rec, separators=(",", ":")) for _, rec in recs)
    with session(tmp_path, events=frozenset({"tls"})) as s:
        s.set_logger(lg)
        for at, frame in steps:
            s.inject(frame, ts_ns=T0 + at * MS)
            for ev in s.read_events():
                put(b.feed(ev))
            lg.expire(b.now, records.TLS_WAIT_S)
            put(b.expire())
    assert lg.stats()["held_early"] == b.overflow == 1
    lg.flush()
    put(b.flush())
    got = lg.take()[0][1].decode().splitlines()
    assert sorted(got) == sorted(want) and len(got) == 6
    recs = {r["id.orig_p"] if r["id.orig_p"] != 443 else r["id.resp_p"]: r for r in map(json.loads, got)}
    assert recs[40001]["server_name"] == "b.example" and recs[40001]["last_alert"] == 40
    assert list(recs[40002])[8:10] == ["version", "cipher"] and recs[40002]["cipher"] == "TLS_AES_128_GCM_SHA256"
    assert recs[40003]["cipher"] == "0xfffe" and list(recs[40003]).index("cipher") < list(recs[40003]).index("ja3")



@pytest.mark.parametrize("name", ["chrissanders__http_ip4and6.pcapng", "zeek__tls_tls1_1.pcap",
                                  "chrissanders__dns_query_nonexistent.pcapng"])
def test_without_conn_no_flow_is_made_in_python_and_the_lines_stay(name, monkeypatch):
    """`capbox logs -r FILE --type dns` (no conn): the expired flows stay raw records (the C logger still
    hears of their end); a Python FlowRecord of each made that run 4x slower on large.pcap."""
    import hwdrivers.capture as capture
    from tests.conftest import PCAPS
    path, salt = str(PCAPS / name), bytes(range(16))
    every = c_lines(path, salt)
    made, real = [], capture._flows.from_cdata
    monkeypatch.setattr(capture._flows, "from_cdata", lambda c: made.append(1) or real(c))
    for kind in ("dns", "http", "tls"):
        assert c_lines(path, salt, (kind,))[kind] == every[kind], kind
    assert any(every.values()) and made == []


@pytest.mark.parametrize("name", ["zeek__wikipedia.pcap", "ndpi__1kxun.pcap"])
def test_conn_lines_made_as_the_flows_leave_the_table(name):
    """Session.set_logger(flows=True), as `capbox logs -r` with conn: the logger takes every expired flow as it
    leaves the table (none through the flow ring to Python), and its conn lines equal the Builder's."""
    from tests.conftest import PCAPS
    path, salt = str(PCAPS / name), bytes(range(16))
    logger, got = Logger(("conn",), salt), []
    config = CaptureConfig(source=path, backend="pcapfile", lossless=True, flow_ring=1 << 12, idle_timeout_s=0,
                           active_timeout_s=0)
    with Session(config) as s:
        s.set_logger(logger, flows=True)

        def batch() -> None:
            assert s.read_flows() == []
            got.extend(line for _, lines in logger.take() for line in lines.decode().splitlines())
        s.run_to_eof(batch)
        while s.flush():
            batch()
        batch()
        assert s.counters().flow_records == 0
    assert len(got) > 20 and sorted(got) == sorted(python_lines(path, salt)["conn"])


def test_a_flow_an_injected_packet_expires_is_logged_at_once(tmp_path):
    """Session.set_logger(flows=True) on a session fed by inject (no run loop): a flow that an injected packet's
    time expires has its conn line made then, not held back until the next run or flush."""
    from tests.hwdrivers.packets import tcp4
    logger = Logger(("conn",), bytes(16))
    with session(tmp_path, idle_timeout_s=1) as s:
        s.set_logger(logger, flows=True)
        s.inject(tcp4(sport=40001), ts_ns=T0)
        s.inject(tcp4(sport=40002), ts_ns=T0 + 5_000 * MS)     # the first flow idle for 5 s: it leaves the table
        lines = [json.loads(x) for _, b in logger.take() for x in b.splitlines()]
        assert [r["id.orig_p"] for r in lines] == [40001]


def test_logs_r_writes_into_a_pipe_widened_to_a_megabyte():
    """`capbox logs -r FILE --json | reader`: the pipe takes the lines' megabyte buffers in one write (F_SETPIPE_SZ),
    and the reader gets every line as a file would."""
    import fcntl
    import subprocess
    import sys
    import tempfile
    from tests.conftest import PCAPS
    path = str(PCAPS / "ndpi__1kxun.pcap")
    argv = [sys.executable, "-m", "agent", "logs", "-r", path, "--json"]
    with tempfile.TemporaryFile() as f:
        subprocess.run(argv, stdout=f, check=True)
        f.seek(0)
        want = f.read()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE)
    first = p.stdout.read(1)                    # the command has started writing: the pipe is as it left it
    size = fcntl.fcntl(p.stdout.fileno(), fcntl.F_GETPIPE_SZ)
    got = first + p.stdout.read()
    assert p.wait() == 0 and size == 1 << 20
    assert len(got) == len(want) and got.count(b"\n") == want.count(b"\n") > 100
