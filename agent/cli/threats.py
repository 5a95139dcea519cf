"""`capbox threats`: the threats of a running agent, over its REST API:
list them, follow new ones as they are raised, show one, mark one.

    capbox threats --severity high            # a table; --json: one object per line
    capbox threats --follow                   # the list, then each new or worsened threat as it comes
    capbox threats show thr_…  |  capbox threats mark thr_… acknowledged --note "…"
"""
import argparse
import json
import sys
from typing import Optional

from agent.cli.common import add_tls_arguments, console, escape, severity
from agent.client import ApiError, Client, default_key

DEFAULT_URL = "http://127.0.0.1:8080"
STATUSES = ("acknowledged", "confirmed", "false_positive")


def _line(t: dict) -> str:
    who = t["attacker"] or t["source_ip"]
    if t.get("attacker_mac"):
        who += f" ({t['attacker_mac']})"
    return (f"{t['id']}  {(t.get('last_seen') or t['timestamp'])[:19]}  {severity(t['severity'])}  "
            + escape(f"{t['attack_type']:<14} {who} -> {t['dest_ip']}  x{t['count']}  {t['status']}"
                     f"{'  verified' if t['verified'] else ''}"))


def _show(out, t: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(t))
    else:
        out.print(_line(t))
    sys.stdout.flush()


def connect(args) -> Optional[Client]:
    """A client for --url with --key (or CAPBOX_KEY, or DATA_DIR/admin.key); None, said on stderr, without one."""
    key = args.key or default_key(args.data_dir or "./var")
    if not key:
        print("capbox: error: no API key: give --key, set CAPBOX_KEY, or run where DATA_DIR/admin.key is readable",
              file=sys.stderr)
        return None
    try:
        return Client(args.url, key, timeout=30, cacert=args.cacert, pin=args.pin)
    except ValueError as e:
        print(f"capbox: error: {e}", file=sys.stderr)
        return None


def cmd_threats(args) -> int:
    c = connect(args)
    if c is None:
        return 1
    out = console()
    try:
        if args.action == "show":
            t = c.get_threat(args.id)
            if args.json:
                print(json.dumps(t))
            else:
                out.print(_line(t))
                out.print(t["description"], markup=False)
                out.print_json(data=t["evidence"])
            return 0
        if args.action == "mark":
            t = c.mark_threat(args.id, args.status, args.note)
            print(json.dumps(t) if args.json else f"{t['id']} marked {t['status']}")
            return 0
        query = {k: v for k, v in (("severity", args.severity), ("attack_type", args.type), ("status", args.status),
                                   ("since", args.since), ("limit", args.limit)) if v}
        listed = c.list_threats(**query)["threats"]
        for t in reversed(listed):                         # oldest first, as a log reads
            _show(out, t, args.json)
        if not args.follow:
            if not args.json:
                out.print(f"{len(listed)} threats", style="dim")
            return 0
        for ev in c.follow("threats:raised"):
            t = ev["data"]["data"]
            if args.severity and t["severity"] != args.severity or args.type and t["attack_type"] != args.type:
                continue
            _show(out, t, args.json)
    except ApiError as e:
        print(f"capbox: error: {e.message} ({e.code})", file=sys.stderr)
        return 1
    except BrokenPipeError:
        raise                                              # our reader went away, not the agent: main() ends quietly
    except OSError as e:
        print(f"capbox: error: the agent at {args.url} does not answer: {e}", file=sys.stderr)
        return 1
    return 0


def _connection(p, suppress: bool) -> None:
    """--url, --key, --data-dir and --json, before or after the action (an action's own copies
    default to SUPPRESS, so they never undo what was given before it)."""
    d = (lambda value: argparse.SUPPRESS) if suppress else (lambda value: value)
    p.add_argument("--url", default=d(DEFAULT_URL))
    p.add_argument("--key", default=d(None), help="API key (default: CAPBOX_KEY, or DATA_DIR/admin.key)")
    p.add_argument("--data-dir", metavar="DIR", default=d(None), help="where admin.key is (default ./var)")
    p.add_argument("--json", action="store_true", default=d(False), help="one JSON object per line")


def _filters(p, suppress: bool) -> None:
    from agent.detectors.detector import SEVERITIES
    d = (lambda value: argparse.SUPPRESS) if suppress else (lambda value: value)
    p.add_argument("-f", "--follow", action="store_true", default=d(False), help="then print each new or worsened threat")
    p.add_argument("--severity", choices=SEVERITIES, default=d(None))
    p.add_argument("--type", metavar="ATTACK_TYPE", default=d(None))
    p.add_argument("--status", choices=("new",) + STATUSES, default=d(None))
    p.add_argument("--since", metavar="TIME", default=d(None), help="ISO 8601 or unix seconds")
    p.add_argument("-c", "--limit", type=int, metavar="N", default=d(None), help="at most N (default 100)")


def add_parsers(sub) -> None:
    t = sub.add_parser("threats", help="list, follow, show and mark the threats of a running agent")
    _connection(t, suppress=False)
    add_tls_arguments(t)
    _filters(t, suppress=False)
    t.set_defaults(func=cmd_threats, action="list")
    acts = t.add_subparsers(dest="action", metavar="[list|show|mark]")
    lst = acts.add_parser("list", help="the threats, oldest first (the default)")
    _filters(lst, suppress=True)
    show = acts.add_parser("show", help="one threat with its evidence")
    show.add_argument("id")
    mark = acts.add_parser("mark", help="acknowledge, confirm or dismiss a threat")
    mark.add_argument("id")
    mark.add_argument("status", choices=STATUSES)
    mark.add_argument("--note")
    for p in (lst, show, mark):
        _connection(p, suppress=True)
