"""A terminal at the far end of the serial line: bytes out, text back, and
a wait for what a person would wait for (the prompt)."""
import codecs
import errno
import os
import select
import socket
import threading
import time

import pytest
import serial
import serial.rfc2217

from agent import password
from tests.agent import conftest as agent_fixtures

PASSWORD = "s3rial-console"
PROMPT = "capbox> "
make_agent = agent_fixtures.make_agent      # the running-agent fixture, for the tests here


class FdEnd:
    """The master side of a pty pair, read and written as raw bytes."""

    def __init__(self, fd: int):
        self.fd = fd

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            select.select([], [self.fd], [], 5)
            view = view[os.write(self.fd, view[:4096]):]

    def read(self, timeout: float) -> bytes:
        if not select.select([self.fd], [], [], timeout)[0]:
            return b""
        try:
            return os.read(self.fd, 65536)
        except OSError as e:
            if e.errno == errno.EIO:      # no one has the other side open (yet): nothing to read
                time.sleep(timeout)
                return b""
            raise


class SerialEnd:
    """A pyserial port (a tty, or socket://) on the person's side."""

    def __init__(self, port):
        self.port = port

    def write(self, data: bytes) -> None:
        self.port.write(data)
        self.port.flush()

    def read(self, timeout: float) -> bytes:
        self.port.timeout = timeout
        return self.port.read(max(1, self.port.in_waiting))


class Terminal:
    def __init__(self, end):
        self.end = end
        self.buf = ""        # received, not yet consumed by expect(); CRLF read as LF
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._cr = ""        # a CR at the end of a read, until the next read says whether an LF follows

    def _feed(self, data: bytes) -> None:
        text = self._cr + self._decoder.decode(data)
        self._cr = "\r" if text.endswith("\r") else ""
        self.buf += text[:len(text) - len(self._cr)].replace("\r\n", "\n")

    def send(self, data) -> None:
        self.end.write(data.encode() if isinstance(data, str) else data)

    def expect(self, text: str, timeout: float = 15.0) -> str:
        """Everything up to and including `text` (a plain string), CRLF read as LF."""
        deadline = time.monotonic() + timeout
        while text not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"waited {timeout} s for {text!r}; the terminal shows:\n{self.buf[-2000:]}")
            self._feed(self.end.read(min(0.2, left)))
        head, _, self.buf = self.buf.partition(text)
        return head + text

    def type_reading(self, data: bytes) -> str:
        """Send a lot while showing what comes back, as a terminal does; what came back."""
        sender = threading.Thread(target=self.send, args=(data,), daemon=True)
        sender.start()
        while sender.is_alive():
            self._feed(self.end.read(0.05))
        return self.drain(0.5)

    def drain(self, quiet: float = 0.3) -> str:
        """What arrives until the line has been quiet for `quiet` seconds."""
        while True:
            data = self.end.read(quiet)
            if not data:
                break
            self._feed(data)
        out, self.buf = self.buf, ""
        return out

    def login(self, pw: str = PASSWORD) -> None:
        self.drain()
        self.send("\r")
        self.expect("Password: ")
        self.send(pw + "\r")
        self.expect("Logged in.")
        self.expect(PROMPT)

    def run(self, command: str, timeout: float = 20.0) -> str:
        """Type a command, wait for the next prompt; what the command printed (without the echo)."""
        self.send(command + "\r")
        out = self.expect(PROMPT, timeout)[:-len(PROMPT)]
        echo = command + "\n"
        assert out.startswith(echo), f"no echo of {command!r}: {out[:200]!r}"
        return out[len(echo):]


def assert_fits(text: str, width: int = 80) -> None:
    wide = [line for line in text.splitlines() if len(line) > width]
    assert not wide, f"lines wider than {width}: {wide}"


@pytest.fixture
def pty_pair():
    """(master fd, slave path): the console opens the path, the test types on the master."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    fds = [master, slave]
    yield master, path, fds
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def set_password(data_dir, pw: str = PASSWORD) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    password.store(data_dir / password.FILE_NAME, pw)


@pytest.fixture
def console_agent(make_agent, tmp_path):
    """start(port, extra_config, pw): an idle agent whose console is on `port`, its password set first."""
    def start(port: str, extra: str = "", pw: str = PASSWORD, name: str = "var"):
        if pw:
            set_password(tmp_path / name, pw)
        return make_agent(f'[capture]\nautostart = false\n[console]\nport = "{port}"\n{extra}', name=name)
    return start


class Relay:
    """A terminal server on loopback: the first two connections of each pair are wired
    together (the console dials in with socket://, so does the person)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.url = f"socket://127.0.0.1:{self.port}"
        self.pairs: list = []
        self._waiting = None
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self._waiting is None:
                self._waiting = conn
                continue
            a, self._waiting = self._waiting, None
            self.pairs.append((a, conn))
            for src, dst in ((a, conn), (conn, a)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src, dst) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def drop(self) -> None:
        """Hang up the current pair, as a terminal server does when a line drops."""
        for a, b in self.pairs:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass
        self.pairs.clear()

    def close(self) -> None:
        self._stop = True
        self.drop()
        if self._waiting is not None:
            self._waiting.close()
        self.sock.close()


@pytest.fixture
def relay():
    r = Relay()
    yield r
    r.close()


class _PtyDevice(serial.Serial):
    """A pty as a terminal server's device: a pty has no modem lines to read or set."""
    cts = dsr = ri = cd = False

    def _update_dtr_state(self):
        pass

    def _update_rts_state(self):
        pass


class Rfc2217Server:
    """A terminal server on loopback speaking RFC 2217 (pyserial's PortManager), serving
    a tty: the console dials rfc2217://, the person types on the tty's other side."""

    def __init__(self, device: str):
        self.device = device
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.url = f"rfc2217://127.0.0.1:{self.sock.getsockname()[1]}"
        self.conn = None
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conn = conn
            self.accepted += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn) -> None:
        lock = threading.Lock()

        class Connection:
            @staticmethod
            def write(data: bytes) -> None:
                with lock:
                    conn.sendall(data)

        dev = _PtyDevice(self.device, timeout=0.1)
        manager = serial.rfc2217.PortManager(dev, Connection())
        done = threading.Event()

        def to_client():
            while not done.is_set():
                data = dev.read(max(1, dev.in_waiting))
                if data:
                    Connection.write(b"".join(manager.escape(data)))
        threading.Thread(target=to_client, daemon=True).start()
        try:
            while data := conn.recv(4096):
                dev.write(b"".join(manager.filter(data)))
        except OSError:
            pass
        finally:
            done.set()
            time.sleep(0.2)         # to_client's read ends before the device closes
            dev.close()
            conn.close()

    def drop(self) -> None:
        """Hang up the console's connection, as a terminal server does when a line drops."""
        try:
            self.conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()
        if self.conn is not None:
            self.drop()


@pytest.fixture
def rfc2217_server():
    servers = []

    def start(device: str) -> Rfc2217Server:
        servers.append(Rfc2217Server(device))
        return servers[-1]
    yield start
    for s in servers:
        s.close()


__all__ = ["PASSWORD", "PROMPT", "Terminal", "FdEnd", "SerialEnd", "assert_fits", "set_password", "Relay", "Rfc2217Server"]
