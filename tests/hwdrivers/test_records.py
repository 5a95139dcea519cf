"""Protocol records parsed in C against tshark's decoding of every shared
capture: DNS (id, flags, rcode, question, answer and authority records with
TTLs) and TLS (versions, suites, SNI, ALPN, JA3, JA3S, certificate
fingerprints, subject, issuer and validity)."""
import datetime
import hashlib
import json
import subprocess

import pytest

from agent.detectors.detector import is_public_ip
from hwdrivers import CaptureConfig, RunResult, Session, records
from tests.conftest import ALL_PCAPS, pcap
from tests.hwdrivers.test_pcaps import CORRUPT

NAMES = [p.name for p in ALL_PCAPS if p.name not in CORRUPT]


def our_events(path: str, kinds: frozenset) -> dict:
    """{(ts_us, sport, dport): [PacketEvent]} of the events the core pushed."""
    out = {}
    cfg = CaptureConfig(source=path, events=kinds, lossless=True, event_ring=1 << 12)
    with Session(cfg) as s:
        while True:
            result = s.run(timeout_ms=500)
            for ev in s.read_events():
                out.setdefault((ev.ts_ns // 1000, ev.sport, ev.dport), []).append(ev)
            if result == RunResult.EOF:
                break
    return out


def tshark_packets(tshark: str, path: str, display: str, protos: str) -> list:
    out = subprocess.run([tshark, "-n", "-r", path, "-T", "json", "--no-duplicate-keys", "-J", protos, "-Y", display],
                         capture_output=True, text=True, check=True).stdout
    return [p["_source"]["layers"] for p in json.loads(out or "[]")]


def key(layers: dict) -> tuple:
    sec, frac = layers["frame"]["frame.time_epoch"].split(".")
    l4 = layers.get("udp") or layers.get("tcp")
    sport = l4.get("udp.srcport") or l4.get("tcp.srcport")
    dport = l4.get("udp.dstport") or l4.get("tcp.dstport")
    return int(sec) * 1_000_000 + int(frac[:6]), int(sport), int(dport)


def many(v) -> list:
    return v if isinstance(v, list) else [v]


def nodes(tree: dict) -> list:
    """The record nodes under a tshark section; identical records (one JSON key) merge into lists: split them."""
    out = []
    for v in tree.values() if isinstance(tree, dict) else ():
        for n in many(v):
            if isinstance(n, dict):
                k = len(n["dns.resp.name"]) if isinstance(n.get("dns.resp.name"), list) else 0
                split = [{f: x[i] if isinstance(x, list) else x for f, x in n.items()} for i in range(k)]
                # an NSEC/NSEC3 type bitmap repeats dns.resp.type: the record's own type comes first
                out.extend(split or [{f: x[0] if f == "dns.resp.type" and isinstance(x, list) else x
                                      for f, x in n.items()}])
    return out


VALUES = {1: "dns.a", 2: "dns.ns", 5: "dns.cname", 12: "dns.ptr.domain_name", 28: "dns.aaaa"}


def tshark_rr(n: dict, section: str) -> tuple:
    t = int(n.get("dns.resp.type", "-1"))
    name = n.get("dns.resp.name")
    value = None
    if not all(k in n for k in ("dns.resp.ttl", VALUES.get(t, "dns.resp.type"))):
        return (name, t, None, None, section)  # cut short by the snap length
    if t in VALUES:
        value = n[VALUES[t]]
    elif t == 15:
        value = f"{n['dns.mx.preference']} {n['dns.mx.mail_exchange']}"
    elif t == 6:
        value = " ".join(n[f"dns.soa.{k}"] for k in ("mname", "rname", "serial_number", "refresh_interval",
                                                     "retry_interval", "expire_limit", "minimum_ttl"))
    elif t == 16:
        value = " ".join(many(n["dns.txt"]))
    return ("" if name == "<Root>" else name, t, int(n["dns.resp.ttl"]), value, section)


def our_rr(rr) -> tuple:
    known = rr.type in VALUES or rr.type in (6, 15, 16)
    return rr.name, rr.type, rr.ttl, rr.value if known else None, rr.section


@pytest.mark.parametrize("name", NAMES)
def test_dns_records_match_tshark(name, tshark):
    path = pcap(name)
    ours = our_events(path, frozenset({"dns"}))
    theirs = tshark_packets(tshark, path, "dns && (udp.port == 53 || tcp.port == 53) && !tcp.segments",
                            "frame udp tcp dns")
    compared = 0
    for layers in theirs:
        d = layers["dns"]
        evs = [e for e in ours.get(key(layers), []) if e.kind == "dns"]
        assert evs, f"no DNS event for tshark's frame {layers['frame']['frame.number']}"
        rec = evs[0].record
        assert rec is not None, f"frame {layers['frame']['frame.number']}: {evs[0].record_error}"
        assert rec.id == int(d["dns.id"], 16)
        assert rec.flags == int(d["dns.flags"], 16)
        assert rec.rcode & 15 == int(d["dns.flags_tree"].get("dns.flags.rcode", "0"))
        queries = nodes(d.get("Queries", {}))
        if queries:
            assert rec.name == ("" if queries[0]["dns.qry.name"] == "<Root>" else queries[0]["dns.qry.name"])
            assert rec.qtype == int(queries[0]["dns.qry.type"])
        want = [tshark_rr(n, "answer") for n in nodes(d.get("Answers", {}))]
        want += [tshark_rr(n, "authority") for n in nodes(d.get("Authoritative nameservers", {}))]
        # tshark names SRV owners in dns.srv.* fields: compare those by type, TTL and section
        got = [our_rr(r) if i >= len(want) or want[i][0] is not None else (None,) + our_rr(r)[1:]
               for i, r in enumerate(rec.rrs)]
        assert got == (want[:16] if not rec.cut else want[:len(got)])
        assert rec.edns == ("Additional records" in d and any(
            n.get("dns.resp.type") == "41" for n in nodes(d["Additional records"])))
        compared += 1
    assert compared == len(theirs)


def tls_handshakes(tls: dict) -> list:
    """Every handshake message node of tshark's TLS tree for one frame."""
    out = []
    for rec in many(tls.get("tls.record", [])):
        if isinstance(rec, dict):
            out.extend(h for h in many(rec.get("tls.handshake", [])) if isinstance(h, dict))
    return out


def utc(text: str) -> int:
    """tshark's x509af time ("24-08-12 17:40:17 (UTC)" or "2024-08-12 ...") as epoch seconds."""
    stamp = text.replace(" (UTC)", "")
    fmt = "%y-%m-%d %H:%M:%S" if len(stamp.split("-")[0]) == 2 else "%Y-%m-%d %H:%M:%S"
    return int(datetime.datetime.strptime(stamp, fmt).replace(tzinfo=datetime.timezone.utc).timestamp())


@pytest.mark.parametrize("name", NAMES)
def test_tls_records_match_tshark(name, tshark):
    path = pcap(name)
    ours = our_events(path, frozenset({"tls"}))
    hellos = "(tls.handshake.type == 1 || tls.handshake.type == 2 || tls.handshake.type == 11)"
    theirs = tshark_packets(tshark, path, f"{hellos} && !tcp.segments", "frame tcp tls")
    compared = 0
    for layers in theirs:
        tls = layers.get("tls")
        if not isinstance(tls, dict):
            continue
        evs = [e for e in ours.get(key(layers), []) if e.kind == "tls"]
        assert evs, f"no TLS event for tshark's frame {layers['frame']['frame.number']}"
        rec = evs[0].record
        assert rec is not None, f"frame {layers['frame']['frame.number']}: {evs[0].record_error}"
        for h in tls_handshakes(tls):
            kind = int(h["tls.handshake.type"])
            if kind == 1:
                assert rec.ja3 == h["tls.handshake.ja3"]
                assert rec.version == int(h["tls.handshake.version"], 16)
                suites = [int(c, 16) for c in many(h["tls.handshake.ciphersuites"]["tls.handshake.ciphersuite"])]
                assert list(rec.ciphers) == suites
                names = _all(h, "tls.handshake.extensions_server_name")
                assert rec.sni == (names[0] if names else "")
                alpn = [s for s in _all(h, "tls.handshake.extensions_alpn_str")]
                assert list(rec.alpn) == alpn
            elif kind == 2:
                assert rec.ja3s == h["tls.handshake.ja3s"]
                assert rec.cipher == int(h["tls.handshake.ciphersuite"], 16)
            elif kind == 11:
                ders = [bytes.fromhex(c.replace(":", "")) for c in _all(h, "tls.handshake.certificate")]
                assert [c.sha256 for c in rec.certificates] == [hashlib.sha256(d).hexdigest() for d in ders][:4]
                befores = [utc(t) for t in _all(h, "x509af.utcTime") + _all(h, "x509af.generalizedTime")][0::2]
                if len(befores) >= len(rec.certificates):
                    assert [c.not_before for c in rec.certificates] == befores[:len(rec.certificates)]
                assert all(c.parsed and c.subject and c.issuer for c in rec.certificates)
        compared += 1
    assert compared == len([x for x in theirs if isinstance(x.get("tls"), dict)])


def _all(node, field: str) -> list:
    """Every value of `field` anywhere under a tshark JSON node, in document order."""
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == field:
                out.extend(many(v))
            else:
                out.extend(_all(v, field))
    elif isinstance(node, list):
        for v in node:
            out.extend(_all(v, field))
    return out


@pytest.mark.parametrize("payload,reason", [
    (b"\x12\x34\x01", "dns_header"),
    (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05abc", "dns_name"),
    (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03abc\x00\x00", "dns_question"),
    (b"\x12\x34\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00\x03abc\x00\x00\x01\x00\x01\xc0\x0c\x00\x01", "dns_rr"),
    (b"\x12\x34\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00\x03abc\x00\x00\x01\x00\x01"
     b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x10\x00\x03\x01\x02\x03", "dns_rdata"),
    (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01", "dns_name"),  # pointer loop
])
def test_malformed_dns_is_named(payload, reason):
    assert records.parse_dns(payload) == reason


def test_dns_record_fields():
    msg = (b"\xab\xcd\x81\x83\x00\x01\x00\x00\x00\x01\x00\x01\x07example\x03com\x00\x00\x1c\x00\x01"
           b"\xc0\x14\x00\x06\x00\x01\x00\x00\x03\x84\x00\x20\x02ns\xc0\x14\x04root\xc0\x14"
           b"\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00\x04\x00\x00\x00\x05"
           b"\x00\x00\x29\x04\xd0\x00\x00\x80\x00\x00\x00")
    rec = records.parse_dns(len(msg).to_bytes(2, "big") + msg, tcp=True)
    assert (rec.id, rec.response, rec.rcode, rec.name, rec.qtype) == (0xabcd, True, 3, "example.com", 28)
    assert rec.rrs[0].section == "authority" and rec.rrs[0].value == "ns.com root.com 1 2 3 4 5"
    assert (rec.edns, rec.edns_udp_size, rec.edns_do) == (True, 1232, True)


def self_signed(cn: str):
    """(DER, sha256 hex, not_before, not_after) of a fresh self-signed certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Lab")])
    start = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(start).not_valid_after(start + datetime.timedelta(days=90))
            .sign(key, hashes.SHA256()))
    der = cert.public_bytes(serialization.Encoding.DER)
    return der, hashlib.sha256(der).hexdigest(), int(start.timestamp()), int(start.timestamp()) + 90 * 86400


def test_certificate_message_is_an_event_with_its_certificates(tmp_path):
    from tests.hwdrivers.packets import ACK, PSH, session, tcp4
    der, sha, nb, na = self_signed("box.example")
    chain = len(der).to_bytes(3, "big") + der
    body = len(chain).to_bytes(3, "big") + chain
    hs = b"\x0b" + len(body).to_bytes(3, "big") + body
    payload = b"\x16\x03\x03" + len(hs).to_bytes(2, "big") + hs
    with session(tmp_path, events=frozenset({"tls"})) as s:
        s.inject(tcp4(sport=443, dport=40000, flags=ACK | PSH, payload=payload), ts_ns=1)
        [ev] = s.read_events()
    [c] = ev.record.certificates
    assert (c.sha256, c.subject, c.issuer, c.not_before, c.not_after) == (sha, "O=Lab,CN=box.example",
                                                                          "O=Lab,CN=box.example", nb, na)


def test_sslv2_server_hello_is_read():
    der, sha, _, _ = self_signed("old.example")
    specs = b"\x01\x00\x80\x07\x00\xc0"
    body = b"\x04\x00\x01\x00\x02" + len(der).to_bytes(2, "big") + len(specs).to_bytes(2, "big") + b"\x00\x10"
    msg = body + der + specs + bytes(16)
    rec = records.parse_tls((0x8000 | len(msg)).to_bytes(2, "big") + msg)
    assert (rec.sslv2, rec.server_hello, rec.version, rec.ciphers) == (True, True, 2, (0x010080, 0x0700c0))
    assert rec.certificates[0].sha256 == sha and "CN=old.example" in rec.certificates[0].subject


def test_ja4_of_a_known_client_hello():
    """FoxIO's JA4 of a ClientHello built here: TLS 1.3, SNI, h2, 3 suites, 5 extensions, 1 GREASE suite left out."""
    def ext(t, data):
        return t.to_bytes(2, "big") + len(data).to_bytes(2, "big") + data
    sni = ext(0, b"\x00\x0e\x00\x00\x0bexample.com")
    alpn = ext(16, b"\x00\x03\x02h2")
    versions = ext(43, b"\x04\x03\x04\x03\x03")
    groups = ext(10, b"\x00\x02\x00\x1d")
    sigs = ext(13, b"\x00\x04\x04\x03\x08\x04")
    exts = sni + alpn + versions + groups + sigs
    suites = b"\x0a\x0a\x13\x01\x13\x02\xc0\x2f"
    body = (b"\x03\x03" + bytes(32) + b"\x00" + len(suites).to_bytes(2, "big") + suites + b"\x01\x00" +
            len(exts).to_bytes(2, "big") + exts)
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    rec = records.parse_tls(b"\x16\x03\x01" + len(hs).to_bytes(2, "big") + hs)
    s256 = lambda s: hashlib.sha256(s.encode()).hexdigest()[:12]  # noqa: E731
    assert rec.ja4 == f"t13d0305h2_{s256('1301,1302,c02f')}_{s256('000a,000d,002b_0403,0804')}"
    assert (rec.sni, rec.alpn, rec.versions) == ("example.com", ("h2",), (0x0304, 0x0303))
    ja3 = "771,4865-4866-49199,0-16-43-10-13,29,"
    assert rec.ja3 == hashlib.md5(ja3.encode()).hexdigest()


def test_records_are_counted_and_malformed_ones_named(tmp_path):
    from tests.hwdrivers.packets import dns_query, session, udp4
    with session(tmp_path, events=frozenset({"dns"})) as s:
        s.inject(udp4(payload=dns_query("a.example")), ts_ns=1)
        s.inject(udp4(payload=dns_query("a.example")[:14]), ts_ns=2)   # the name runs past the message
        good, bad = s.read_events()
        counts = s.record_counters()
    assert good.record.name == "a.example" and good.record_error == ""
    assert bad.record is None and bad.record_error == "dns_name"
    assert counts == {"parsed": {"dns": 1}, "malformed": {"dns_name": 1},
                      "dns_gate": {"held": 0, "folded": 0, "released": 0, "dropped": 0, "repeats": 0, "templates": 0,
                                   "changed": 0, "evicted": 0, "unfit": 0}}


HTTP_FIELDS = ["frame.time_epoch", "tcp.srcport", "tcp.dstport", "http.request.method", "http.request.uri",
               "http.host", "http.response.code", "http.location", "http.content_type", "http.request.version",
               "http.response.version"]


@pytest.mark.parametrize("name", NAMES)
def test_http_records_match_tshark(name, tshark):
    path = pcap(name)
    ours = our_events(path, frozenset({"http"}))
    argv = [tshark, "-n", "-r", path, "-Y", "(http.request || http.response) && !tcp.segments", "-T", "fields",
            "-E", "occurrence=f"]
    for f in HTTP_FIELDS:
        argv += ["-e", f]
    rows = [dict(zip(HTTP_FIELDS, line.split("\t"))) for line in
            subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines()]
    for row in rows:
        if not row["tcp.srcport"]:
            continue  # HTTP tshark found elsewhere than right over TCP
        sec, frac = row["frame.time_epoch"].split(".")
        k = (int(sec) * 1_000_000 + int(frac[:6]), int(row["tcp.srcport"]), int(row["tcp.dstport"]))
        evs = [e for e in ours.get(k, []) if e.kind == "http"]
        assert evs, f"no HTTP event for {row}"
        r = evs[0].record
        assert r is not None, evs[0].record_error
        if row["http.response.code"]:
            assert (r.response, r.status, r.version) == (True, int(row["http.response.code"]),
                                                          row["http.response.version"])
        else:
            uri = row["http.request.uri"]
            assert (r.method, r.version) == (row["http.request.method"], row["http.request.version"])
            assert r.uri == uri if len(r.uri) < 1023 else uri.startswith(r.uri)   # kept: 1023 bytes
        assert (r.host, r.location, r.content_type) == (row["http.host"], row["http.location"],
                                                        row["http.content_type"])


def test_http_head_fields():
    rec = records.parse_http(b"HTTP/1.1 302 Found\r\nLocation: http://bank.example/\r\n"
                             b"Set-Cookie: sid=1; Secure; HttpOnly\r\nSet-Cookie: t=2; SameSite=Lax\r\n"
                             b"Strict-Transport-Security: max-age=31536000; includeSubDomains\r\n\r\n")
    assert (rec.status, rec.location, rec.hsts, rec.hsts_max_age, rec.hsts_subdomains) == (
        302, "http://bank.example/", True, 31536000, True)
    assert rec.cookies == (("sid", True, True, False), ("t", False, False, True))
    post = records.parse_http(b"POST /login HTTP/1.1\nHost: bank.example\n"
                              b"Content-Type: application/x-www-form-urlencoded\n\nuser=a&passwd=b")
    assert (post.method, post.host, post.form_password, post.complete) == ("POST", "bank.example", "passwd", True)
    assert records.parse_http(b"GET /\r\n").version == ""        # HTTP/0.9
    assert records.parse_http(b"GET / FTP/1.0\r\n") == "http"


def test_huge_client_hello_lists_are_cut_not_overrun():
    """160 extensions and 200 signature algorithms: every list and fingerprint string stays in its buffer."""
    def ext(t, data):
        return t.to_bytes(2, "big") + len(data).to_bytes(2, "big") + data
    sigs = b"".join((0x0400 + i).to_bytes(2, "big") for i in range(200))
    exts = b"".join(ext(0x1000 + i, b"") for i in range(160)) + ext(13, len(sigs).to_bytes(2, "big") + sigs)
    suites = b"".join((0x1300 + i).to_bytes(2, "big") for i in range(300))
    body = (b"\x03\x03" + bytes(32) + b"\x00" + len(suites).to_bytes(2, "big") + suites + b"\x01\x00" +
            len(exts).to_bytes(2, "big") + exts)
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    rec = records.parse_tls(b"\x16\x03\x01" + len(hs).to_bytes(2, "big") + hs)
    assert len(rec.ciphers) == len(rec.extensions) == len(rec.sig_algs) == 160
    assert rec.ja4.startswith("t12i9999") and len(rec.ja4) == len("t12i999900_") + 25 and len(rec.ja3) == 32


def test_dns_question_names_on_the_parse_paths():
    """The first question's name: read straight into the record when it fits, else read whole and cut to 255
    characters; empty when that question is not whole; kept when a later question is bad."""
    import struct
    from hwdrivers._hw import ffi, lib

    def parse(msg: bytes):
        r = ffi.new("struct hw_rec_dns *")
        return lib.hw_dns_parse(msg, len(msg), 0, r), ffi.string(r.name).decode(), r.name_len

    def qname(*labels: bytes) -> bytes:
        return b"".join(bytes([len(x)]) + x for x in labels) + b"\0"
    header = struct.pack("!HHHHHH", 7, 0x0100, 2, 0, 0, 0)
    short, escaped = qname(b"www", b"example", b"com"), qname(*[b"\x01" * 60] * 4)    # 240 bytes as \001 each
    q2 = header + short + b"\0\x01\0\x01" + short + b"\0\x01\0\x01"
    assert parse(q2) == (0, "www.example.com", 15)
    assert parse(header + escaped + b"\0\x01\0\x01" + short + b"\0\x01\0\x01") == \
        (0, ".".join(["\\001" * 60] * 4)[:255], 255)
    assert parse(header + short + b"\0\x01")[:2] == (lib.HW_RMAL_DNS_QUESTION, "")      # cut after the name
    assert parse(header + short + b"\0\x01\0\x01" + b"\x05ab")[:2] == (lib.HW_RMAL_DNS_NAME, "www.example.com")


def answer_ips_of_rrs(rec) -> tuple:
    """What records.answer_ips() stands for, read from the records one by one (dns_hijack's reading), each
    address's publicness asked of is_public_ip."""
    ips = [r.value for r in rec.rrs if r.section == "answer" and r.type in (1, 28)]
    ttls = [r.ttl for r in rec.rrs if r.section == "answer" and r.type in (1, 28)]
    ips = sorted(set(ips)) if len(ips) > 1 else ips
    return ips, (min(ttls) if ttls else None), sum(is_public_ip(ip, {}) << i for i, ip in enumerate(ips))


@pytest.mark.parametrize("name", NAMES)
def test_answer_ips_made_by_the_core_match_the_records(name):
    made = 0
    for evs in our_events(pcap(name), frozenset({"dns"})).values():
        for ev in evs:
            rec = ev.record
            if ev.kind != "dns" or rec is None:
                continue
            ips = records.answer_ips(rec)
            cnames = any(r.section == "answer" and r.type == 5 for r in rec.rrs)
            assert (ips is None) == (not rec.rrs or cnames), rec
            if ips is not None:
                assert ips == answer_ips_of_rrs(rec)
                made += 1
    assert made or name not in ("dns.pcap",)


def dns_answer(rrs: list, qtype: int = 1) -> bytes:
    """An answer to example.com with these (type, ttl, rdata) records in its answer section."""
    msg = b"\x12\x34\x81\x80\x00\x01" + len(rrs).to_bytes(2, "big") + b"\x00\x00\x00\x00"
    msg += b"\x07example\x03com\x00" + qtype.to_bytes(2, "big") + b"\x00\x01"
    for t, ttl, data in rrs:
        msg += b"\xc0\x0c" + t.to_bytes(2, "big") + b"\x00\x01" + ttl.to_bytes(4, "big") + len(data).to_bytes(2, "big")
        msg += data
    return msg


def test_answer_ips_are_distinct_sorted_as_text_with_the_least_ttl():
    import socket
    v4 = [(1, 300, socket.inet_aton("10.0.0.10")), (1, 60, socket.inet_aton("10.0.0.2")),
          (1, 30, socket.inet_aton("10.0.0.10")), (28, 900, socket.inet_pton(socket.AF_INET6, "2001:db8::a"))]
    rec = records.parse_dns(dns_answer(v4))
    assert records.answer_ips(rec) == (["10.0.0.10", "10.0.0.2", "2001:db8::a"], 30, 0) == answer_ips_of_rrs(rec)
    one = records.parse_dns(dns_answer(v4[1:2]))
    assert records.answer_ips(one) == (["10.0.0.2"], 60, 0)
    none = records.parse_dns(dns_answer([(16, 5, b"\x02hi")], 16))
    assert records.answer_ips(none) == ([], None, 0) and none.rrs[0].value == "hi"
    cname = records.parse_dns(dns_answer([(5, 5, b"\x01a\xc0\x0c")] + v4))
    assert records.answer_ips(cname) is None and cname.rrs[0].value == "a.example.com"   # (read from the records)
    edges = [bytes(a) for a in zip((0, 9, 10, 99), (100, 199, 200, 255), (1, 0, 255, 20), (255, 19, 0, 9))]
    rec = records.parse_dns(dns_answer([(1, 60, a) for a in edges]))     # (the core writes IPv4 text itself)
    assert records.answer_ips(rec) == (sorted(socket.inet_ntoa(a) for a in edges), 60, 0b1100) == answer_ips_of_rrs(rec)
    mixed = [(28, 7, socket.inet_pton(socket.AF_INET6, a)) for a in ("2a00::1", "fe80::1", "::ffff:8.8.8.8")]
    rec = records.parse_dns(dns_answer([(1, 60, a) for a in edges] + mixed))
    assert records.answer_ips(rec) == answer_ips_of_rrs(rec) and records.answer_ips(rec)[2] == 0b0111100
    txt = (16, 5, b"\xff" + b"x" * 255 + b"\x14" + b"y" * 20)      # 7 of them and an owner: 6 bytes left in text[]
    full = records.parse_dns(dns_answer([txt] * 7 + v4[:1]))
    assert records.answer_ips(full) is None and answer_ips_of_rrs(full) == (["10.0.0.10"], 300, 0)
    assert full.rr_skipped == 0 and full == records.parse_dns(dns_answer([txt] * 7 + v4[:1]))


def special_edges() -> list:
    """Addresses at and around the edges of every range Python's ipaddress treats specially (each IPv4 one also
    IPv4-mapped, 6to4 and Teredo-wrapped), and a sample of others: where is_public_ip's answer can change."""
    import ipaddress
    import random
    nets = []
    for consts in (ipaddress.IPv4Address._constants, ipaddress.IPv6Address._constants):
        for value in vars(consts).values():
            for net in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(net, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
                    nets.append(net)
                elif isinstance(net, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
                    nets.append(ipaddress.ip_network(net))
    out = set()
    for net in nets:
        top = (1 << net.max_prefixlen) - 1
        for n in (int(net.network_address), int(net.broadcast_address)):
            for d in (-1, 0, 1):
                if 0 <= n + d <= top:
                    out.add(ipaddress.ip_address(n + d) if net.version == 4 else ipaddress.IPv6Address(n + d))
    rnd = random.Random(17)
    out |= {ipaddress.IPv4Address(rnd.getrandbits(32)) for _ in range(20000)}
    out |= {ipaddress.IPv6Address(rnd.getrandbits(128) >> rnd.randrange(128)) for _ in range(5000)}
    out |= {ipaddress.IPv6Address(rnd.choice((0x2001, 0x2002, 0xfe80, 0xff02, 0x0100, 0xfc00)) << 112
                                  | rnd.getrandbits(rnd.choice((16, 64, 96, 112)))) for _ in range(5000)}
    for a in [a for a in out if a.version == 4]:
        out.add(ipaddress.IPv6Address(0xffff << 32 | int(a)))           # mapped
        out.add(ipaddress.IPv6Address(0x2002 << 112 | int(a) << 80))    # 6to4
        out.add(ipaddress.IPv6Address(0x2001 << 112 | int(a) << 64 | 0xffffffff ^ int(a)))   # Teredo
    return sorted(out, key=lambda a: (a.version, a))


# Where Python releases answer differently (CVE-2024-4032's fix: 3.11.10, 3.12.4, and distributions' patches of
# older ones, Debian 12's 3.11.2 among them), the core's table keeps the answers of the 3.11.7 the detectors were
# built on; the first range holding an address decides.
PINNED = [("192.0.0.0/29", False), ("192.0.0.170/31", False), ("192.0.0.0/24", True), ("2001::/23", False),
          ("2002::/16", True), ("64:ff9b:1::/48", True)]


def public_by_ipaddress(a) -> bool:
    """Python's answer for a global unicast address (an IPv4-mapped one as its IPv4 address), with PINNED's."""
    import ipaddress
    ip = a.ipv4_mapped if a.version == 6 and a.ipv4_mapped else a
    for net, public in PINNED:
        if ip in ipaddress.ip_network(net):
            return public
    return ip.is_global and not ip.is_multicast


def test_the_core_says_public_as_python_does():
    """hw_addr_public (the detectors' is_public_ip, and the DNS answers' ips_public) at every special range's
    edges, as the running Python's ipaddress answers them where its releases agree."""
    from hwdrivers._hw import lib as hw
    edges = special_edges()
    wrong = [str(a) for a in edges if bool(hw.hw_addr_public(a.version, a.packed)) != public_by_ipaddress(a)]
    assert not wrong, wrong[:20]
    wrong = [str(a) for a in edges if is_public_ip(str(a), {}) != public_by_ipaddress(a)]   # (its /24 and /64 keeping)
    assert not wrong, wrong[:20]
    assert is_public_ip("fe80::1%eth0", {}) is False and is_public_ip("2a00::1%eth0", {}) is True
    assert not any(is_public_ip(bad, {}) for bad in ("", "8.8.8", "08.8.8.8", "8.8.8.8.8", "gg::1", "::g"))
