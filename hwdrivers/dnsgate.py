"""The DNS gate of a session (src/dnsgate.c): DNS queries folded into the
DNS event after them, so Python reads one event per exchange, not two.

Off by default: what reads every DNS message as its own event (a bus
listener, the protocol logs from Python) wants it off; the detectors read
the folded query (PacketEvent.query) exactly as its own event."""
from hwdrivers._hw import ffi, lib
from hwdrivers.errors import CaptureError, ErrorCode

FIELDS = ("held", "folded", "released", "dropped")


def set_fold(session, on: bool) -> None:
    """Fold queries from now on (the session must have dns events on); off sends the held one."""
    with session._use() as s:
        if lib.hw_session_set_dns_fold(s, int(on)):
            raise CaptureError(ErrorCode.ARG, "DNS queries can be folded only with dns events on")
    session.dns_fold = bool(on)


def counters(session) -> dict:
    """{"held", "folded", "released", "dropped"}: queries held back; carried by the next DNS event; sent as
    they were (another event came first, the end, an idle wire); sent into a full ring (dropped)."""
    c = ffi.new("struct hw_dnsgate_counters *")
    with session._use() as s:
        lib.hw_dnsgate_counters(s, c)
    return {f: getattr(c, f) for f in FIELDS}
