"""Session.run_to_eof: the one loop that runs a capture file to its end for
analyze, windows, calls and detect (progress by bytes read, a batch hook,
cancellation between chunks)."""
import os

import pytest

from hwdrivers import CaptureConfig, Session
from hwdrivers.errors import Cancelled
from tests.conftest import pcap

FILE = "ndpi__FAX-Call-t38-CA-TDM-SIP-FB-1.pcap"


def session(path):
    return Session(CaptureConfig(source=path, backend="pcapfile", events=frozenset({"sip"}), lossless=True))


def test_progress_rises_to_the_whole_file_and_every_batch_is_drained():
    path = pcap(FILE)
    seen, events = [], []
    with session(path) as s:
        assert s.run_to_eof(lambda: events.extend(s.read_events()), seen.append, every_ms=1) is None
        c = s.counters()
    assert seen == sorted(seen) and seen[-1] == 1.0
    # the formula: classic pcap, a 24-byte header and 16 bytes before each record
    assert 24 + c.captured_bytes + 16 * c.packets == os.path.getsize(path)
    assert events and all(e.kind == "sip" for e in events)


def test_cancelled_stops_before_the_next_chunk():
    """Asked before a chunk, it runs none (a whole small file can fit in one chunk, so the test asks
    before the first: nothing timing-dependent)."""
    calls = []
    with session(pcap(FILE)) as s:
        with pytest.raises(Cancelled):
            s.run_to_eof(lambda: calls.append(1), cancelled=lambda: True)
        assert calls == [] and s.counters().packets == 0
        assert s.run_to_eof(lambda: calls.append(1)) is None and calls and s.fraction_read() == 1.0
