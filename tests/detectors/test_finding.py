"""detector.finding builds a Detection by setting its fields as one dict (not through the frozen class's
__init__): it must be the Detection that __init__ makes, with every field the class declares."""
import dataclasses
import pickle

import pytest

from agent.detectors.detector import Indicators, finding
from agent.events import Detection


def _made(attacker, verify):
    ind = Indicators()
    ind.add("bogon", 45, "a.example resolved to 10.0.0.1, not a public address")
    ind.add("ttl_jump", 70, "TTL 9000 s, was 60 s")
    evidence = {"domain": "a.example", "answers": ["10.0.0.1"]}
    kw = dict(ts=1700000000.25, src="10.0.0.53", dst="10.0.0.7", protocol="DNS", summary="DNS hijacking suspected",
              evidence=evidence, key="dns_hijack|m|10.0.0.7", src_mac="02:00:00:00:00:01", dst_mac="02:00:00:00:00:02",
              attacker=attacker, attacker_mac="02:00:00:00:00:01", verify=verify)
    expected = Detection(type="dns_hijack", score=100, severity="critical", confidence=1.0, src=kw["src"], dst=kw["dst"],
                         protocol="DNS", description="DNS hijacking suspected: " + "; ".join(i["text"] for i in ind.items),
                         evidence={**evidence, "score": 100, "indicators": ind.items}, first_seen=kw["ts"],
                         src_mac=kw["src_mac"], dst_mac=kw["dst_mac"],
                         attacker=kw["src"] if attacker is None else attacker, attacker_mac=kw["attacker_mac"],
                         key=kw["key"], verify=verify)
    return finding("dns_hijack", ind, **kw), expected


@pytest.mark.parametrize("attacker,verify", [(None, None), ("10.0.0.66", {"kind": "dns", "domain": "a.example"})])
def test_finding_is_the_detection_init_makes(attacker, verify):
    d, expected = _made(attacker, verify)
    assert type(d) is Detection
    assert list(vars(d)) == [f.name for f in dataclasses.fields(Detection)]   # every field, in order
    assert d == expected and repr(d) == repr(expected)
    assert dataclasses.asdict(d) == dataclasses.asdict(expected) == d.as_dict()
    assert pickle.loads(pickle.dumps(d)) == expected
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.score = 1


def test_finding_without_indicators_is_its_summary():
    d = finding("ssl_strip", Indicators(), ts=1.0, src="a", dst="b", protocol="HTTP", summary="s", evidence={}, key="k")
    assert d == Detection(type="ssl_strip", score=0, severity="low", confidence=0.0, src="a", dst="b", protocol="HTTP",
                          description="s", evidence={"score": 0, "indicators": []}, first_seen=1.0, attacker="a",
                          key="k")


def test_a_deferred_finding_is_the_detection_it_makes():
    """dns_hijack defers its plain bogon findings (Deferred): read, compared or pickled, each is the Detection its
    function makes; pickled, it arrives as that Detection, from far fewer bytes."""
    from agent.detectors import dns_hijack
    from agent.detectors.detector import Deferred
    args = ("a.example.com", "A", 7, "NOERROR", ["10.0.0.1"], [], 300, "10.0.0.53", "10.0.0.7", 5353, "udp",
            "02:00:00:00:00:01", ["10.0.0.53"], ["10.0.0.1"], [], 1.5, "02:00:00:00:00:02")
    want = dns_hijack.bogon_finding(*args)
    assert want.evidence["indicators"][0]["name"] == "bogon" and want.key == "dns_hijack|02:00:00:00:00:01|10.0.0.7"

    def deferred():
        return Deferred(dns_hijack.bogon_finding, args)
    sent = pickle.loads(pickle.dumps(deferred()))
    assert type(sent) is Detection and sent == want and list(vars(sent)) == list(vars(want))
    assert len(pickle.dumps(deferred())) * 3 < len(pickle.dumps(want))
    assert vars(deferred()) == vars(want) and list(vars(deferred())) == list(vars(want))
    assert deferred() == want and want == deferred() and repr(deferred()) == repr(want)
    assert dataclasses.asdict(deferred()) == dataclasses.asdict(want) == deferred().as_dict()
    d = deferred()
    assert isinstance(d, Detection) and d.score == 45 and type(d) is Detection    # read: it became the Detection
    with pytest.raises(dataclasses.FrozenInstanceError):
        deferred().score = 1
