"""SDP bodies (RFC 4566, 3264): where each medium wants its RTP and RTCP,
and the clock of each payload type."""
import dataclasses
import ipaddress
from typing import Optional

RTP_PROTOS = ("RTP/AVP", "RTP/SAVP", "RTP/AVPF", "RTP/SAVPF", "UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF")
# Clock rates of the static payload types (RFC 3551), for naming codecs.
STATIC_CODECS = {0: ("PCMU", 8000), 3: ("GSM", 8000), 4: ("G723", 8000), 5: ("DVI4", 8000), 6: ("DVI4", 16000),
                 7: ("LPC", 8000), 8: ("PCMA", 8000), 9: ("G722", 8000), 10: ("L16", 44100), 11: ("L16", 44100),
                 12: ("QCELP", 8000), 13: ("CN", 8000), 14: ("MPA", 90000), 15: ("G728", 8000),
                 16: ("DVI4", 11025), 17: ("DVI4", 22050), 18: ("G729", 8000), 26: ("JPEG", 90000),
                 31: ("H261", 90000), 32: ("MPV", 90000), 33: ("MP2T", 90000), 34: ("H263", 90000)}


@dataclasses.dataclass(frozen=True)
class Media:
    kind: str                 # audio, video, image...
    addr: str                 # where it wants packets
    port: int
    proto: str
    formats: tuple            # payload types (ints) for RTP, the format names otherwise
    rtpmap: dict              # payload type -> (encoding name, clock rate)
    rtcp_addr: str
    rtcp_port: int            # 0 under rtcp-mux (RTCP on the RTP port)
    direction: str            # sendrecv, sendonly, recvonly, inactive

    @property
    def is_rtp(self) -> bool:
        return self.proto.upper() in RTP_PROTOS and self.port > 0

    def codec(self) -> str:
        """The first offered codec's name, e.g. PCMA."""
        for pt in self.formats:
            if isinstance(pt, int):
                name = self.rtpmap.get(pt, STATIC_CODECS.get(pt, (f"PT{pt}", 0)))[0]
                if name.lower() not in ("telephone-event", "cn"):
                    return name
        return ""

    def clock_rates(self) -> dict:
        """Dynamic payload types -> clock rate; telephone-event gets 0 (its timestamps stand still)."""
        out = {}
        for pt, (name, rate) in self.rtpmap.items():
            if pt >= 96:
                out[pt] = 0 if name.lower() == "telephone-event" else rate
        return out


def _addr(value: str) -> Optional[str]:
    """The address of a c= line (IN IP4 a.b.c.d[/ttl]), or None."""
    parts = value.split()
    if len(parts) < 3 or parts[0] != "IN":
        return None
    try:
        return str(ipaddress.ip_address(parts[2].split("/")[0]))
    except ValueError:
        return None


def parse(body: bytes) -> list:
    """The media of an SDP body (empty when it is not SDP)."""
    text = body.decode("utf-8", "replace")
    session_addr = None
    session_dir = "sendrecv"
    media: list = []
    cur: Optional[dict] = None
    for raw in text.splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        key, value = line[0], line[2:].strip()
        if key == "m":
            parts = value.split()
            if len(parts) < 3:
                cur = None
                continue
            port = parts[1].split("/")[0]
            formats = tuple(int(f) if f.isdigit() else f for f in parts[3:])
            cur = {"kind": parts[0], "port": int(port) if port.isdigit() else 0, "proto": parts[2],
                   "formats": formats, "addr": None, "rtpmap": {}, "rtcp": None, "mux": False, "dir": None}
            media.append(cur)
        elif key == "c":
            a = _addr(value)
            if cur is None:
                session_addr = a
            else:
                cur["addr"] = a
        elif key == "a":
            name, _, arg = value.partition(":")
            if name in ("sendrecv", "sendonly", "recvonly", "inactive"):
                if cur is None:
                    session_dir = name
                else:
                    cur["dir"] = name
            elif cur is None:
                continue
            elif name == "rtpmap":
                pt, _, enc = arg.partition(" ")
                bits = enc.strip().split("/")
                if pt.isdigit() and len(bits) >= 2 and bits[1].isdigit():
                    cur["rtpmap"][int(pt)] = (bits[0], int(bits[1]))
            elif name == "rtcp":
                bits = arg.split()
                if bits and bits[0].isdigit():
                    cur["rtcp"] = (int(bits[0]), _addr(" ".join(bits[1:])) if len(bits) >= 4 else None)
            elif name == "rtcp-mux":
                cur["mux"] = True
    out = []
    for m in media:
        addr = m["addr"] or session_addr
        if addr is None:
            continue
        if m["mux"]:
            rtcp_port, rtcp_addr = 0, addr
        elif m["rtcp"]:
            rtcp_port, rtcp_addr = m["rtcp"][0], m["rtcp"][1] or addr
        else:
            rtcp_port, rtcp_addr = (m["port"] + 1 if m["port"] else 0), addr
        out.append(Media(m["kind"], addr, m["port"], m["proto"], m["formats"], m["rtpmap"], rtcp_addr, rtcp_port,
                         m["dir"] or session_dir))
    return out
