"""TLS interception (mitmproxy, bettercap's https.proxy, a corporate or
malware proxy): the certificate a client gets for a name is not the one
that name has.  Read from the Certificate message, which travels in clear
up to TLS 1.2 (TLS 1.3 encrypts it: no passive box sees those).

Per name (SNI, else the certificate's subject), the issuers seen before are
kept.  Indicators (a finding needs tls_intercept_threshold, 60):
- an issuer never seen for a name seen before (60);
- a self-issued leaf for a name (40);
- a certificate minted minutes ago (notBefore within 10 minutes of the
  handshake: 30; within 3 days, as mitmproxy back-dates its own: 10);
- an issuer that names an interception tool (25);
- served through another MAC than the name's TLS went through before (20).
The attacker is whoever sent the certificate: when the frames carry the
server's address from a MAC that is not the server's (nor the router's),
that MAC, by its own address.  The verification spec (kind "tls") has
independent paths fetch the name's certificate and compare its SHA-256 with
the one seen on the wire."""
from agent.detectors import x509
from agent.detectors.detector import Detector as Base, Indicators, Recent, finding
from agent.detectors.handshake import certificates, cut_chain
from agent.detectors.lan import LEARN_KINDS
from hwdrivers import records

FRESH_S = 600.0
BACKDATED_S = 3 * 86400.0
TOOL_ISSUERS = ("mitmproxy", "bettercap", "burp", "portswigger", "charles proxy", "fiddler", "owasp zap", "sslsplit")


def parse(ev):
    """The SNI of a ClientHello, or the certificates of a server's Certificate message; None for anything else.
    From the event's TLS record (parsed in C); a Certificate message that runs past its segment, which the record
    leaves out, is read from the payload by agent.detectors.x509 (a cut leaf still names its issuer)."""
    rec = records.record_of(ev)
    base = {"flow": ev.flow_id, "src": ev.src, "dst": ev.dst, "sport": ev.sport, "dport": ev.dport,
            "src_mac": ev.src_mac, "dst_mac": ev.dst_mac, "ts": ev.ts}
    if rec is not None and rec.client_hello:
        return {**base, "client_hello": True, "sni": rec.sni.lower().rstrip("."), "certs": []}
    certs = certificates(rec) if rec is not None else []
    if not certs and (rec is None or not rec.selected_version):
        for der in cut_chain(ev.payload):
            try:
                certs.append(x509.parse(der))
            except (IndexError, ValueError):
                break                       # cut short before its issuer: the rest is further on
    return {**base, "client_hello": False, "sni": "", "certs": certs} if certs else None


def _name_of(subject: str) -> str:
    for part in subject.split(", "):
        if part.startswith("CN="):
            return part[3:].lower()
    return ""


class Detector(Base):
    name = "tls_intercept"
    kinds = ("tls",)
    learns = tuple(k for k in LEARN_KINDS if k != "tls")
    threshold_key = "tls_intercept_threshold"
    parse = staticmethod(parse)

    def __init__(self, cfg):
        super().__init__(cfg)
        self.snis = Recent()        # flow id -> SNI its client asked for
        self.issuers = Recent()     # name -> {issuer: first ts}
        self.paths = Recent()       # name -> {MAC the certificate came through}

    def detect(self, f) -> list:
        if f["client_hello"]:
            if f["sni"]:
                self.snis[f["flow"]] = f["sni"]
            return []
        leaf = f["certs"][0]
        name = self.snis.get(f["flow"]) or _name_of(leaf["subject"])
        if not name:
            return []
        seen = self.issuers.setdefault(name, {})
        paths = self.paths.setdefault(name, set())
        ind = Indicators()
        if seen and leaf["issuer"] not in seen:
            ind.add("new_issuer", 60, f"{name} was issued by {', '.join(list(seen)[:2])}, now by {leaf['issuer']}")
        if leaf["self_issued"]:
            ind.add("self_signed", 40, f"a self-issued certificate for {name}")
        if leaf["not_before"] is not None:
            age = f["ts"] - leaf["not_before"]
            if -FRESH_S <= age <= FRESH_S:
                ind.add("fresh_certificate", 30, f"minted {max(age, 0) / 60:.0f} minutes before the handshake")
            elif 0 <= age <= BACKDATED_S and seen and leaf["issuer"] not in seen:
                ind.add("recent_certificate", 10, f"minted {age / 3600:.0f} hours before the handshake")
        chain_issuers = " ".join(c["issuer"] for c in f["certs"]).lower()
        tool = next((t for t in TOOL_ISSUERS if t in chain_issuers), None)
        if tool:
            ind.add("tool_issuer", 25, f"issued by {tool}'s CA")
        if ind and paths and f["src_mac"] not in paths:
            ind.add("other_path", 20, f"served through {f['src_mac']}, {name} came through {', '.join(sorted(paths)[:2])}")
        seen.setdefault(leaf["issuer"], f["ts"])
        if not ind:
            if len(paths) < 8:
                paths.add(f["src_mac"])
            return []
        attacker, spoofed = self.lan.sender(f["src"], f["src_mac"], f["dst"])
        evidence = {"name": name, "issuer": leaf["issuer"], "subject": leaf["subject"],
                    "not_before": leaf["not_before"], "not_after": leaf["not_after"],
                    "fingerprint": leaf["fingerprint"], "issuers_before": sorted(seen)[:4],
                    "chain_length": len(f["certs"]), "server": f["src"], "server_port": f["sport"], "client": f["dst"],
                    "server_mac": f["src_mac"], "spoofed_server": spoofed}
        verify = None if "*" in name else {"kind": "tls", "host": name, "port": f["sport"], "sni": name,
                                            "fingerprint": leaf["fingerprint"]}
        return [finding("tls_intercept", ind, ts=f["ts"], src=attacker if spoofed else f["src"], dst=f["dst"],
                        protocol="TLS", summary=f"TLS interception suspected for {name}", evidence=evidence,
                        key=f"tls_intercept|{f['src_mac'] or attacker}|{f['dst']}", src_mac=f["src_mac"],
                        attacker=attacker, attacker_mac=f["src_mac"], verify=verify)]
