"""Honeytoken search in the C core: token events, their snippet, the empty set."""
import pytest

from hwdrivers import CaptureError, ErrorCode
from tests.hwdrivers.packets import ACK, B4, MS, PSH, T0, session, tcp4, udp4

TOKEN = b"ht7f3a9c2e1b"


def run(tmp_path, tokens, payloads, events=frozenset({"token"})):
    with session(tmp_path, events=events) as s:
        s.set_tokens(tokens)
        for i, p in enumerate(payloads):
            s.inject(tcp4(payload=p, flags=PSH | ACK, seq=1000 + 2000 * i) if i % 2 == 0 else
                     udp4(B4, "10.0.0.9", 5000, 6000, payload=p), ts_ns=T0 + i * MS)
        return s.read_events(), s.counters()


def test_a_token_anywhere_in_a_payload_is_an_event_whose_snippet_holds_it(tmp_path):
    far = b"POST /login HTTP/1.1\r\n\r\n" + b"x" * 3000 + b"user=" + TOKEN + b"&pw=1"
    near = b"q=" + TOKEN
    evs, c = run(tmp_path, [TOKEN, b"other-token-2"], [far, near, b"nothing to see", b"other-token-2 and more"])
    assert [(e.kind, e.src) for e in evs] == [("token", "10.0.0.1"), ("token", B4), ("token", B4)]
    assert TOKEN in evs[0].payload and evs[0].payload.index(TOKEN) == 256   # 256 bytes of context before it
    assert evs[1].payload == near
    assert evs[2].payload.startswith(b"other-token-2")
    assert c.events["token"] == 3


def test_no_tokens_no_search_and_a_cleared_set_stops_it(tmp_path):
    evs, c = run(tmp_path, [], [b"q=" + TOKEN])
    assert evs == [] and c.events["token"] == 0
    with session(tmp_path, events=frozenset({"token"})) as s:
        s.set_tokens([TOKEN])
        s.set_tokens([])
        s.inject(tcp4(payload=TOKEN, flags=PSH | ACK), ts_ns=T0)
        assert s.read_events() == []


def test_tokens_are_not_events_unless_asked_for(tmp_path):
    evs, c = run(tmp_path, [TOKEN], [b"GET /" + TOKEN + b" HTTP/1.1\r\n\r\n"], events=frozenset({"http"}))
    assert [e.kind for e in evs] == ["http"] and c.events["token"] == 0


@pytest.mark.parametrize("bad", [[b"abc"], [b"x" * 257]])
def test_bad_token_lengths_are_refused(tmp_path, bad):
    with session(tmp_path, events=frozenset({"token"})) as s:
        with pytest.raises(CaptureError) as e:
            s.set_tokens(bad)
        assert e.value.code == ErrorCode.ARG


def test_many_tokens_sharing_first_bytes(tmp_path):
    tokens = [f"htab{i:06d}zz".encode() for i in range(5000)]
    evs, _ = run(tmp_path, tokens, [b"..htab004999zz..", b"htab00499", b"xxhtab000000zz"])
    assert [e.payload for e in evs] == [b"..htab004999zz..", b"xxhtab000000zz"]
