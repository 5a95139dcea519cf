"""A mixed capture for the live bench: per 100 packets, 10 DNS (query/answer
pairs from one resolver, as bench/gendns.py makes them), 2 TCP SYNs (clients
opening connections to many servers), 1 TLS ClientHello (with SNI) and 87
TCP data segments of 600 bytes on 2,000 established flows.
Usage: python bench/genmix.py OUT.pcap [packets=1000000]"""
import struct
import sys

from gendns import RES_MAC, RESOLVER, checksum, frame as udp_frame, qname

GW_MAC = bytes.fromhex("020000000001")


def tcp_frame(src, dst, smac, dmac, sport, dport, flags, seq, payload=b"") -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 1 if flags & 0x10 else 0, 5 << 4, flags, 65535, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 0, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return dmac + smac + b"\x08\x00" + ip + tcp + payload


def client_hello(name: bytes) -> bytes:
    sni = struct.pack("!HHHBH", 0, len(name) + 5, len(name) + 3, 0, len(name)) + name
    alpn = struct.pack("!HHH", 16, 5, 3) + b"\x02h2"
    versions = struct.pack("!HHB", 43, 5, 4) + b"\x03\x04\x03\x03"
    groups = struct.pack("!HHH", 10, 4, 2) + b"\x00\x1d"
    exts = sni + alpn + versions + groups
    suites = b"\x13\x01\x13\x02\xc0\x2f\xc0\x30"
    body = (b"\x03\x03" + bytes(range(32)) + b"\x00" + struct.pack("!H", len(suites)) + suites + b"\x01\x00"
            + struct.pack("!H", len(exts)) + exts)
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def frames(i: int) -> list:
    """The 100 frames of block i."""
    out = []
    for k in range(5):                      # 10 DNS
        n = i * 5 + k
        c = 1 + n % 50
        client, cmac = bytes([198, 51, 100, c]), bytes.fromhex("0200000001%02x" % c)
        ident, name, port = (n * 7919) & 0xFFFF, qname(n % 5000), 20000 + n % 30000
        q = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + name + b"\0\x01\0\x01"
        a = (struct.pack("!HHHHHH", ident, 0x8180, 1, 1, 0, 0) + name + b"\0\x01\0\x01" + b"\xc0\x0c\0\x01\0\x01"
             + struct.pack("!IH", 300, 4) + bytes([203, 0, 113, 1 + n % 250]))
        out += [udp_frame(client, RESOLVER, cmac, RES_MAC, port, 53, q),
                udp_frame(RESOLVER, client, RES_MAC, cmac, 53, port, a)]
    for k in range(2):                      # 2 SYNs to new servers
        n = i * 2 + k
        src = bytes([10, 1, n % 200, 1 + n % 250])
        dst = bytes([172, 16 + n % 16, (n >> 4) % 256, 1 + (n >> 12) % 250])
        out.append(tcp_frame(src, dst, bytes.fromhex("0200000002%02x" % (n % 250)), GW_MAC, 30000 + n % 30000, 443,
                             0x02, n * 977))
    src = bytes([10, 2, i % 200, 1 + i % 250])   # 1 ClientHello
    out.append(tcp_frame(src, bytes([93, 184, i % 250, 34]), bytes.fromhex("02000000030a"), GW_MAC,
                         40000 + i % 20000, 443, 0x18, 1, client_hello(b"site%d.example.org" % (i % 3000))))
    data = bytes(600)
    for k in range(87):                     # 87 data segments on 2,000 flows
        f = (i * 87 + k) % 2000
        out.append(tcp_frame(bytes([10, 3, f >> 8, f & 255]), bytes([192, 0, 2, 10]), bytes.fromhex("020000000400"),
                             GW_MAC, 50000 + f % 10000, 8080, 0x10, (i * 87 + k) * 600, data))
    return out


def main(out: str, packets: int) -> None:
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        n = 0
        for i in range((packets + 99) // 100):
            for fr in frames(i):
                t = 1_700_000_000 * 10**6 + n * 3   # about 300,000 packets/s as recorded
                f.write(struct.pack("<IIII", t // 10**6, t % 10**6, len(fr), len(fr)) + fr)
                n += 1


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000)
