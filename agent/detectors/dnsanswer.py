"""What one DNS answer says by itself, before any history is read: its names, addresses and least TTL, which of
its addresses are public, whether its name is one the Internet answers, and what verification would ask of it.
Made once per answer (or per template of repeats: dnsrun) for dns_hijack's judging."""
from agent.detectors.detector import ANSWERS, is_public_ip
from agent.detectors.nxdomain import RANDOM_MIN, random_label
from hwdrivers import records

ADDRESS_TYPES = (1, 28)     # A, AAAA
CNAME = 5


def answer_facts(rec) -> dict:
    """What parse() reads of an answer's record that detect() judges by (name, type, rcode, addresses, the least
    TTL of its addresses, CNAMEs), and what detect() concludes from them alone.  Made for every answer: the C
    core's reading of its addresses and which are public (records.answer_ips), else one pass over the records
    and one over the addresses (a list sorted only when it has two)."""
    cnames = []
    made = records.answer_ips(rec)        # (as the C core made them: most answers' records are never made)
    if made is not None:
        ips, ttl, public_bits = made
        if not public_bits:            # (the list itself: nothing changes these lists, and a finding pickles it once)
            public, private = [], ips
        elif public_bits == (1 << len(ips)) - 1:
            public, private = ips, []
        else:
            public = [ip for i, ip in enumerate(ips) if public_bits >> i & 1]
            private = [ip for i, ip in enumerate(ips) if not public_bits >> i & 1]
    else:
        ips, ttl = [], None
        for rr in rec.rrs:
            if rr.section == "answer":
                t = rr.type
                if t in ADDRESS_TYPES:
                    ips.append(rr.value)
                    if ttl is None or rr.ttl < ttl:
                        ttl = rr.ttl
                elif t == CNAME:
                    cnames.append(rr.value.lower())
        if len(ips) > 1:
            ips = sorted(set(ips))
        public, private = [], []
        for ip in ips:
            known = ANSWERS.get(ip)
            (public if (is_public_ip(ip, ANSWERS) if known is None else known) else private).append(ip)
    name, qtype = rec.name.lower(), records.dns_type(rec.qtype)
    # Rewrites.judge() reads (and learns from) an answer of such a name even with no NXDOMAIN seen for it
    unlikely = False
    if ips and (qtype == "A" or qtype == "AAAA"):
        label = name.partition(".")[0]
        unlikely = ("." not in name and bool(public)) or (len(label) >= RANDOM_MIN and random_label(label))
    return {"name": name, "qtype": qtype, "key": (name, qtype), "rcode": records.dns_rcode(rec.rcode), "ips": ips,
            "ttl": ttl, "cnames": cnames, "public": public, "private": private, "unlikely": unlikely,
            "bogus": (None, False)}


_LOCAL = [None, frozenset(), ()]   # the local suffixes last asked about: them, as names, and as endings


def verification(name: str, qtype: str, ips: list):
    """What verification checks of a public name's A or AAAA answer (its addresses asked again by another
    path), None for any other answer."""
    if ips and qtype in ("A", "AAAA"):
        return {"kind": "dns", "domain": name, "record_type": qtype, "local_ips": ips}
    return None


def public_name(name: str, local_suffixes: tuple) -> bool:
    """Whether a name is one the Internet answers: not a reverse name, nor a local suffix or under one (two string
    tests, with the suffixes' forms made once per configuration)."""
    if "." not in name:
        return False
    if _LOCAL[0] is not local_suffixes:
        _LOCAL[:] = [local_suffixes, frozenset(local_suffixes),
                     (".in-addr.arpa", ".ip6.arpa") + tuple("." + s for s in local_suffixes)]
    return name not in _LOCAL[1] and not name.endswith(_LOCAL[2])
