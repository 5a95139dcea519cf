"""NXDOMAIN rewriting, the commonest DNS hijack in the wild: a resolver
answers names that cannot exist with the address of a search or ad page.

What says a name cannot exist: another resolver answered it NXDOMAIN, it
is a single label (browsers probe three random ones to find this very
rewriting), or its first label looks random.  What says the answers are
rewritten: they point at a small set of hosts that answers many unrelated
names, often with a short TTL.  Verification through independent resolvers
confirms it (they answer NXDOMAIN)."""
import collections
import functools
import math

from agent.detectors.detector import Recent, is_public_ip

NXDOMAIN_MEMORY_S = 600.0
TARGET_NAMES = 3            # unrelated names answered with one address set: a rewrite target
SHORT_TTL = 300
RANDOM_MIN = 10             # a shorter label is never random (random_label): callers may skip the call


def registered(name: str) -> str:
    labels = name.split(".")
    return ".".join(labels[-3:] if len(labels) >= 3 and len(labels[-1]) == 2 and len(labels[-2]) <= 3
                    else labels[-2:])


@functools.lru_cache(maxsize=1 << 16)
def random_label(label: str) -> bool:
    """A label that reads like noise: long, high entropy, few vowels or digits mixed in (kept: names repeat)."""
    if len(label) < RANDOM_MIN:
        return False
    counts = collections.Counter(label)
    entropy = -sum(n / len(label) * math.log2(n / len(label)) for n in counts.values())
    vowels = sum(label.count(v) for v in "aeiou") / len(label)
    digits = sum(ch.isdigit() for ch in label)
    return entropy >= 3.2 and (vowels < 0.25 or 2 <= digits < len(label) - 2)


class Rewrites:
    def __init__(self):
        self.nxdomain = Recent()     # name -> {server: ts} that answered NXDOMAIN
        self.targets = Recent()      # (server, address set) -> {registered domain: ts} of unlikely names

    def judge(self, f) -> list:
        """(indicator, points, text) for one response."""
        name, server, ts = f["name"], f["server"], f["ts"]
        if f["rcode"] == "NXDOMAIN":
            self.nxdomain.setdefault(name, {})[server] = ts
            return []
        if f["rcode"] != "NOERROR" or not f["ips"] or f["qtype"] not in ("A", "AAAA"):
            return []
        out = []
        said = self.nxdomain.get(name)
        others = [s for s, t in said.items() if s != server and ts - t <= NXDOMAIN_MEMORY_S] if said else []
        public = [ip for ip in f["ips"] if is_public_ip(ip)] if "." not in name else ()   # (read only then)
        unlikely = bool(others)
        if others:
            out.append(("nxdomain_elsewhere", 60, f"{', '.join(others[:2])} answered NXDOMAIN for {name}, "
                        f"{server} answered {', '.join(f['ips'][:2])}"))
        if public:
            unlikely = True
            out.append(("single_label_answered", 40, f"the single-label name {name} resolved to {public[0]}"))
        elif random_label(name.partition(".")[0]):
            unlikely = True
            out.append(("random_name", 15, f"{name} looks random"))
        if not unlikely:
            return out
        names = self.targets.setdefault((server, tuple(f["ips"])), Recent(64))
        names[registered(name)] = ts
        if len(names) >= TARGET_NAMES:
            out.append(("rewrite_target", 50, f"{server} answered {len(names)} unlikely names "
                        f"({', '.join(list(names)[-3:])}) with {', '.join(f['ips'][:2])}"))
        if f["ttl"] is not None and f["ttl"] <= SHORT_TTL:
            out.append(("short_ttl", 10, f"TTL {f['ttl']} s"))
        return out
