"""What the detectors learn of the LAN (agent/detectors/lan.py), certificates
read from cut DER (x509.py), and a verdict moving a threat (threats.rescore)."""
import datetime

from agent.detectors import x509
from agent.detectors.detector import Recent
from agent.detectors.lan import Lan
from agent.threats import rescore
from hwdrivers.events import PacketEvent

GW_MAC, VICTIM_MAC, ATTACKER_MAC = "02:00:00:00:00:01", "02:00:00:00:00:10", "02:00:00:00:00:66"


def ev(kind, src, dst, src_mac, dst_mac, ts, payload=b"", sport=0, dport=0):
    return PacketEvent(kind=kind, ts_ns=int(ts * 1e9), flow_id=1, src=src, dst=dst, sport=sport, dport=dport, proto=6,
                       vlan=0, tcp_flags=2, seq=0, ack=0, from_initiator=True, src_mac=src_mac, dst_mac=dst_mac,
                       wirelen=60, payload_len=len(payload), payload=payload)


def test_routers_next_hops_and_who_sent_a_forged_frame():
    lan = Lan()
    # the router carries two public sources; the victim routes through it; the attacker talks with its own address
    lan.learn(ev("tls", "151.101.1.10", "192.168.1.10", GW_MAC, VICTIM_MAC, 1))
    lan.learn(ev("http", "93.184.216.34", "192.168.1.10", GW_MAC, VICTIM_MAC, 2))
    lan.learn(ev("tcp_src", "192.168.1.10", "151.101.1.10", VICTIM_MAC, GW_MAC, 3))
    lan.learn(ev("tcp_src", "192.168.1.66", "151.101.1.10", ATTACKER_MAC, GW_MAC, 4))
    assert lan.is_router(GW_MAC) and not lan.is_router(ATTACKER_MAC)
    assert lan.next_hop["192.168.1.10"]["mac"] == GW_MAC
    assert lan.own_ip(ATTACKER_MAC) == "192.168.1.66" and lan.mac_of("192.168.1.10") == VICTIM_MAC
    # a frame in the server's name through the attacker's MAC was sent by the attacker, by its own address
    assert lan.sender("151.101.1.10", ATTACKER_MAC, "192.168.1.10") == ("192.168.1.66", True)
    assert lan.sender("151.101.1.10", GW_MAC, "192.168.1.10") == ("151.101.1.10", False)
    # forwarding the victim's traffic does not make the victim's address the attacker's
    lan.learn(ev("dns", "192.168.1.10", "8.8.8.8", ATTACKER_MAC, GW_MAC, 5))
    assert lan.own_ip(ATTACKER_MAC) == "192.168.1.66"
    # the victim's routed traffic switching to the attacker does not move its learned next hop
    lan.learn(ev("tcp_src", "192.168.1.10", "151.101.1.10", VICTIM_MAC, ATTACKER_MAC, 6))
    assert lan.next_hop["192.168.1.10"]["mac"] == GW_MAC


def test_a_steady_sender_forgotten_by_a_full_host_table_is_bound_again():
    lan = Lan()
    lan.hosts = Recent(2)
    for i, ip in enumerate(("192.168.1.10", "192.168.1.11", "192.168.1.12")):   # the third forgets the first's binding
        lan.learn(ev("tls", ip, "192.168.1.1", f"02:00:00:00:00:{i + 10}", GW_MAC, i + 1))
    assert "192.168.1.10" not in lan.hosts and len(lan.senders["192.168.1.10"]) == 1
    lan.learn(ev("tls", "192.168.1.10", "192.168.1.1", "02:00:00:00:00:10", GW_MAC, 5))   # its one MAC, again
    assert lan.hosts["192.168.1.10"] == {"mac": "02:00:00:00:00:10", "ts": 5.0, "how": "ip"}


def _cert(not_before: datetime.datetime) -> bytes:
    from cryptography import x509 as cx
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1())
    name = cx.Name([cx.NameAttribute(cx.oid.NameOID.COMMON_NAME, "bank.example.net")])
    issuer = cx.Name([cx.NameAttribute(cx.oid.NameOID.ORGANIZATION_NAME, "mitmproxy"),
                      cx.NameAttribute(cx.oid.NameOID.COMMON_NAME, "mitmproxy")])
    cert = (cx.CertificateBuilder().subject_name(name).issuer_name(issuer).public_key(key.public_key())
            .serial_number(7).not_valid_before(not_before).not_valid_after(not_before + datetime.timedelta(days=365))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def test_a_certificate_cut_short_still_says_who_issued_it_and_when():
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    der = _cert(when)
    whole = x509.parse(der)
    assert whole["issuer"] == "O=mitmproxy, CN=mitmproxy" and whole["subject"] == "CN=bank.example.net"
    assert whole["not_before"] == when.timestamp() and whole["fingerprint"] and not whole["self_issued"]
    cut = x509.parse(der[:200])                       # a snippet ends inside the public key
    assert (cut["issuer"], cut["subject"], cut["not_before"], cut["fingerprint"]) == (
        whole["issuer"], whole["subject"], whole["not_before"], None)


def test_a_verdict_moves_a_threat():
    assert rescore("medium", 55, 0.55, "confirmed") == ("high", 75, 0.9)
    assert rescore("low", 45, 0.45, "confirmed") == ("high", 70, 0.9)          # a confirmed attack is at least high
    assert rescore("critical", 95, 0.95, "confirmed") == ("critical", 100, 0.95)
    assert rescore("high", 80, 0.8, "refuted") == ("medium", 50, 0.3)
    assert rescore("low", 20, 0.2, "refuted") == ("low", 0, 0.2)
    assert rescore("high", 80, 0.8, "inconclusive") == ("high", 80, 0.8)


def test_is_public_ip_cached_by_prefix_agrees_with_ipaddress():
    import ipaddress
    import random
    from agent.detectors.detector import is_public_ip

    def exact(a):
        ip = ipaddress.ip_address(a)
        ip = ip.ipv4_mapped or ip if ip.version == 6 else ip
        return ip.is_global and not ip.is_multicast
    rnd = random.Random(17)
    edges = ["192.0.0.1", "192.0.0.9", "192.0.0.170", "192.0.0.200", "255.255.255.255", "255.255.255.1", "100.64.0.1",
             "100.128.0.1", "224.0.0.1", "8.8.8.8", "::1", "::", "::ffff:8.8.8.8", "::ffff:10.0.0.1", "100::1",
             "2001::1", "2001:1::1", "2001:2::1", "2001:db8::1", "2001:10::1", "2001:4860::8888", "fc00::1", "fe80::1",
             "ff02::1", "2a00:1450::1"]
    v4 = [str(ipaddress.IPv4Address(rnd.getrandbits(32))) for _ in range(20000)]
    v6 = [str(ipaddress.IPv6Address(rnd.choice([0x2001, 0xfe80, 0xfc00, 0x2a00, 0x100, 0]) << 112 | rnd.getrandbits(96)))
          for _ in range(20000)]
    assert [a for a in edges + v4 + v6 if is_public_ip(a) != exact(a)] == []
