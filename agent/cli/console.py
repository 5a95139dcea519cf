"""`capbox console --port DEVICE|URL` (the console alone, attached to a
running agent over REST) and `capbox console passwd` (set its password)."""
import getpass
import signal
import sys

from agent.cli.common import fail, load_config
from agent import password

DEFAULT_URL = "http://127.0.0.1:8080"


def cmd_console(args) -> int:
    from agent.config import ConfigError
    over = {"console": {"port": args.port}} if args.port else {}
    if args.baud:
        over.setdefault("console", {})["baud"] = args.baud
    try:
        cfg = load_config(args, over)
    except ConfigError as e:
        return fail(f"config: {e}")
    if args.action == "passwd":
        return set_password(password.path_for(cfg))
    return serve(cfg, args.url, args.key, args.cacert, args.pin)


def set_password(path) -> int:
    """From the terminal (asked twice), or the first line of standard input when it is not one."""
    if sys.stdin.isatty():
        first = getpass.getpass("new console password: ")
        if getpass.getpass("again: ") != first:
            return fail("the two passwords differ; nothing changed")
    else:
        first = sys.stdin.readline().rstrip("\r\n")
    try:
        password.store(path, first)
    except password.PasswordError as e:
        return fail(str(e))
    except OSError as e:
        return fail(f"cannot write {path}: {e.strerror}")
    print(f"console password set ({path})")
    return 0


def serve(cfg, url: str, key, cacert=None, pin=None) -> int:
    from agent import log as agentlog
    from agent.client import Client, default_key
    from agent.console.commands import Commands
    from agent.console.port import Console
    if not cfg.console.port:
        return fail("give --port DEVICE|URL (a tty, a pty, socket://HOST:PORT, rfc2217://HOST:PORT)")
    key = key or default_key(cfg.data_dir)
    if not key:
        return fail(f"no API key: give --key, set CAPBOX_KEY, or run where {cfg.data_dir}/admin.key is readable")
    agentlog.setup(cfg.agent.log_level)
    try:
        client = Client(url, key, timeout=60, cacert=cacert, pin=pin)
    except (ValueError, OSError) as e:
        return fail(str(e))
    try:
        client.get("/v1/ping")
    except Exception as e:   # said once; each command says it again until the agent answers
        print(f"capbox: warning: the agent at {url} does not answer yet ({e})", file=sys.stderr)
    path = password.path_for(cfg)
    try:
        if not password.is_set(path):
            print(f"capbox: warning: no console password in {path}: nobody can log in until "
                  "`capbox console passwd` sets one", file=sys.stderr)
    except password.PasswordError as e:
        print(f"capbox: warning: {e}", file=sys.stderr)
    console = Console(cfg.console, path, Commands(client), data_dir=cfg.data_dir)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: console.close())
    console.serve()
    return 0


def add_parsers(sub) -> None:
    c = sub.add_parser("console", help="the serial console on a port, attached to a running agent "
                                       "(`console passwd`: set its password)")
    c.add_argument("action", nargs="?", choices=["passwd"],
                   help="passwd: set the console password (read from standard input when it is not a terminal)")
    c.add_argument("--port", metavar="DEVICE|URL",
                   help="a serial device or pty, or socket://HOST:PORT, rfc2217://HOST:PORT (default [console] port)")
    c.add_argument("--baud", type=int, default=0, help="line speed (default [console] baud, 115200)")
    c.add_argument("--url", default=DEFAULT_URL, help=f"the agent's REST address (default {DEFAULT_URL})")
    c.add_argument("--key", help="API key (default: CAPBOX_KEY, or DATA_DIR/admin.key)")
    from agent.cli.common import add_tls_arguments
    add_tls_arguments(c)
    c.add_argument("--config", metavar="FILE", help="[console] settings, the data directory")
    c.add_argument("--data-dir", metavar="DIR", help="where console.passwd and admin.key are (default ./var)")
    c.set_defaults(func=cmd_console)
