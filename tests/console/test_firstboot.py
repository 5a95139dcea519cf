"""A box's first login: `capbox firstboot` made the certificate and the setup code,
`capbox console` (a process of its own, over socket://) reaches the agent over
HTTPS with --pin, shows the fingerprint and the code before the login, and the
code works once: the login with it sets the console's own password."""
import subprocess
import sys

import serial

from agent.auth import SCRYPT
from agent.client import parse_pin
from agent.firstboot import CODE_SCRYPT_N
from tests.agent import test_client_tls
from tests.conftest import ROOT
from tests.console.conftest import PROMPT, SerialEnd, Terminal
from tests.console.test_remote import stop

NEW_PASSWORD = "box-own-password"
tls_agent = test_client_tls.tls_agent      # the fixture: a real agent serving HTTPS with a firstboot certificate


def scrypt_cost(path) -> int:
    """The scrypt n a console password file was hashed with."""
    return 1 << int(path.read_text().split("$")[1])


def test_setup_code_shown_works_once_and_sets_a_password(tls_agent, relay):
    d = tls_agent.data_dir
    assert scrypt_cost(d / "console.passwd") == CODE_SCRYPT_N    # the random code's hash: cheap
    log = open(d / "console.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "agent", "console", "--port", relay.url, "--url", tls_agent.https,
                             "--pin", tls_agent.fingerprint, "--data-dir", str(d)], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        term = Terminal(SerialEnd(serial.serial_for_url(relay.url, timeout=0.2)))
        term.send("\r")                          # Enter: the notice again, for a terminal that came late
        shown = term.expect("Password: ", 30)
        fp = shown.split("HTTPS certificate SHA256 ", 1)[1].split()[0]
        assert parse_pin(fp) == parse_pin(tls_agent.fingerprint)
        code = shown.split("setup code ", 1)[1].split()[0]
        term.send(code + "\r")
        term.expect("New password: ")
        term.send(NEW_PASSWORD + "\r")
        term.expect("Again: ")
        term.send(NEW_PASSWORD + "\r")
        term.expect("Password set.")
        term.expect(PROMPT)
        out = term.run("status")                 # through the pinned HTTPS connection
        assert "capture   idle" in out, out
        term.send("exit\r")
        term.expect("Logged out")
        term.expect("Password: ")
        term.send("\r")
        shown = term.expect("Password: ", 30)
        assert "HTTPS certificate SHA256" in shown and "setup code" not in shown   # spent: no longer shown ...
        term.send(code + "\r")
        term.expect("Login incorrect")           # ... and no longer a password
        term.expect("Password: ")
        term.send(NEW_PASSWORD + "\r")
        term.expect("Logged in.")
        term.expect(PROMPT)
        term.send("exit\r")
        term.expect("Logged out")
    finally:
        stop(proc)
    assert not (d / "console.setup").exists()
    assert scrypt_cost(d / "console.passwd") == SCRYPT["n"]       # a person's password: the full cost
