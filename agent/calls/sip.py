"""SIP messages (RFC 3261) from packet payloads: the start line, the headers
a call flow needs (compact forms included), the body; and the reassembly of
SIP over TCP, where one segment may hold part of a message or several."""
import dataclasses
import re
from typing import Optional

COMPACT = {"i": "call-id", "f": "from", "t": "to", "v": "via", "m": "contact", "l": "content-length",
           "c": "content-type", "k": "supported", "e": "content-encoding", "s": "subject", "o": "event",
           "r": "refer-to", "b": "referred-by", "x": "session-expires", "u": "allow-events",
           "a": "accept-contact", "j": "reject-contact", "d": "request-disposition", "y": "identity",
           "n": "identity-info"}
METHODS = ("INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "PRACK", "SUBSCRIBE", "NOTIFY", "PUBLISH",
           "INFO", "REFER", "MESSAGE", "UPDATE")
_REQUEST = re.compile(rb"^([A-Z]+) (\S+) SIP/2\.0\r?$")
_STATUS = re.compile(rb"^SIP/2\.0 (\d{3})(?: (.*?))?\r?$")
_ANGLE_URI = re.compile(r"<([^>]*)>")
_BARE_URI = re.compile(r"^\s*([^;,\s]+)")
_TAG = re.compile(r";\s*tag=([^;>\s,]+)", re.I)
MAX_HEADER_BYTES = 65536


class SipError(ValueError):
    """Not a SIP message (or too damaged to be one)."""


@dataclasses.dataclass
class SipMessage:
    method: Optional[str]          # requests
    uri: Optional[str]
    status: Optional[int]          # responses
    reason: Optional[str]
    headers: dict                  # lower-case full names -> list of values
    body: bytes
    complete: bool                 # the body is all there (Content-Length met)

    def header(self, name: str, default: str = "") -> str:
        values = self.headers.get(name)
        return values[0] if values else default

    @property
    def is_request(self) -> bool:
        return self.method is not None

    @property
    def call_id(self) -> str:
        return self.header("call-id").strip()

    @property
    def cseq(self) -> tuple:
        """(number, method) of the CSeq header; (0, "") when it is missing or bad."""
        parts = self.header("cseq").split()
        if len(parts) == 2 and parts[0].isdigit():
            return int(parts[0]), parts[1].upper()
        return 0, ""

    @property
    def from_uri(self) -> str:
        return uri_of(self.header("from"))

    @property
    def to_uri(self) -> str:
        return uri_of(self.header("to"))

    @property
    def from_tag(self) -> str:
        return tag_of(self.header("from"))

    @property
    def to_tag(self) -> str:
        return tag_of(self.header("to"))

    @property
    def label(self) -> str:
        """INVITE, or 200 OK."""
        if self.method:
            return self.method
        return f"{self.status} {self.reason}".strip()

    @property
    def content_type(self) -> str:
        return self.header("content-type").split(";")[0].strip().lower()


def uri_of(value: str) -> str:
    m = _ANGLE_URI.search(value) or _BARE_URI.search(value)
    return m.group(1).strip() if m else value.strip()


def tag_of(value: str) -> str:
    # the tag is a parameter of the header, after the URI's closing '>' when there is one
    rest = value.rsplit(">", 1)[-1] if ">" in value else value
    m = _TAG.search(rest)
    return m.group(1) if m else ""


