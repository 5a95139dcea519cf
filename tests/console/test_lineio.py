"""The line editor on a real pty: pyserial opens the slave, the test types on the master."""
import os
import random
import threading

import pytest
import serial

from agent.console.lineio import READ_TIMEOUT_S, LineReader, PortGone
from tests.console.conftest import FdEnd, Terminal


@pytest.fixture
def line(pty_pair):
    master, path, _ = pty_pair
    port = serial.serial_for_url(path, baudrate=115200, timeout=READ_TIMEOUT_S, write_timeout=2)
    yield LineReader(port, max_line=64), Terminal(FdEnd(master))
    port.close()


def typed(reader, term, data: bytes, echo: bool = True):
    """Type `data` (from another thread: a pty holds only a few kB) and read one line."""
    sender = threading.Thread(target=term.send, args=(data,), daemon=True)
    sender.start()
    got = reader.read_line(echo=echo, idle_s=5)
    sender.join(5)
    return got, term.drain(0.1)


def test_echo_backspace_del_ctrl_u_ctrl_w(line):
    reader, term = line
    got, screen = typed(reader, term, b"statsu\x7f\x7fus\r")
    assert got.text == "status" and not got.noise and not got.too_long
    assert screen == "statsu\b \b\b \bus\n"
    got, _ = typed(reader, term, b"capture stop\x15flows top 3\x08\x084\r")
    assert got.text == "flows top4"
    got, _ = typed(reader, term, b"threats 10 two\x17\x175\r")
    assert got.text == "threats 5"


def test_ctrl_c_cancels_other_controls_are_ignored(line):
    reader, term = line
    got, screen = typed(reader, term, b"capture st\x03")
    assert got.cancelled and got.text == "" and screen.endswith("^C\n")
    got, screen = typed(reader, term, b"\x04ab\x01\x04\x11\x13c\r")
    assert got.text == "abc" and not got.noise and screen == "abc\n"


def test_line_ends_and_typed_ahead_lines(line):
    reader, term = line
    term.send(b"one\r\ntwo\nthree\rfour\r\n")
    assert [reader.read_line(idle_s=5).text for _ in range(4)] == ["one", "two", "three", "four"]


def test_arrow_keys_are_swallowed_and_utf8_kept(line):
    reader, term = line
    got, screen = typed(reader, term, "ab\x1b[A\x1b[1;5Cc\x1bOd é→\r".encode())
    assert got.text == "abc é→" and not got.noise
    assert "\x1b" not in screen


def test_no_echo_mode_for_passwords(line):
    reader, term = line
    got, screen = typed(reader, term, b"hunter22\x7fz\r", echo=False)
    assert got.text == "hunter2z" and screen == "\n"


@pytest.mark.parametrize("junk", [b"\x00\x00", b"\xff\xfe", b"\xc3(", b"\x80", b"\xed\xa0\x80", b"\xe2\x80\x8b"])
def test_bytes_that_are_no_text_mark_the_line(line, junk):
    reader, term = line
    got, _ = typed(reader, term, b"st" + junk + b"atus\r")
    assert got.noise > 0 and got.text.startswith("st")
    got, _ = typed(reader, term, b"status\r")
    assert got.text == "status" and got.noise == 0


def test_too_long_lines_stop_echoing_and_are_marked(line):
    reader, term = line
    got, screen = typed(reader, term, b"x" * 100_000 + b"\r")
    assert got.too_long and len(got.text) == 64
    assert screen == "x" * 64 + "\n"
    got, _ = typed(reader, term, b"status\r")
    assert got.text == "status" and not got.too_long


def test_random_garbage_never_raises(line):
    reader, term = line
    rnd = random.Random(10)
    data = bytes(rnd.randrange(256) for _ in range(20_000)) + b"\x03\rstatus\r"
    threading.Thread(target=term.send, args=(data,), daemon=True).start()
    texts = []
    while True:
        got = reader.read_line(idle_s=5)
        assert got is not None
        texts.append(got.text)
        term.drain(0)
        if got.text == "status" and not got.noise:
            break


def test_idle_returns_none(line):
    reader, _ = line
    assert reader.read_line(idle_s=0.5) is None


def test_a_vanished_device_is_port_gone(pty_pair):
    master, path, fds = pty_pair
    port = serial.serial_for_url(path, timeout=READ_TIMEOUT_S)
    reader = LineReader(port)
    for fd in list(fds):
        os.close(fd)
        fds.remove(fd)
    with pytest.raises(PortGone):
        reader.read_line(idle_s=5)
    port.close()
