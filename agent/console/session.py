"""A console session on an open port: the password prompt, the lockout,
the command prompt, idle logout.

What a terminal sees (stable: scripts and the image's boot test wait for it):

    capbox console on /dev/ttyS0 (capbox 0.1.0): press Enter
    Password:                    <- nothing is echoed
    Logged in. Type help for the commands.
    capbox>                      <- the prompt; `exit` logs out

On a box's first boot (agent.firstboot) the banner also shows the HTTPS
certificate's fingerprint and a one-time setup code; a login with that code
asks for the console's own password (`New password:`, `Again:`) and spends it.

A wrong password answers "Login incorrect"; after console.max_failures in a
row the console answers "Locked: ..." to every try for console.lockout_s.
The lockout belongs to the console, not to the session: a reopened port or a
reconnected terminal does not reset it."""
import dataclasses
import logging
import time

from agent import __version__, firstboot
from agent import password
from agent.console.lineio import Line, LineReader

log = logging.getLogger(__name__)

PASSWORD_PROMPT = "Password: "
PROMPT = "capbox> "
LOGGED_IN = "Logged in. Type help for the commands."
NOISE_EVERY_S = 2.0     # a burst of noise gets one explanation, not one per line


@dataclasses.dataclass
class LoginState:
    """What outlives a session: failures in a row, the lockout, counters for /v1/health."""
    failures: int = 0
    locked_until: float = 0.0
    logins: int = 0
    failed_total: int = 0
    lockouts: int = 0
    logged_in: bool = False
    noise_bytes: int = 0
    long_lines: int = 0

    def view(self) -> dict:
        left = self.locked_until - time.monotonic()
        return {"logged_in": self.logged_in, "logins": self.logins, "failed_logins": self.failed_total,
                "lockouts": self.lockouts, "locked_for_s": round(left, 1) if left > 0 else 0,
                "noise_bytes": self.noise_bytes, "long_lines": self.long_lines}


class Session:
    def __init__(self, reader: LineReader, commands, settings, password_path, state: LoginState, where: str,
                 stop, data_dir=None):
        self.io = reader
        self.commands = commands
        self.settings = settings          # a ConsoleSection
        self.password_path = password_path
        self.state = state
        self.where = where
        self.stop = stop
        self.data_dir = data_dir          # the box's first-boot notice (agent.firstboot), when given
        self._noise_said = 0.0

    def banner(self) -> None:
        self.io.say(f"\ncapbox console on {self.where} (capbox {__version__}): press Enter\n")
        if self.data_dir is not None:
            self.io.say("".join(f"{line}\n" for line in firstboot.notice(self.data_dir)))

    def run(self) -> None:
        """Until stop is set; PortGone goes up to the service, which reopens the port."""
        self.banner()
        while not self.stop.is_set():
            if self.login():
                try:
                    self.shell()
                finally:
                    self.state.logged_in = False

    # ---- the password prompt -----------------------------------------------------------

    def login(self) -> bool:
        self.io.say(PASSWORD_PROMPT)
        line = self.io.read_line(echo=False, stop=self.stop)
        if line is None or line.cancelled or self._refused(line):
            return False
        if not line.text:
            if self.data_dir is not None:     # Enter alone: the notice again, for a terminal attached late
                self.banner()
            return False
        st = self.state
        left = st.locked_until - time.monotonic()
        if left > 0:
            self.io.say(f"Locked: too many wrong passwords; try again in {left:.0f} s\n")
            return False
        try:
            ok = password.verify(self.password_path, line.text)
        except password.PasswordError as e:
            self.io.say(f"Cannot log in: {e}\n")
            return False
        if ok and self.data_dir is not None and firstboot.setup_code(self.data_dir) == line.text:
            ok = self.own_password()
            if not ok:
                return False
        if ok:
            st.failures = 0
            st.logins += 1
            st.logged_in = True
            log.info("console %s: logged in", self.where)
            self.io.say(LOGGED_IN + "\n")
            return True
        st.failures += 1
        st.failed_total += 1
        self.io.discard_pending()
        if st.failures >= self.settings.max_failures:
            st.locked_until = time.monotonic() + self.settings.lockout_s
            st.lockouts += 1
            st.failures = 0
            log.warning("console %s: %d wrong passwords in a row: locked for %d s", self.where,
                        self.settings.max_failures, self.settings.lockout_s)
            self.io.say(f"Login incorrect\nLocked: {self.settings.max_failures} wrong passwords in a row; "
                        f"try again in {self.settings.lockout_s} s\n")
        else:
            log.info("console %s: wrong password (%d in a row)", self.where, st.failures)
            self.io.say("Login incorrect\n")
        return False

    def own_password(self) -> bool:
        """The one-time setup code was right: the box's own password is set before anything else."""
        self.io.say("The setup code works once: choose the console password "
                    f"(at least {password.MIN_LENGTH} characters).\nNew password: ")
        first = self.io.read_line(echo=False, stop=self.stop)
        if first is None or first.cancelled or self._refused(first):
            return False
        self.io.say("Again: ")
        again = self.io.read_line(echo=False, stop=self.stop)
        if again is None or again.cancelled or self._refused(again) or again.text != first.text:
            self.io.say("The two passwords differ; the setup code still works\n")
            return False
        try:
            password.store(self.password_path, first.text)
        except (password.PasswordError, OSError) as e:
            self.io.say(f"Cannot set it: {e}; the setup code still works\n")
            return False
        firstboot.spend_setup_code(self.data_dir)
        log.info("console %s: the setup code was used and a password set", self.where)
        self.io.say("Password set.\n")
        return True

    # ---- the command prompt -------------------------------------------------------------

    def shell(self) -> None:
        idle = self.settings.idle_timeout_s
        while not self.stop.is_set():
            self.io.say(PROMPT)
            line = self.io.read_line(echo=True, idle_s=idle, stop=self.stop)
            if line is None:
                if not self.stop.is_set():
                    self.io.say(f"\nIdle for {idle} s: logged out\n")
                    log.info("console %s: idle logout", self.where)
                return
            if line.cancelled or self._refused(line) or not line.text.strip():
                continue
            out = self.commands.run(line.text)
            if out.text:
                self.io.say(out.text)
            if out.logout:
                log.info("console %s: logged out", self.where)
                self.io.say("Logged out\n")
                return

    def _refused(self, line: Line) -> bool:
        """A noisy or too long line is not run (nor tried as a password); the terminal is told why."""
        if line.noise:
            self.state.noise_bytes += line.noise
            now = time.monotonic()
            if now - self._noise_said >= NOISE_EVERY_S:
                self._noise_said = now
                self.io.say(f"Line noise: {line.noise} unreadable byte{'s' if line.noise > 1 else ''}, line ignored "
                            f"(is the terminal set to {self.settings.baud} 8N1?)\n")
            return True
        if line.too_long:
            self.state.long_lines += 1
            self.io.say(f"Line too long: more than {self.settings.max_line} characters, ignored\n")
            return True
        return False
