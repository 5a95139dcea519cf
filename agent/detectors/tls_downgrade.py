"""TLS downgrades and weak negotiations, from the hellos of each connection.

Indicators (a finding needs tls_downgrade_threshold, 50; the score is the
strongest indicator plus 5 for each other one):
- the ServerHello's version is below TLS 1.2 while the client offered 1.2
  or more (client offered 1.3: 90; 1.2: 80): a MITM that rewrote the hello;
- RFC 8446's downgrade sentinel in the server random while the client
  offered more than was negotiated (90): the server got a weaker hello than
  the client sent;
- an inappropriate_fallback alert (70): the server refused a fallback that
  someone forced; TLS_FALLBACK_SCSV in a ClientHello (35): a retry at a
  lower version;
- negotiated SSLv2 (95), SSLv3 (80), TLS 1.0 (55), TLS 1.1 (50);
- a suite chosen with no encryption (NULL, 90), EXPORT (85), anonymous key
  exchange (85), RC4 (60), single DES (60), 3DES (45); MD5 as MAC (5).
TLS 1.3 clients meeting TLS 1.2 servers, the normal case for years, raise
nothing.  The finding's source is the side that sent the ServerHello (or
the alert): the server, or whoever answered in its name."""
from agent.detectors.detector import Detector as Base, Indicators, Recent, finding
from agent.detectors.handshake import INAPPROPRIATE_FALLBACK, event_records, version_name
from agent.detectors.lan import LEARN_KINDS
from agent.detectors.suites import SUITES, suite_name

VERSION_POINTS = {0x0002: 95, 0x0300: 80, 0x0301: 55, 0x0302: 50}
TLS12, TLS13 = 0x0303, 0x0304


def weakness(code: int) -> list:
    """(indicator, points, why) for what is weak in a suite."""
    name = SUITES.get(code, "")
    out = []
    if "_WITH_NULL_" in name or name == "TLS_NULL_WITH_NULL_NULL":
        out.append(("null_cipher", 90, "no encryption"))
    if "EXPORT" in name:
        out.append(("export_cipher", 85, "an EXPORT suite (40-56 bit keys)"))
    if "_anon_" in name:
        out.append(("anonymous_key_exchange", 85, "anonymous key exchange (no server authentication)"))
    if "_RC4_" in name or "RC4_128" in name:
        out.append(("rc4", 60, "RC4"))
    if "_DES_CBC_" in name or "_DES40_" in name or "DES_64_" in name:
        out.append(("des", 60, "single DES"))
    if "_3DES_" in name or "DES_192_EDE3" in name:
        out.append(("3des", 45, "3DES"))
    if name.endswith("_MD5"):
        out.append(("md5_mac", 5, "MD5 as MAC"))
    return out


def parse(ev):
    records = event_records(ev)
    if not records:
        return None
    return {"records": records, "flow": ev.flow_id, "src": ev.src, "dst": ev.dst, "sport": ev.sport,
            "dport": ev.dport, "src_mac": ev.src_mac, "dst_mac": ev.dst_mac, "ts": ev.ts}


