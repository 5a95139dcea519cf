"""A minimal SIP user agent for the live call test: real UDP sockets, one
side of a call (caller or callee) with its RTP stream.  Run inside a network
namespace: python -m tests.agent.ua caller|callee LOCAL REMOTE."""
import socket
import struct
import sys
import time

SIP, RTP_CALLER, RTP_CALLEE = 5060, 30000, 40000
PACKETS, PTIME = 50, 0.02
MEDIA_DELAY_S = 1.0
CALL_ID = "live-call-22b@capbox.test"
SSRC = {"caller": 0x11112222, "callee": 0x33334444}


def sdp(addr: str, port: int) -> bytes:
    return (f"v=0\r\no=- 1 1 IN IP4 {addr}\r\ns=-\r\nc=IN IP4 {addr}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n"
            "a=rtpmap:0 PCMU/8000\r\n").encode()


def message(first: str, local: str, remote: str, cseq: str, body: bytes = b"", tag: str = "") -> bytes:
    head = [first, f"Via: SIP/2.0/UDP {local}:{SIP};branch=z9hG4bK{abs(hash(first + cseq)) % 10**8}",
            f"From: <sip:alice@{local if 'caller' in tag else remote}>;tag=a1",
            f"To: <sip:bob@{remote if 'caller' in tag else local}>" + (";tag=b2" if "b2" in tag else ""),
            f"Call-ID: {CALL_ID}", f"CSeq: {cseq}", f"Contact: <sip:{local}:{SIP}>", "Max-Forwards: 70"]
    if body:
        head.append("Content-Type: application/sdp")
    head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def rtp(sock, dst, role: str) -> None:
    """The stream, after a pause: the agent learns the media ports from the SDP through its bus, and the
    packets before that are not analysed (a real phone's first 20 ms could be missed the same way)."""
    time.sleep(MEDIA_DELAY_S)
    for i in range(PACKETS):
        sock.sendto(struct.pack("!BBHII", 0x80, 0, 1000 + i, 160 * i, SSRC[role]) + bytes(160), dst)
        time.sleep(PTIME)


def main(role: str, local: str, remote: str) -> None:
    sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sip.bind((local, SIP))
    sip.settimeout(30)
    media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    media.bind((local, RTP_CALLER if role == "caller" else RTP_CALLEE))
    peer = (remote, SIP)
    print("ready", flush=True)          # the callee's sockets are bound: the caller may start
    if role == "caller":
        tag = "caller"
        sip.sendto(message(f"INVITE sip:bob@{remote} SIP/2.0", local, remote, "1 INVITE",
                           sdp(local, RTP_CALLER), tag), peer)
        assert sip.recv(4096).startswith(b"SIP/2.0 200")
        sip.sendto(message(f"ACK sip:bob@{remote} SIP/2.0", local, remote, "1 ACK", tag=tag + "b2"), peer)
        rtp(media, (remote, RTP_CALLEE), role)
        time.sleep(0.3)
        sip.sendto(message(f"BYE sip:bob@{remote} SIP/2.0", local, remote, "2 BYE", tag=tag + "b2"), peer)
        assert sip.recv(4096).startswith(b"SIP/2.0 200")
    else:
        invite, caller = sip.recvfrom(4096)
        assert invite.startswith(b"INVITE")
        sip.sendto(message("SIP/2.0 200 OK", local, remote, "1 INVITE", sdp(local, RTP_CALLEE), "b2"), caller)
        assert sip.recv(4096).startswith(b"ACK")
        rtp(media, (remote, RTP_CALLER), role)
        assert sip.recv(4096).startswith(b"BYE")
        sip.sendto(message("SIP/2.0 200 OK", local, remote, "2 BYE", tag="b2"), caller)


if __name__ == "__main__":
    main(*sys.argv[1:4])
