"""A line editor over a serial port, for a dumb terminal at the other end.

The console echoes what it accepts (serial terminals do no local echo),
except in no-echo mode (passwords).  Keys: Backspace or DEL erase a
character, Ctrl-U the line, Ctrl-W a word, Ctrl-C cancels the line, Ctrl-L
or Ctrl-R redraw it; escape sequences (arrow keys) are swallowed; CR, LF
and CRLF end a line.  Other control keys are ignored (Ctrl-D too: on a
noisy line a stray 0x04 must not end a session).

What cannot be text is counted, not kept: a NUL, a byte that is no UTF-8, a
character that does not print.  A line with such bytes comes back marked as
noise (the session refuses it and says why: usually a baud rate mismatch).
A line longer than max_line characters stops echoing at the limit, the rest
is dropped, and the line comes back marked as too long."""
import dataclasses
import time
from typing import Optional

from serial import SerialTimeoutException

READ_TIMEOUT_S = 0.2    # what the port is opened with: how often a wait looks at the clock
CTRL_C, CTRL_L, CTRL_R, CTRL_U, CTRL_W = 0x03, 0x0C, 0x12, 0x15, 0x17
BS, TAB, LF, CR, ESC, DEL = 0x08, 0x09, 0x0A, 0x0D, 0x1B, 0x7F
ERASE = b"\b \b"
ESC_MAX = 16            # an escape sequence longer than this is not one
STALLED_WRITE_S = 0.05


class PortGone(Exception):
    """The device went away (unplugged, the other end of a pty closed, the socket dropped)."""


@dataclasses.dataclass
class Line:
    text: str = ""
    noise: int = 0          # bytes that could not be text
    too_long: bool = False
    cancelled: bool = False  # Ctrl-C


