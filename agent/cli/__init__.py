"""The capbox command line: one parser, its commands grouped by what they
work on (capture files, findings, this box, threats, firmware, updates, the
serial console).  docs/CLI.md has the conventions every command keeps."""
import argparse
import importlib
import os
import sys

from agent import __version__
from agent.cli.common import resolve_capture_file

GROUPS = ("files", "findings", "logs", "box", "threats", "pcap", "console", "firmware", "update")
# the group (agent.cli.<group>) that adds each command (tests/agent/test_cli_groups.py holds it to what they add):
# `capbox COMMAND ...` loads only its group and what that imports (the image's `capbox run` at every boot, where
# each module costs tens of ms under TCG); anything else gets the whole parser
COMMANDS = {"analyze": "files", "flows": "files", "export": "files", "record": "files", "decrypt": "files",
            "detect": "findings", "baseline": "findings", "anomalies": "findings", "verify-dns": "findings",
            "verify": "findings", "verify-tls": "findings", "calls": "findings", "callflow": "findings",
            "logs": "logs", "run": "box", "tui": "box", "keys": "box", "firstboot": "box", "capture": "box",
            "threats": "threats", "pcap": "pcap", "console": "console", "fw": "firmware", "fpga-sim": "firmware",
            "update": "update"}


def _leaves(parser: argparse.ArgumentParser):
    """Every parser under this one, itself included."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _leaves(sub)


def build_parser(command: str = "") -> argparse.ArgumentParser:
    """The whole parser; given a command, only its group's (argparse hands everything after the command to
    its own parser, so what it parses, prints and refuses is the same)."""
    p = argparse.ArgumentParser(prog="capbox", description="capbox network capture appliance")
    p.add_argument("--version", action="version", version=f"capbox {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for group in (COMMANDS[command],) if command in COMMANDS else GROUPS:
        importlib.import_module(f"agent.cli.{group}").add_parsers(sub)
    for leaf in _leaves(p):
        leaf.set_defaults(parser=leaf)      # the deepest parser's default wins: errors show its usage
    return p


def parse(argv=None, parser=None) -> argparse.Namespace:
    """The command line as a command reads it: the capture file and its filter resolved, errors
    (exit 2) with the usage of the command that was given."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args, extra = (parser or build_parser(argv[0] if argv else "")).parse_known_args(argv)
    if extra:
        if hasattr(args, "words") and not any(w.startswith("-") for w in extra):
            args.words += extra             # an expression after an option: `analyze F --json tcp port 80`
        else:
            args.parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "capture_file", False):
        resolve_capture_file(args, args.parser)
    return args


def main(argv=None) -> int:
    os.umask(0o077)   # whatever the agent or the CLI writes (db, jobs, recordings, decrypted captures) is private
    args = parse(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (`capbox … | head`): no traceback, and nothing more to flush into the pipe
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
