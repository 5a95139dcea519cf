"""What every detector shares: facts in, scored findings out.

A detector module has `parse(event)` (the packet facts it needs, or None)
and a `Detector` whose `detect(facts)` returns findings.  A finding's score
is the sum of its indicators' points (at most 100); the detector's threshold
in [detection] decides whether it is raised, and a raised finding repeats
only when it grows worse or after `dedup_s` of packet time.  Time is always
packet time, so a capture file replays exactly as the wire did."""
import collections
import dataclasses
import functools
import socket
from typing import Optional

from agent.events import Detection
from hwdrivers._hw import lib as _hw

SEVERITIES = ("low", "medium", "high", "critical")


def severity(score: int) -> str:
    return "critical" if score >= 90 else "high" if score >= 70 else "medium" if score >= 50 else "low"


class Recent(collections.OrderedDict):
    """A dict that forgets its oldest entries past `limit` (every table a
    detector keeps is bounded: a flood must not grow the agent).  Slotted: a
    table per sender and per name is made by the hundred thousand (large.pcap),
    and an instance __dict__ each cost 0.5 us to make and memory to keep."""
    __slots__ = ("limit",)

    def __init__(self, limit: int = 65536):
        super().__init__()
        self.limit = limit

    def __setitem__(self, key, value, _set=collections.OrderedDict.__setitem__):
        if key in self:
            self.move_to_end(key)
            _set(self, key, value)
            return
        _set(self, key, value)
        if len(self) > self.limit:
            self.popitem(last=False)


class Indicators:
    """The reasons behind a finding: name, points, and a sentence for people."""
    __slots__ = ("items",)   # (one made for most events judged: without a __dict__, cheaper to make)

    def __init__(self):
        self.items: list = []

    def add(self, name: str, points: int, text: str) -> None:
        self.items.append({"name": name, "points": points, "text": text})

    def has(self, name: str) -> bool:
        return any(i["name"] == name for i in self.items)

    @property
    def score(self) -> int:
        return min(100, sum(i["points"] for i in self.items))

    def __bool__(self) -> bool:
        return bool(self.items)


def finding(type_: str, ind: Indicators, *, ts: float, src: str, dst: str, protocol: str, summary: str,
            evidence: dict, key: str, src_mac: str = "", dst_mac: str = "", attacker: Optional[str] = None,
            attacker_mac: str = "", verify: Optional[dict] = None) -> Detection:
    """A Detection, its fields set as one dict: the frozen class's own __init__ sets its 16 one by one through
    object.__setattr__ (3.3 us against 0.6; large.pcap raises 19,619).  Every field is set here
    (tests/detectors/test_finding.py holds it to Detection's fields)."""
    items, score = ind.items, ind.score
    reasons = "; ".join([i["text"] for i in items])
    d = _NEW(Detection)
    _SET_FIELDS(d, "__dict__", {
        "type": type_, "score": score, "severity": severity(score), "confidence": round(score / 100, 2), "src": src,
        "dst": dst, "protocol": protocol, "description": f"{summary}: {reasons}" if reasons else summary,
        "evidence": {**evidence, "score": score, "indicators": items}, "first_seen": ts, "src_mac": src_mac,
        "dst_mac": dst_mac, "attacker": src if attacker is None else attacker, "attacker_mac": attacker_mac,
        "key": key, "verify": verify})
    return d


_NEW, _SET_FIELDS = object.__new__, object.__setattr__


_DICT = Detection.__dict__["__dict__"]   # an instance's own dict (Deferred's __dict__ makes the Detection first)


class Deferred(Detection):
    """A finding held as what it is made from: the Detection make(*args) returns, made when something first reads
    it (it then becomes that Detection, its class too) or in the process it is pickled to (sent as make and args).
    The consumer worker raises most findings (large.pcap's 19,619 bogons) only to send them to its parent: it
    builds none, and sends each in a third of the bytes.  make: a module's function (pickled by name)."""

    def __init__(self, make, args: tuple):
        _DICT.__set__(self, {"_deferred": (make, args)})

    def __reduce__(self):
        return _DICT.__get__(self)["_deferred"]

    def made(self) -> Detection:
        """It, as the Detection it stands for (its fields set in place, in their order; its class Detection's)."""
        make, args = _DICT.__get__(self)["_deferred"]
        _DICT.__set__(self, _DICT.__get__(make(*args)))
        _SET_FIELDS(self, "__class__", Detection)
        return self

    @property
    def __dict__(self):           # (vars(): the fields, as of a Detection)
        return _DICT.__get__(self.made())

    def __eq__(self, other):
        return self.made() == other

    def __hash__(self):
        return hash(self.made())

    def __repr__(self):
        return repr(self.made())


class _Made:
    """A field of a Deferred: reading it makes the Detection (not a data descriptor: the made one's own field is
    read from then on)."""
    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __get__(self, obj, cls=None):
        if obj is None:
            return getattr(Detection, self.name)
        return getattr(obj.made(), self.name)


for _f in dataclasses.fields(Detection):
    setattr(Deferred, _f.name, _Made(_f.name))