class LineReader:
    def __init__(self, port, max_line: int = 1024):
        self.port = port
        self.max_line = max_line
        self.pending = bytearray()      # read but not yet looked at (typed ahead)
        self.out = bytearray()          # echo waiting to be written
        self.unwritten = 0              # bytes dropped because nobody read them
        self._stalled = None            # the port's write timeout while a stalled peer gets a short one
        self._reset()
        self._after_cr = False
        self._esc = 0                   # 0: none; 1: after ESC; 2: inside CSI/SS3 (bytes seen)
        self._utf8 = bytearray()
        self._utf8_need = 0

    def _reset(self) -> None:
        self.chars: list = []
        self.noise = 0
        self.too_long = False

    # ---- output ----------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Write to the port.  A peer that reads nothing (a write timeout) loses the output, not the
        console: until it reads again, writes wait only STALLED_WRITE_S, so input is still read."""
        try:
            self.port.write(data)
            if self._stalled is not None:
                self.port.write_timeout, self._stalled = self._stalled, None
        except SerialTimeoutException:
            self.unwritten += len(data)
            if self._stalled is None:
                self._stalled, self.port.write_timeout = self.port.write_timeout, STALLED_WRITE_S
        except (OSError, ValueError, TypeError) as e:   # pyserial: SerialException is an OSError
            raise PortGone(str(e) or type(e).__name__) from None

    def say(self, text: str) -> None:
        """Text to the terminal, with CRLF line ends."""
        self.write(text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8", "replace"))

    def _flush(self) -> None:
        if self.out:
            data, self.out = bytes(self.out), bytearray()
            self.write(data)

    # ---- input -------------------------------------------------------------------------

    def _fill(self) -> bool:
        """Read what is there (waiting up to the port's timeout); whether anything came."""
        try:
            data = self.port.read(max(1, self.port.in_waiting))
        except (OSError, ValueError, TypeError) as e:
            raise PortGone(str(e) or type(e).__name__) from None
        self.pending += data
        return bool(data)

    def read_line(self, echo: bool = True, idle_s: Optional[float] = None, stop=None) -> Optional[Line]:
        """The next line; None when idle_s passed without a byte, or `stop` was set."""
        last = time.monotonic()
        while True:
            line = self._take(echo)
            self._flush()
            if line is not None:
                return line
            if stop is not None and stop.is_set():
                return None
            if self._fill():
                last = time.monotonic()
            elif idle_s is not None and time.monotonic() - last >= idle_s:
                return None

    def discard_pending(self) -> None:
        """Forget what was typed ahead (after a failed login, typed-ahead guesses do not count)."""
        self.pending.clear()
        self._reset()

    def _take(self, echo: bool) -> Optional[Line]:
        """Look at pending bytes until a line ends; the line, or None when more bytes are needed."""
        i = 0
        try:
            while i < len(self.pending):
                b = self.pending[i]
                i += 1
                line = self._byte(b, echo)
                if line is not None:
                    return line
            return None
        finally:
            del self.pending[:i]

    def _byte(self, b: int, echo: bool) -> Optional[Line]:
        after_cr, self._after_cr = self._after_cr, False
        if self._utf8_need:
            if 0x80 <= b < 0xC0:
                self._utf8.append(b)
                self._utf8_need -= 1
                if not self._utf8_need:
                    try:
                        ch = self._utf8.decode("utf-8")
                    except UnicodeDecodeError:
                        self.noise += len(self._utf8)
                    else:
                        if ch.isprintable():
                            self._add(ch, echo)
                        else:
                            self.noise += len(self._utf8)
                    self._utf8.clear()
                return None
            self.noise += len(self._utf8)      # a sequence cut short; b starts afresh
            self._utf8.clear()
            self._utf8_need = 0
        if self._esc:
            return self._escape(b)
        if b == CR:
            self._after_cr = True
            return self._end()
        if b == LF:
            return None if after_cr else self._end()
        if 0x20 <= b < 0x7F:
            self._add(chr(b), echo)
        elif b in (BS, DEL):
            if self.chars:
                self.chars.pop()
                if echo:
                    self.out += ERASE
        elif b == CTRL_U:
            self._erase(len(self.chars), echo)
        elif b == CTRL_W:
            n = len(self.chars)
            while n and self.chars[n - 1] == " ":
                n -= 1
            while n and self.chars[n - 1] != " ":
                n -= 1
            self._erase(len(self.chars) - n, echo)
        elif b == CTRL_C:
            self.out += b"^C\r\n"
            self._reset()
            return Line(cancelled=True)
        elif b in (CTRL_L, CTRL_R):
            if echo:
                self.out += b"\r\n" + "".join(self.chars).encode()
        elif b == TAB:
            self._add(" ", echo)
        elif b == ESC:
            self._esc = 1
        elif 0xC2 <= b <= 0xF4:
            self._utf8.append(b)
            self._utf8_need = 1 if b < 0xE0 else 2 if b < 0xF0 else 3
        elif b == 0 or b >= 0x80:
            self.noise += 1     # a NUL (a BREAK, or bits at the wrong speed); 0x80-0xC1, 0xF5-0xFF never start UTF-8
        # other control keys (XON/XOFF among them) are ignored, as a terminal would
        return None

    def _escape(self, b: int) -> None:
        if self._esc == 1:
            self._esc = 2 if b in (0x5B, 0x4F) else 0     # ESC [ or ESC O: a sequence; else Alt+key, dropped
            return None
        self._esc += 1
        if 0x40 <= b <= 0x7E or self._esc > ESC_MAX:
            self._esc = 0                                 # the final byte
        elif not 0x20 <= b <= 0x3F:
            self._esc = 0                                 # not a sequence after all: count it
            self.noise += 1
        return None

    def _add(self, ch: str, echo: bool) -> None:
        if self.too_long:
            return
        if len(self.chars) >= self.max_line:
            self.too_long = True
            return
        self.chars.append(ch)
        if echo:
            self.out += ch.encode("utf-8")

    def _erase(self, n: int, echo: bool) -> None:
        if n:
            del self.chars[len(self.chars) - n:]
            if echo:
                self.out += ERASE * n
        if not self.chars:
            self.too_long = False
            self.noise = 0

    def _end(self) -> Line:
        self.out += b"\r\n"
        line = Line("".join(self.chars), self.noise, self.too_long)
        self._reset()
        return line
