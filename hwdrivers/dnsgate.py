"""The DNS gate of a session (src/dnsgate.c): DNS queries folded into the
DNS event after them, so Python reads one event per exchange, not two.

Off by default: what reads every DNS message as its own event (a bus
listener, the protocol logs from Python) wants it off; the detectors read
the folded query (PacketEvent.query) exactly as its own event."""
from hwdrivers._hw import ffi, lib
from hwdrivers.errors import CaptureError, ErrorCode

GATE = ("held", "folded", "released", "dropped")
FIELDS = GATE + ("repeats", "templates", "changed", "evicted", "unfit")   # answer templates (src/dnsrepeat.c)


def set_fold(session, on: bool, repeats: bool = False) -> None:
    """Fold queries from now on (the session must have dns events on); off sends the held one.  repeats: and
    mark answers that repeat their template (src/dnsrepeat.c), which a reader asking for them reads as
    hwdrivers.events.DnsRepeat."""
    with session._use() as s:
        if lib.hw_session_set_dns_fold(s, (2 if repeats else 1) if on else 0):
            raise CaptureError(ErrorCode.ARG, "DNS queries can be folded only with dns events on")
    session.dns_fold = bool(on)


def counters(session) -> dict:
    """{"held", "folded", "released", "dropped"}: queries held back; carried by the next DNS event; sent as
    they were (another event came first, the end, an idle wire); sent into a full ring (dropped).  With repeats:
    {"repeats", "templates", "changed", "evicted", "unfit"}: answers marked as repeats; templates made, of those
    replacing one of the same key with other facts or another key's; folded answers a template cannot hold."""
    c = ffi.new("struct hw_dnsgate_counters *")
    with session._use() as s:
        lib.hw_dnsgate_counters(s, c)
    return {f: getattr(c, f) for f in FIELDS}