def _split_head(data: bytes) -> tuple:
    """(head, body offset) or (None, 0) when the header block has not ended."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = data.find(sep)
        if i >= 0:
            return data[:i], i + len(sep)
    return None, 0


def parse(data: bytes, truncated: bool = False) -> SipMessage:
    """One SIP message from the start of data.  With truncated (a snippet cut
    short), a head or body that stops early is accepted as far as it goes."""
    head, body_at = _split_head(data)
    if head is None:
        if not truncated:
            raise SipError("the header block does not end")
        head, body_at = data, len(data)
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    first = lines[0]
    m = _REQUEST.match(first)
    method = uri = reason = None
    status = None
    if m:
        method, uri = m.group(1).decode("ascii"), m.group(2).decode("utf-8", "replace")
    else:
        m = _STATUS.match(first)
        if not m:
            raise SipError("no SIP start line")
        status = int(m.group(1))
        reason = (m.group(2) or b"").decode("utf-8", "replace")
    headers: dict = {}
    last = None
    for raw in lines[1:]:
        line = raw.decode("utf-8", "replace")
        if line[:1] in (" ", "\t") and last is not None:  # folded onto the previous header
            headers[last][-1] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        key = name.strip().lower()
        key = COMPACT.get(key, key)
        headers.setdefault(key, []).append(value.strip())
        last = key
    rest = data[body_at:]
    length = headers.get("content-length", [""])[0]
    complete = True
    if length.isdigit():
        n = int(length)
        complete = len(rest) >= n
        rest = rest[:n]
    if truncated:
        complete = False
    return SipMessage(method, uri, status, reason, headers, rest, complete)


class TcpStreams:
    """SIP over TCP: each direction's segments in sequence order, split into
    messages by Content-Length (RFC 3261 18.3).  Segments that arrive out of
    order wait (a little) for the hole to fill; data that is not SIP is
    skipped up to the next start line."""

    MAX_BUFFER = 1 << 20
    MAX_PENDING = 64

    def __init__(self):
        self._dirs: dict = {}

    def feed(self, key: tuple, seq: int, payload: bytes, ts_ns: int) -> list:
        """Messages completed by this segment: [(SipMessage, ts_ns of the segment it began in)]."""
        st = self._dirs.get(key)
        if st is None:
            st = self._dirs[key] = {"next": seq, "buf": b"", "marks": [], "pending": {}}
        if not payload:
            return []
        rel = (seq - st["next"]) & 0xFFFFFFFF
        if rel >= 0x80000000:  # old data (a retransmission): the part already seen is dropped
            skip = (st["next"] - seq) & 0xFFFFFFFF
            if skip >= len(payload):
                return []
            payload, seq, rel = payload[skip:], st["next"], 0
        if rel > 0:
            st["pending"][seq] = (payload, ts_ns)
            if len(st["pending"]) <= self.MAX_PENDING:
                return []
            # too many out of order: give the hole up and go on from the lowest
            seq = min(st["pending"], key=lambda x: (x - st["next"]) & 0xFFFFFFFF)
            payload, ts_ns = st["pending"].pop(seq)
            st["buf"], st["marks"], st["next"] = b"", [], seq
        self._append(st, payload, ts_ns)
        while st["pending"] and st["next"] in st["pending"]:
            p, t = st["pending"].pop(st["next"])
            self._append(st, p, t)
        return self._messages(st)

    @staticmethod
    def _append(st: dict, payload: bytes, ts_ns: int) -> None:
        st["marks"].append((len(st["buf"]), ts_ns))
        st["buf"] += payload
        st["next"] = (st["next"] + len(payload)) & 0xFFFFFFFF

    @staticmethod
    def _consume(st: dict, n: int) -> None:
        """Drop n bytes from the buffer's front; the segment times move along."""
        st["buf"] = st["buf"][n:]
        marks = [(off - n, ts) for off, ts in st["marks"]]
        keep = [m for m in marks if m[0] > 0]
        before = [m for m in marks if m[0] <= 0]
        st["marks"] = ([(0, before[-1][1])] if before else []) + keep

    def _messages(self, st: dict) -> list:
        out = []
        while True:
            buf = st["buf"]
            start = len(buf) - len(buf.lstrip(b"\r\n"))  # keep-alives (RFC 5626)
            if start:
                self._consume(st, start)
                buf = st["buf"]
            if not buf:
                st["marks"] = []
                return out
            head, body_at = _split_head(buf)
            if head is None:
                if len(buf) > MAX_HEADER_BYTES:  # not SIP after all: resynchronise
                    self._consume(st, len(buf) - len(_resync(buf[1:])))
                return out
            m = re.search(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*(\d+)", head)
            need = body_at + (int(m.group(1)) if m else 0)
            if len(buf) < need:
                if len(buf) > self.MAX_BUFFER:
                    self._consume(st, len(buf))
                return out
            ts = st["marks"][0][1] if st["marks"] else 0
            try:
                out.append((parse(buf[:need]), ts))
            except SipError:
                self._consume(st, len(buf) - len(_resync(buf[1:])))
                continue
            self._consume(st, need)


def _resync(buf: bytes) -> bytes:
    """From the next line that starts like a SIP message, or nothing."""
    m = re.search(rb"(?m)^(?:SIP/2\.0 \d{3}|(?:" + b"|".join(x.encode() for x in METHODS) + rb") \S+ SIP/2\.0)",
                  buf)
    return buf[m.start():] if m else b""
