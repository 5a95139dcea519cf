#!/usr/bin/env python3
"""gensip.py - synthetic SIP + RTP capture (classic pcap, Ethernet) for the
calls tests and benchmark: many overlapping calls, each an INVITE with an
SDP offer, 100 Trying, 180 Ringing, 200 OK with the answer, ACK, G.711
RTP both ways (20 ms, 160-byte payloads) with chosen loss (never a
stream's first or last packet, so a receiver can count all of it) and jitter, an
RTCP report each way every 5 s, then BYE and 200 OK.  A share of the calls
signal over TCP (some messages split across two segments).

Usage: gensip.py -o OUT.pcap [--calls N] [--duration S] [--concurrency C]
                 [--loss P] [--jitter-ms J] [--tcp-fraction F] [--seed N]
Writes OUT.pcap and OUT.pcap.truth.json (per call: Call-ID, SIP messages,
RTP packets sent and lost per direction).  Standard library only; about a
million packets every few seconds.  Addresses from 198.18.0.0/15 (benchmark
range), times from 2026-01-01T00:00:00Z."""
import argparse
import json
import random
import struct
import sys

T0 = 1767225600
TICK_US = 20000
RTCP_EVERY_TICKS = 250
PAYLOAD = bytes(range(160))
MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")


def ip4(n: int) -> bytes:
    return bytes((198, 18 + (n >> 16 & 1), n >> 8 & 0xFF, n & 0xFF))


def checksum(b: bytes) -> int:
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF


def ipv4_header(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, 0, 0x4000, 64, proto, 0, src, dst)
    return h[:10] + struct.pack("!H", checksum(h)) + h[12:]


def udp_frame(src: bytes, sport: int, dst: bytes, dport: int, payload: bytes) -> bytes:
    n = 8 + len(payload)
    return MAC_B + MAC_A + b"\x08\x00" + ipv4_header(src, dst, 17, n) + struct.pack("!HHHH", sport, dport, n, 0) + payload


def tcp_frame(src: bytes, sport: int, dst: bytes, dport: int, seq: int, payload: bytes) -> bytes:
    n = 20 + len(payload)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, 1, 5 << 4, 0x18, 65535, 0, 0)
    return MAC_B + MAC_A + b"\x08\x00" + ipv4_header(src, dst, 6, n) + tcp + payload