class Detector(Base):
    name = "tls_downgrade"
    kinds = ("tls",)
    learns = tuple(k for k in LEARN_KINDS if k != "tls")
    threshold_key = "tls_downgrade_threshold"
    parse = staticmethod(parse)

    def __init__(self, cfg):
        super().__init__(cfg)
        self.hellos = Recent()    # flow id -> the client's hello (and whether the server answered)

    def detect(self, f) -> list:
        out = []
        for r in f["records"]:
            if r["type"] == "client_hello":
                self.hellos[f["flow"]] = {**r, "client": f["src"], "server": f["dst"], "port": f["dport"],
                                          "ts": f["ts"], "answered": False}
                if r["fallback_scsv"]:
                    ind = Indicators()
                    ind.add("fallback_scsv", 35, f"the client retried with TLS_FALLBACK_SCSV at "
                            f"{version_name(r['max_version'])}: an earlier handshake failed")
                    out.append(self._finding(ind, f, r, None, src=f["dst"], dst=f["src"], src_mac=f["dst_mac"]))
            elif r["type"] == "server_hello":
                hello = self.hellos.get(f["flow"])
                if hello is None and (r["version"] in VERSION_POINTS and r["version"] < 0x0301 or weakness(r["suite"])):
                    # an SSL 2.0/3.0 or broken-cipher session is one whatever the client asked (its hello unseen)
                    hello = {"max_version": r["version"], "supported_versions": [], "sslv2_format": False,
                             "fallback_scsv": False, "suites": [], "sni": "", "port": f["sport"], "answered": False}
                if hello is None or hello["answered"]:
                    continue  # only a connection whose ClientHello was seen, and its first ServerHello
                hello["answered"] = True
                found = self._server_hello(f, r, hello)
                if found is not None:
                    out.append(found)
            elif r["type"] == "alert" and r["description"] == INAPPROPRIATE_FALLBACK:
                ind = Indicators()
                ind.add("inappropriate_fallback", 70, "the server refused a fallback (inappropriate_fallback): "
                        "a handshake at a higher version was broken on the way")
                hello = self.hellos.get(f["flow"])
                out.append(self._finding(ind, f, hello, None, src=f["src"], dst=f["dst"], src_mac=f["src_mac"]))
        return out

    def _server_hello(self, f, sh, hello):
        ind = Indicators()
        v, offered = sh["version"], hello["max_version"]
        if v < TLS12 and offered >= TLS12:
            ind.add("version_downgrade", 90 if offered >= TLS13 else 80,
                    f"the client offered {version_name(offered)}, the server answered {version_name(v)}")
        if sh["downgrade_sentinel"] and offered > v:
            ind.add("downgrade_sentinel", 90, f"the server random says it supports {version_name(sh['downgrade_sentinel'] + 1)} "
                    f"or more, yet {version_name(v)} was negotiated with a client offering {version_name(offered)}")
        if v in VERSION_POINTS:
            ind.add("obsolete_version", VERSION_POINTS[v], f"{version_name(v)} negotiated")
        for name, points, why in weakness(sh["suite"]):
            ind.add(name, points, f"{suite_name(sh['suite'])} chosen: {why}")
        if not ind:
            return None
        return self._finding(ind, f, hello, sh, src=f["src"], dst=f["dst"], src_mac=f["src_mac"])

    def _finding(self, ind, f, hello, sh, src, dst, src_mac):
        # the strongest reason counts in full, each other one adds a little
        ranked = sorted(ind.items, key=lambda i: -i["points"])
        scored = Indicators()
        scored.items = [dict(i, points=i["points"] if k == 0 else min(i["points"], 5)) for k, i in enumerate(ranked)]
        evidence = {"server": src, "client": dst, "server_port": hello["port"] if hello else f["sport"],
                    "sni": hello["sni"] if hello else "", "flow_id": f["flow"]}
        if hello:
            evidence.update({"client_max_version": version_name(hello["max_version"]),
                             "client_supported_versions": [version_name(v) for v in hello["supported_versions"]],
                             "client_sslv2_hello": hello["sslv2_format"], "client_fallback_scsv": hello["fallback_scsv"],
                             "client_suites_offered": len(hello["suites"]),
                             "client_weak_suites_offered": [suite_name(s) for s in hello["suites"] if weakness(s)][:16]})
        if sh:
            evidence.update({"version": version_name(sh["version"]), "suite": suite_name(sh["suite"]),
                             "suite_code": f"0x{sh['suite']:04x}",
                             "downgrade_sentinel": bool(sh["downgrade_sentinel"])})
        what = f"{evidence.get('version', '')} {evidence.get('suite', '')}".strip()
        server = f"{src}:{evidence['server_port']}" + (f" ({evidence['sni']})" if evidence["sni"] else "")
        attacker, spoofed = self.lan.sender(src, src_mac, dst)
        evidence["spoofed_server"] = spoofed
        return finding("tls_downgrade", scored, ts=f["ts"], src=attacker if spoofed else src, dst=dst, protocol="TLS",
                       summary=f"weak or downgraded TLS with {server}" + (f": {what}" if what else ""),
                       evidence=evidence, key=f"tls_downgrade|{src_mac or src}|{dst}",
                       src_mac=src_mac, dst_mac="", attacker=attacker, attacker_mac=src_mac)
