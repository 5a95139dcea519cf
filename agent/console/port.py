"""The console on its port: open it, run sessions on it, and when the device
goes away (unplugged, the pty's other end closed, the socket dropped) close
it and open it again with a growing pause.  Nothing that happens on the
line reaches the agent: a session's failure is logged and the port reopened.

ConsoleService runs it inside the agent (`[console] port`); `capbox console
--port` runs it alone, attached to a running agent over REST."""
import logging
import threading

import serial

from agent import password
from agent.console.commands import Commands
from agent.console.local import LocalClient
from agent.console.lineio import READ_TIMEOUT_S, LineReader, PortGone
from agent.console.session import LoginState, Session
from agent.services import Face, Service, start_services

log = logging.getLogger(__name__)
WRITE_TIMEOUT_S = 2.0
BACKOFF_MIN_S = 0.25
BACKOFF_MAX_S = 5.0


class Console:
    def __init__(self, settings, password_path, commands: Commands, url: str = "", baud: int = 0,
                 data_dir=None):
        self.settings = settings                    # a ConsoleSection
        self.data_dir = data_dir                    # shows the box's first-boot notice (agent.firstboot)
        self.url = url or settings.port
        self.baud = baud or settings.baud
        self.password_path = password_path
        self.commands = commands
        self.stop = threading.Event()
        self.login = LoginState()
        self.state = "starting"
        self.opens = 0
        self.last_error = None
        self._port = None

    def view(self) -> dict:
        return {"port": self.url, "baud": self.baud, "state": self.state, "opens": self.opens,
                "last_error": self.last_error, "password_set": self._password_set(), **self.login.view()}

    def _password_set(self):
        try:
            return password.is_set(self.password_path)
        except password.PasswordError:
            return False

    def open(self):
        port = serial.serial_for_url(self.url, baudrate=self.baud, timeout=READ_TIMEOUT_S, exclusive=True,
                                     do_not_open=True)
        if not self.url.startswith("rfc2217://"):   # pyserial's RFC 2217 client refuses a write timeout
            port.write_timeout = WRITE_TIMEOUT_S
        port.open()
        try:
            port.reset_input_buffer()   # what piled up while nobody listened is not input
        except (OSError, ValueError):
            pass
        return port

    def serve(self) -> None:
        """Until stop: open, run sessions, reopen."""
        pause = BACKOFF_MIN_S
        while not self.stop.is_set():
            try:
                self._port = self.open()
            except Exception as e:    # SerialException (an OSError), a bad URL (ValueError), whatever a URL handler raises
                self._trouble(f"cannot open {self.url}: {e}", "waiting")
                self.stop.wait(pause)
                pause = min(pause * 2, BACKOFF_MAX_S)
                continue
            self.opens += 1
            self.state = "open"
            log.info("console on %s at %d baud", self.url, self.baud)
            self.last_error = None
            try:
                reader = LineReader(self._port, self.settings.max_line)
                Session(reader, self.commands, self.settings, self.password_path, self.login, self.url,
                        self.stop, self.data_dir).run()
                pause = BACKOFF_MIN_S
            except PortGone as e:
                self._trouble(f"{self.url} went away: {e}", "reopening")
            except Exception as e:      # a console bug: logged, the port reopened; the agent goes on
                log.exception("console on %s failed", self.url)
                self._trouble(f"{type(e).__name__}: {e}", "reopening")
                self.stop.wait(pause)
                pause = min(pause * 2, BACKOFF_MAX_S)
            finally:
                self._close()
        self.state = "stopped"

    def _trouble(self, message: str, state: str) -> None:
        """Logged once while it stays the same; /v1/health has it either way."""
        if message != self.last_error:
            log.warning("console: %s; %s", message, "retrying" if state == "waiting" else "opening it again")
        self.last_error = message
        self.state = state

    def _close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except Exception:   # closing a vanished device may fail any way it likes
                pass

    def close(self) -> None:
        self.stop.set()


class ConsoleError(Exception):
    pass


class ConsoleService(Service):
    """The console as one of the agent's services: a thread of its own on the port, commands
    calling the agent's services in this process (LocalClient; full rights after the password)."""
    name = "console"
    channels = None
    critical = False

    def __init__(self, agent):
        self.agent = agent

    @classmethod
    def wanted(cls, cfg) -> bool:
        return bool(cfg.console.port)

    def start(self, agent) -> None:
        self.console = Console(agent.cfg.console, password.path_for(agent.cfg), Commands(LocalClient(agent)),
                               data_dir=agent.cfg.data_dir)
        self.thread = threading.Thread(target=self.console.serve, name="console-port", daemon=True)
        self.thread.start()

    def tick(self, now: float) -> None:
        if not self.thread.is_alive() and not self.console.stop.is_set():
            raise ConsoleError("the console's port thread ended")   # the component is marked failed

    def stop(self) -> None:
        self.console.close()
        self.thread.join(2 * READ_TIMEOUT_S + WRITE_TIMEOUT_S)

    def detail(self) -> dict:
        return self.console.view()


class ConsoleFace(Face):
    """The serial console on the agent: its service, started with the faces (the health
    component "console"; the agent's stop_all ends its thread)."""

    def __init__(self, agent):
        self.agent = agent
        self.service = ConsoleService(agent)

    def start(self) -> None:
        start_services(self.agent, [self.service])