class Call:
    def __init__(self, i: int, start_tick: int, ticks: int, tcp: bool, rng: random.Random):
        self.i = i
        self.call_id = f"{i:08x}-{rng.getrandbits(32):08x}@gensip.example"
        self.start, self.ticks = start_tick, ticks
        self.tcp = tcp
        self.a, self.b = ip4(2 * i + 2), ip4(2 * i + 3)
        self.a_txt, self.b_txt = ".".join(map(str, self.a)), ".".join(map(str, self.b))
        self.sip_a, self.sip_b = 5060 if not tcp else 40000 + i % 20000, 5060
        self.rtp_a, self.rtp_b = 10000 + 2 * (i % 20000), 30000 + 2 * (i % 15000)
        self.ssrc = (rng.getrandbits(32), rng.getrandbits(32))
        self.seq = [rng.getrandbits(16), rng.getrandbits(16)]
        self.ts = [rng.getrandbits(32), rng.getrandbits(32)]
        self.sent = [0, 0]
        self.lost = [0, 0]
        self.messages = 0
        self.tcp_seq = [1000, 5000]
        # each direction's RTP header (IP, UDP) is the same for every packet but the RTP fields
        n = 8 + 12 + len(PAYLOAD)
        self.rtp_head = [
            MAC_B + MAC_A + b"\x08\x00" + ipv4_header(self.a, self.b, 17, n) + struct.pack("!HHHH", self.rtp_a, self.rtp_b, n, 0),
            MAC_A + MAC_B + b"\x08\x00" + ipv4_header(self.b, self.a, 17, n) + struct.pack("!HHHH", self.rtp_b, self.rtp_a, n, 0),
        ]

    def sdp(self, addr: str, port: int, sess: int) -> bytes:
        return (f"v=0\r\no=- {sess} 1 IN IP4 {addr}\r\ns=-\r\nc=IN IP4 {addr}\r\nt=0 0\r\n"
                f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
                f"a=sendrecv\r\n").encode()

    def sip(self, kind: str) -> tuple:
        """(from_a, message bytes) of a step of the call."""
        a = f"{self.a_txt}:{self.sip_a}"
        via = f"SIP/2.0/{'TCP' if self.tcp else 'UDP'} {a};branch=z9hG4bK{self.i:x}{kind[:3].lower()}"
        frm = f"<sip:alice{self.i}@gensip.example>;tag=a{self.i:x}"
        to = f"<sip:bob{self.i}@gensip.example>"
        to_tagged = f"{to};tag=b{self.i:x}"
        uri = f"sip:bob{self.i}@{self.b_txt}"
        body = b""
        if kind == "INVITE":
            start, from_a, cseq, to_h = f"INVITE {uri} SIP/2.0", True, "1 INVITE", to
            body = self.sdp(self.a_txt, self.rtp_a, self.i)
        elif kind in ("100", "180", "200"):
            reason = {"100": "Trying", "180": "Ringing", "200": "OK"}[kind]
            start, from_a, cseq = f"SIP/2.0 {kind} {reason}", False, "1 INVITE"
            to_h = to if kind == "100" else to_tagged
            if kind == "200":
                body = self.sdp(self.b_txt, self.rtp_b, self.i + 1)
        elif kind == "ACK":
            start, from_a, cseq, to_h = f"ACK {uri} SIP/2.0", True, "1 ACK", to_tagged
        elif kind == "BYE":
            start, from_a, cseq, to_h = f"BYE {uri} SIP/2.0", True, "2 BYE", to_tagged
        else:  # 200 to BYE
            start, from_a, cseq, to_h = "SIP/2.0 200 OK", False, "2 BYE", to_tagged
        head = (f"{start}\r\nVia: {via}\r\nFrom: {frm}\r\nTo: {to_h}\r\nCall-ID: {self.call_id}\r\nCSeq: {cseq}\r\n"
                f"Contact: <sip:alice{self.i}@{a}>\r\nMax-Forwards: 70\r\nUser-Agent: gensip\r\n")
        if body:
            head += "Content-Type: application/sdp\r\n"
        head += f"Content-Length: {len(body)}\r\n\r\n"
        self.messages += 1
        return from_a, head.encode() + body

    def sip_frames(self, kind: str) -> list:
        from_a, msg = self.sip(kind)
        src, sport, dst, dport = (self.a, self.sip_a, self.b, self.sip_b) if from_a else (self.b, self.sip_b, self.a, self.sip_a)
        if not self.tcp:
            return [udp_frame(src, sport, dst, dport, msg)]
        d = 0 if from_a else 1
        parts = [msg[:len(msg) // 2], msg[len(msg) // 2:]] if kind in ("INVITE", "200") else [msg]
        out = []
        for p in parts:
            out.append(tcp_frame(src, sport, dst, dport, self.tcp_seq[d], p))
            self.tcp_seq[d] += len(p)
        return out

    def rtp(self, d: int) -> bytes:
        hdr = struct.pack("!BBHII", 0x80, 0, self.seq[d], self.ts[d], self.ssrc[d])
        self.seq[d] = (self.seq[d] + 1) & 0xFFFF
        self.ts[d] = (self.ts[d] + 160) & 0xFFFFFFFF
        return self.rtp_head[d] + hdr + PAYLOAD

    def rtcp(self, d: int) -> bytes:
        src, sport, dst, dport = (self.a, self.rtp_a + 1, self.b, self.rtp_b + 1) if d == 0 else \
            (self.b, self.rtp_b + 1, self.a, self.rtp_a + 1)
        sr = struct.pack("!BBHIIIIII", 0x80, 200, 6, self.ssrc[d], 0, 0, self.ts[d], self.sent[d], self.sent[d] * 160)
        return udp_frame(src, sport, dst, dport, sr)


def generate(out, calls: int, duration_s: float, concurrency: int, loss: float, jitter_ms: float,
             tcp_fraction: float, seed: int) -> dict:
    rng = random.Random(seed)
    ticks = max(1, int(duration_s * 1e6 / TICK_US))
    gap = max(1, ticks // max(1, concurrency))  # a new call every `gap` ticks keeps ~concurrency going
    plan = [Call(i, i * gap, ticks, rng.random() < tcp_fraction, rng) for i in range(calls)]
    out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    # setup: INVITE at tick 0, 100 +1 ms, 180 +30 ms, 200 at tick 3, ACK +1 ms; RTP from tick 4; BYE at the end
    setup = [(0, 0, "INVITE"), (0, 1000, "100"), (1, 10000, "180"), (3, 0, "200"), (3, 1000, "ACK")]
    active: list = []
    nxt = 0
    packets = nbytes = 0
    tick = 0
    jitter_us = int(jitter_ms * 1000)
    while nxt < len(plan) or active:
        while nxt < len(plan) and plan[nxt].start <= tick:
            active.append(plan[nxt])
            nxt += 1
        batch = []
        still = []
        for c in active:
            k = tick - c.start
            base = c.i * 37 % 9000  # each call's place in the tick
            for st, off, kind in setup:
                if k == st:
                    batch.extend((base + off + j, f) for j, f in enumerate(c.sip_frames(kind)))
            if 4 <= k < 4 + c.ticks:
                for d in (0, 1):
                    frame = c.rtp(d)
                    c.sent[d] += 1
                    if loss and 4 < k < 3 + c.ticks and rng.random() < loss:  # first and last arrive
                        c.lost[d] += 1
                        continue
                    batch.append((base + 5000 * d + (rng.randrange(jitter_us) if jitter_us else 0), frame))
                if (k - 4) % RTCP_EVERY_TICKS == RTCP_EVERY_TICKS - 1:
                    batch.append((base + 3000, c.rtcp(0)))
                    batch.append((base + 8000, c.rtcp(1)))
            if k == 4 + c.ticks:
                batch.extend((base + j, f) for j, f in enumerate(c.sip_frames("BYE")))
                batch.extend((base + 2000 + j, f) for j, f in enumerate(c.sip_frames("BYE200")))
            else:
                still.append(c)
        active = still
        batch.sort(key=lambda x: x[0])
        t_us = tick * TICK_US
        rec = []
        for off, frame in batch:
            t = t_us + off
            rec.append(struct.pack("<IIII", T0 + t // 1000000, t % 1000000, len(frame), len(frame)))
            rec.append(frame)
            nbytes += len(frame)
        out.write(b"".join(rec))
        packets += len(batch)
        tick += 1
    return {"calls": [{"call_id": c.call_id, "tcp": c.tcp, "messages": c.messages, "rtp_sent": c.sent,
                       "rtp_lost": c.lost, "participants": [f"{c.a_txt}:{c.sip_a}", f"{c.b_txt}:{c.sip_b}"],
                       "rtp": [[c.a_txt, c.rtp_a, c.b_txt, c.rtp_b], [c.b_txt, c.rtp_b, c.a_txt, c.rtp_a]]}
                      for c in plan],
            "packets": packets, "bytes": nbytes}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-o", "--out", required=True)
    p.add_argument("--calls", type=int, default=100)
    p.add_argument("--duration", type=float, default=10.0, help="RTP seconds per call")
    p.add_argument("--concurrency", type=int, default=50, help="calls going on at once (about)")
    p.add_argument("--loss", type=float, default=0.0, help="share of RTP packets dropped")
    p.add_argument("--jitter-ms", type=float, default=0.0, help="RTP arrival spread, uniform 0..J ms")
    p.add_argument("--tcp-fraction", type=float, default=0.1, help="share of calls signalled over TCP")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args(argv)
    with open(a.out, "wb", buffering=1 << 22) as f:
        truth = generate(f, a.calls, a.duration, a.concurrency, a.loss, a.jitter_ms, a.tcp_fraction, a.seed)
    with open(a.out + ".truth.json", "w") as f:
        json.dump(truth, f)
    print(f"{a.out}: {truth['packets']} packets, {truth['bytes']} bytes, {a.calls} calls", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