class Detector:
    """The base of every detector: threshold, repeats, counters."""

    name = ""
    kinds: tuple = ()          # event kinds it reads (hwdrivers event names)
    learns: tuple = ()         # more kinds it only learns the LAN from (agent.detectors.lan)
    threshold_key = ""         # its threshold in [detection]

    def __init__(self, cfg):
        from agent.detectors.lan import Lan
        self.cfg = cfg
        self.threshold = getattr(cfg, self.threshold_key)
        self._raised = Recent(16384)
        self.counts = collections.Counter()
        self.lan = Lan()

    @classmethod
    def all_kinds(cls) -> tuple:
        """Every event kind it is fed: those it reads and those it learns from."""
        return tuple(dict.fromkeys(cls.kinds + cls.learns))

    @staticmethod
    def parse(event):
        raise NotImplementedError

    def detect(self, facts) -> list:
        raise NotImplementedError

    def feed(self, event) -> list:
        """Detections raised by one packet event, for a detector used alone: judge, then learn its own LAN
        (the pipeline, agent.detectors.pipeline, judges with every detector first and learns once)."""
        q = getattr(event, "query", None) if event.kind == "dns" else None
        if q is not None:                        # a query folded into it by the C core goes first, as its own event
            return self.feed(q) + self.feed(dataclasses.replace(event, query=None))
        out = self.judge(event)
        try:
            self.lan.learn(event)
        except (ValueError, IndexError, KeyError, UnicodeError):
            self.counts["unlearned"] += 1
        return out

    def judge(self, event) -> list:
        """Detections raised by one packet event (parse + detect + threshold), learning nothing."""
        counts = self.counts
        counts["events"] += 1
        if event.kind not in self.kinds:
            return []
        try:
            facts = self.parse(event)
        except (ValueError, IndexError, KeyError, UnicodeError) as e:  # a malformed payload is counted and skipped
            counts["unparsed"] += 1
            counts[f"unparsed:{type(e).__name__}"] += 1
            return []
        if facts is None:
            return []
        found = self.detect(facts)
        return self.threshold_and_dedup(found) if found else found

    def judge_query(self, q) -> list:
        """A DNS query the C core folded into the next DNS event (its PacketEvent.query), judged as its own event
        (a detector may read just the fields it needs instead)."""
        return self.judge(q)

    def seen(self, key: str, ts: float, score: int) -> bool:
        """Whether a finding of this key and score would be a repeat (checked before one is built)."""
        last = self._raised.get(key)
        return last is not None and ts - last[0] < self.cfg.dedup_s and score <= last[1]

    def threshold_and_dedup(self, found: list) -> list:
        out = []
        for d in found:
            if d.score < self.threshold:
                self.counts["below_threshold"] += 1
                continue
            if self.seen(d.key, d.first_seen, d.score):
                self.counts["repeats"] += 1
                continue
            self._raised[d.key] = (d.first_seen, d.score)
            self.counts["raised"] += 1
            out.append(d)
        return out


# IPv4 /24s where the answer differs from one address to the next (192.0.0.0/29 and .170/31, the broadcast);
# IPv6: ::/64 (::1, ::, IPv4-mapped) address by address
_MIXED_V4 = ("192.0.0", "255.255.255")
_MIXED_V6 = (bytes(8),)


PUBLIC: dict = {}            # address -> is_public_ip: the few addresses a LAN's packets carry, asked many times each
                             # (hot paths read it inline, calling is_public_ip on a miss: on None, not on False)
ANSWERS: dict = {}           # the same for DNS answers' addresses: a capture of ever-new answers (large.pcap: one in
                             # three answer addresses new) emptied the hosts' table every 65,536 of them
_KNOWN_MAX = 1 << 16


def is_public_ip(addr: str, known: dict = PUBLIC) -> bool:
    """Whether addr is a global unicast address, as the C core's one table of the non-global ranges answers
    (hw_addr_public, which the DNS answers' facts use too: Python's ipaddress answers differently from one
    release to the next).  Every detector asks this of every packet's addresses: answers are kept (bounded) in
    `known`, by address, then by /24 for IPv4 and by /64 for IPv6 (no non-global range is narrower elsewhere),
    so a capture with a million addresses does not miss each time."""
    public = known.get(addr)
    if public is None:
        if len(known) >= _KNOWN_MAX:
            known.clear()
        public = known[addr] = _is_public_ip(addr)
    return public


def _is_public_ip(addr: str) -> bool:
    if ":" not in addr:
        net = addr.rpartition(".")[0]
        if net not in _MIXED_V4:
            return _public_v4_net(net)
        return _public(addr)
    try:
        head = socket.inet_pton(socket.AF_INET6, addr)[:8]
    except OSError:
        return _public(addr)             # a scoped address (fe80::1%eth0)
    return _public(addr) if head in _MIXED_V6 else _public_v6_net(head)


@functools.lru_cache(maxsize=1 << 14)
def _public_v4_net(net: str) -> bool:
    return _public(net + ".1")


@functools.lru_cache(maxsize=1 << 14)
def _public_v6_net(head: bytes) -> bool:
    return _public(socket.inet_ntop(socket.AF_INET6, head + bytes(7) + b"\x01"))


@functools.lru_cache(maxsize=1 << 16)
def _public(addr: str) -> bool:
    """The core's answer for an address in text (an IPv4-mapped one judged as its IPv4 address); False for what
    is no address."""
    try:
        if ":" in addr:
            return bool(_hw.hw_addr_public(6, socket.inet_pton(socket.AF_INET6, addr.partition("%")[0])))
        return bool(_hw.hw_addr_public(4, socket.inet_pton(socket.AF_INET, addr)))
    except OSError:
        return False
