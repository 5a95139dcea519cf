"""A DNS-only capture for `capbox detect`: N query/answer pairs between one
resolver and 50 clients over 5,000 names (UDP, Ethernet, pcap).  With
FORGE, pair FORGE's query is also answered by a forger (another MAC, another
address) right after the resolver: the race dns_hijack must raise.
Usage: python bench/gendns.py OUT.pcap [pairs=100000] [FORGE]"""
import struct
import sys

RESOLVER, RES_MAC = bytes([192, 0, 2, 53]), bytes.fromhex("020000000035")
FORGER_MAC = bytes.fromhex("0200000000ee")
FORGED_ADDR = bytes([192, 0, 2, 66])


def checksum(b: bytes) -> int:
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF


def frame(src, dst, smac, dmac, sport, dport, payload) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return dmac + smac + b"\x08\x00" + ip + udp


def qname(i: int) -> bytes:
    return b"".join(bytes([len(x)]) + x for x in (b"host%d" % i, b"example%d" % (i % 97), b"com")) + b"\0"


def main(out: str, pairs: int, forge: int = -1) -> None:
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for n in range(pairs):
            c = 1 + n % 50
            client, cmac = bytes([198, 51, 100, c]), bytes.fromhex("0200000001%02x" % c)
            ident, name, port = (n * 7919) & 0xFFFF, qname(n % 5000), 20000 + n % 30000
            q = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + name + b"\0\x01\0\x01"
            addr = bytes([203, 0, 113, 1 + n % 5000 % 250])
            a = (struct.pack("!HHHHHH", ident, 0x8180, 1, 1, 0, 0) + name + b"\0\x01\0\x01" +
                 b"\xc0\x0c\0\x01\0\x01" + struct.pack("!IH", 300, 4) + addr)
            ts = 1_700_000_000 * 10**6 + n * 100  # 100 us a pair: the forged answer (k = 2) comes 80 us in
            frames = [frame(client, RESOLVER, cmac, RES_MAC, port, 53, q),
                      frame(RESOLVER, client, RES_MAC, cmac, 53, port, a)]
            if n == forge:
                frames.append(frame(RESOLVER, client, FORGER_MAC, cmac, 53, port, a[:-4] + FORGED_ADDR))
            for k, fr in enumerate(frames):
                t = ts + k * 40
                f.write(struct.pack("<IIII", t // 10**6, t % 10**6, len(fr), len(fr)) + fr)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 100000, int(sys.argv[3]) if len(sys.argv) > 3 else -1)
