"""The dns and conn log lines the C core writes (hwdrivers.logs) equal, byte
for byte, the lines the Python Builder writes of the same packets (its
records through json.dumps, as the live log service writes them), over
every shared capture; and the JSON text helpers equal json.dumps on the
strings and floats that are hard to get right."""
import json

import pytest

from agent.logs.offline import log_text
from agent.logs.records import Builder
from hwdrivers import CaptureConfig, Session
from hwdrivers.logs import Logger
from tests.conftest import ALL_PCAPS, TUNNEL_PCAPS

TYPES = ("dns", "conn")


def python_lines(path: str, salt: bytes) -> dict:
    """The records of the file by the Python Builder only (every event and flow as a Python object)."""
    b = Builder(TYPES, salt)
    out = {t: [] for t in TYPES}

    def put(records) -> None:
        for kind, rec in records:
            out[kind].append(json.dumps(rec, separators=(",", ":"), default=str))
    config = CaptureConfig(source=path, backend="pcapfile", events=frozenset({"dns"}), event_ring=1 << 14,
                           lossless=True, flow_ring=1 << 16, idle_timeout_s=0, active_timeout_s=0, max_flows=1 << 20)
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


def c_lines(path: str, salt: bytes) -> dict:
    out = {t: [] for t in TYPES}
    import agent.logs.offline as offline
    real = offline.Builder
    offline.Builder = lambda types: real(types, salt)        # the same uids on both sides
    try:
        log_text(path, TYPES, lambda kind, lines: out[kind].extend(lines.decode().splitlines()))
    finally:
        offline.Builder = real
    return out


@pytest.mark.parametrize("path", ALL_PCAPS + TUNNEL_PCAPS, ids=lambda p: p.name)
def test_c_lines_equal_python_lines(path):
    salt = bytes(range(16))
    want, got = python_lines(str(path), salt), c_lines(str(path), salt)
    for kind in TYPES:
        assert sorted(got[kind]) == sorted(want[kind]), kind


def test_query_table_is_bounded_and_queries_go_out_alone():
    """Two pending queries at most: the third pushes the first out alone (counted); flush writes the rest."""
    from tests.conftest import pcap
    lg = Logger(["dns"], bytes(16), pending_max=2)
    config = CaptureConfig(source=pcap("zeek__wikipedia.pcap"), backend="pcapfile", events=frozenset({"dns"}),
                           event_ring=1 << 14, lossless=True)
    with Session(config) as s:
        s.run_to_eof(lambda: s.events_through(lg.events))
        s.events_through(lg.events)
    lg.flush()
    lines = [json.loads(x) for _, b in lg.take() for x in b.splitlines()]
    stats = lg.stats()
    assert stats["pending"] == 0 and stats["records"]["dns"] == len(lines)
    alone = [r for r in lines if "rcode" not in r]
    assert lines and all("rtt" not in r for r in alone)



def test_conn_lines_equal_python_on_random_flows():
    """Random flow records (times that round on a half, durations below 1e-4, ports, flags, tunnels, vlans)
    through the C logger and through the Builder: the same text, float for float."""
    import random
    from hwdrivers import flows
    from hwdrivers._hw import ffi
    rng = random.Random(22)
    n = 4000
    buf = ffi.new("struct hw_flow_record[]", n)
    for i in range(n):
        f = buf[i]
        f.id = i + 1
        f.family = rng.choice((4, 6))
        f.proto = rng.choice((6, 17, 132, 47, 50, 6, 17))
        for k in range(16 if f.family == 6 else 4):
            f.src[k], f.dst[k] = rng.randrange(256), rng.randrange(256)
        f.sport, f.dport = rng.randrange(65536), rng.randrange(65536)
        base = rng.choice((1_300_000_000, 1_700_000_000, 4_100_000_000, 12, 0))
        f.first_ns = base * 10**9 + rng.choice((rng.randrange(10**9), rng.randrange(2000) * 500, 999_999_500))
        f.last_ns = f.first_ns + rng.choice((0, rng.randrange(10**5), rng.randrange(10**12), 500, 1500))
        f.rtt_ns = rng.choice((0, rng.randrange(10**4), rng.randrange(10**9), 500))
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
