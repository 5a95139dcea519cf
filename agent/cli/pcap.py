"""`capbox pcap`: the packets behind an answer, from a running agent's
recordings, written to a pcapng file (or standard output) as they stream.

    capbox pcap --threat thr_… -w threat.pcapng
    capbox pcap --flow 1234 -w flow.pcapng
    capbox pcap --since 1h -w - udp port 53 | tshark -r -
"""
import datetime
import os
import re
import sys
import time

from agent.cli.threats import DEFAULT_URL, connect
from agent.cli.common import add_tls_arguments
from agent.client import ApiError

AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def when(text: str) -> str:
    """A time as the API takes it: 1h / 30m / 2d (that long ago) become unix seconds; ISO and seconds pass."""
    m = AGO.match(text or "")
    return f"{time.time() - float(m.group(1)) * UNIT[m.group(2)]:.6f}" if m else text


def cmd_pcap(args) -> int:
    c = connect(args)
    if c is None:
        return 1
    query = {"since": when(args.since), "until": when(args.until), "bpf": " ".join(args.words) or None,
             "flow": args.flow, "threat": args.threat, "call": args.call, "pad_s": args.pad}
    to_stdout = args.write == "-"
    tmp = None if to_stdout else f"{args.write}.part"
    try:
        if to_stdout:
            headers = c.pcap(sys.stdout.buffer, **query)
            sys.stdout.buffer.flush()
        else:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)  # packets are private
            with os.fdopen(fd, "wb") as f:
                headers = c.pcap(f, **query)
            os.replace(tmp, args.write)
    except ApiError as e:
        print(f"capbox: error: {e.message} ({e.code})", file=sys.stderr)
        return 1
    except BrokenPipeError:
        raise
    except OSError as e:
        print(f"capbox: error: {args.write if isinstance(e, PermissionError) else 'the agent at ' + args.url}: {e}",
              file=sys.stderr)
        return 1
    finally:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
    if not to_stdout:
        since, until = (datetime.datetime.fromtimestamp(int(headers.get(h, 0)) / 1e9, datetime.timezone.utc)
                        for h in ("x-capbox-since-ns", "x-capbox-until-ns"))
        print(f"{args.write}: {os.path.getsize(args.write)} bytes, {since:%Y-%m-%d %H:%M:%S} .. "
              f"{until:%Y-%m-%d %H:%M:%S} UTC, filter: {headers.get('x-capbox-filter') or '(none)'}, "
              f"from {headers.get('x-capbox-files', '?')} recordings", file=sys.stderr)
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("pcap", help="the packets of a window, flow, threat or call from a running agent's recordings")
    p.add_argument("-w", "--write", required=True, metavar="FILE", help="the pcapng to write ('-': standard output)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--flow", type=int, metavar="ID", help="a flow in the running capture's table")
    what.add_argument("--threat", metavar="ID", help="a threat (its parties, first to last sighting)")
    what.add_argument("--call", metavar="ID", help="a call session (its signalling and media)")
    p.add_argument("--since", metavar="TIME", default="", help="ISO 8601, unix seconds, or 30m / 2h / 1d ago")
    p.add_argument("--until", metavar="TIME", default="", help="ISO 8601, unix seconds, or 30m / 2h / 1d ago")
    p.add_argument("--pad", type=float, metavar="S", default=None,
                   help="seconds either side of a flow's, threat's or call's time (default 1)")
    p.add_argument("words", nargs="*", metavar="EXPRESSION", help="a BPF filter, as tcpdump takes it")
    p.add_argument("--url", default=DEFAULT_URL)
    p.add_argument("--key", default=None, help="API key (default: CAPBOX_KEY, or DATA_DIR/admin.key)")
    p.add_argument("--data-dir", metavar="DIR", default=None, help="where admin.key is (default ./var)")
    add_tls_arguments(p)
    p.set_defaults(func=cmd_pcap)
