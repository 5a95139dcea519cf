"""`capbox logs`: the protocol logs (conn, dns, http, tls, sip, rtp, arp, ndp,
dhcp) of a running agent, searched over its REST API, or of a capture file,
made here by the same code the agent runs (docs/LOGS.md).

    capbox logs dns --since 1h --host 10.0.0.5 --json     # the agent's
    capbox logs -r capture.pcap --type dns,http            # a file's, as JSON lines
"""
import datetime
import fcntl
import json
import os
import re
import stat
import sys
import time

from agent.cli.common import add_tls_arguments, fail, print_lines
from agent.logs import TYPES

DEFAULT_URL = "http://127.0.0.1:8080"
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
SUMMARY = {"conn": ("service", "conn_state", "duration", "orig_ip_bytes", "resp_ip_bytes"),
           "dns": ("query", "qtype_name", "rcode_name", "answers"), "http": ("method", "host", "uri", "status_code"),
           "tls": ("version", "cipher", "server_name", "ja3"), "sip": ("method", "call_id", "status_code", "state"),
           "rtp": ("ssrc", "packets", "lost", "jitter_ms"), "arp": ("ip", "mac", "change", "previous_mac"),
           "ndp": ("ip", "mac", "change", "previous_mac"),
           "dhcp": ("mac", "assigned_addr", "lease_time", "msg_types")}


def parse_time(text: str, now: float) -> float:
    """'1h', '30m', '2d' (that long ago), unix seconds, or an ISO 8601 time."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if m:
        return now - float(m.group(1)) * UNITS[m.group(2)]
    from agent import bus           # (not at import: `logs -r` parses no time, and the bus loads the events)
    try:
        return bus.parse_time(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a time: give 1h, 30m, 2d, unix seconds or ISO 8601") from None


def line(kind: str, rec: dict) -> str:
    """One record as a line of text."""
    when = datetime.datetime.fromtimestamp(rec.get("ts", 0), datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    who = ""
    if "id.orig_h" in rec:
        o, r = rec["id.orig_h"], rec.get("id.resp_h")
        who = f"{o}:{rec.get('id.orig_p', '')} -> {r}:{rec.get('id.resp_p', '')}"
    parts = []
    for f in SUMMARY[kind]:
        v = rec.get(f)
        if v not in (None, [], ""):
            parts.append(",".join(map(str, v)) if isinstance(v, list) else str(v))
    return f"{when}  {kind:<4} {rec.get('uid', '') or '':<18} {who}  {' '.join(parts)}".rstrip()


def _types(text: str) -> list:
    kinds = list(TYPES) if text in ("", "all") else [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in kinds if t not in TYPES]
    if bad:
        raise ValueError(f"unknown log type {bad[0]!r} (types: {', '.join(TYPES)}, all)")
    return kinds


def cmd_logs(args) -> int:
    try:
        kinds = _types(args.type or args.kind or ("all" if args.read else ""))
        if not args.read and len(kinds) != 1:
            return fail("name one log type to search: capbox logs dns (or --type dns)", 2)
        now = time.time()
        since = parse_time(args.since, now) if args.since else 0.0
        until = parse_time(args.until, now) if args.until else 0.0
    except ValueError as e:
        return fail(str(e), 2)
    if args.read:
        return _offline(args, kinds)
    return _online(args, kinds[0], since, until)


def _offline(args, kinds: list) -> int:
    from agent.logs.offline import log_text
    from hwdrivers import CaptureError
    out = sys.stdout.buffer
    _widen_pipe(out)

    def write(kind: str, lines: bytes) -> None:
        """JSON: the lines as made, each with its type first ({"_path":"dns",...}); else the table."""
        if args.json:
            out.write(lines)
        else:
            out.write("".join(line(kind, json.loads(x)) + "\n" for x in bytes(lines).splitlines()).encode())
    try:
        result = log_text(args.read, kinds, write, args.bpf or "", tag=args.json)
    except CaptureError as e:
        return fail(e.message)
    out.flush()
    if result["error"]:
        return fail(f"the file ends early: {result['error']} (the records before it were written)")
    return 0


def _widen_pipe(out) -> None:
    """A pipe's 64 KB made 1 MB (Linux's default most), the size of the lines' buffers written at once: with
    64 KB each write waited for the reader some 16 times (on large.pcap 2,400 context switches, 580 after)."""
    try:
        if stat.S_ISFIFO(os.fstat(out.fileno()).st_mode):
            fcntl.fcntl(out.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
    except (OSError, ValueError, AttributeError):      # not a file, not Linux, or over /proc/sys/fs/pipe-max-size
        pass


def _online(args, kind: str, since: float, until: float) -> int:
    from agent.client import ApiError, Client, default_key     # (`logs -r FILE` talks to no agent: http.client,
                                                                # ssl and email are some 40 modules of its start)
    key = args.key or default_key(args.data_dir or "./var")
    if not key:
        return fail("no API key: give --key, set CAPBOX_KEY, or run where DATA_DIR/admin.key is readable")
    try:
        c = Client(args.url, key, timeout=60, cacert=args.cacert, pin=args.pin)
    except ValueError as e:
        return fail(str(e))
    records = c.logs(kind, since=since or None, until=until or None, host=args.host, q=args.q,
                     community_id=args.community_id, limit=args.limit)
    try:
        if args.json:
            print_lines(records)
        else:
            for rec in records:
                print(line(kind, rec))
    except ApiError as e:
        return fail(f"{e.message} ({e.code})")
    except BrokenPipeError:
        raise
    except OSError as e:
        return fail(f"the agent at {args.url} does not answer: {e}")
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("logs", help="protocol logs (conn, dns, http, tls, sip, rtp, arp, ndp, dhcp): search the "
                                    "agent's, or make a capture file's with -r")
    p.add_argument("kind", nargs="?", metavar="TYPE", help=f"the log type: {', '.join(TYPES)}")
    p.add_argument("--type", metavar="TYPES", help="the same; with -r a comma-separated list or 'all' (the default)")
    p.add_argument("-r", "--read", metavar="FILE", help="a capture file: write its logs (as JSON lines with --json)")
    p.add_argument("--bpf", metavar="EXPR", help="-r: only packets matching this BPF filter")
    p.add_argument("--since", metavar="TIME", help="packet time from: 1h, 30m, 2d ago, unix seconds or ISO 8601")
    p.add_argument("--until", metavar="TIME", help="packet time before (same forms)")
    p.add_argument("--host", metavar="IP", help="records with this address at either end")
    p.add_argument("-q", metavar="TEXT", help="records whose names contain TEXT (query, host, SNI, JA3, ...)")
    p.add_argument("--community-id", metavar="ID", help="records of the flow with this community ID")
    p.add_argument("-c", "--limit", type=int, default=1000, metavar="N", help="at most N records (default 1000)")
    p.add_argument("--json", action="store_true", help="one JSON object per line (Zeek's JSON log format)")
    p.add_argument("--url", default=DEFAULT_URL)
    p.add_argument("--key", help="API key (default: CAPBOX_KEY, or DATA_DIR/admin.key)")
    p.add_argument("--data-dir", metavar="DIR", help="where admin.key is (default ./var)")
    add_tls_arguments(p)
    p.set_defaults(func=cmd_logs)
