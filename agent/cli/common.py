"""What every capbox command shares: the error line, configuration, the
machine-output convention, progress on a terminal, and the tcpdump-style way
of naming a capture and its filter.

Output (docs/CLI.md): `--json` prints one JSON object for a report and one
object per line (JSON lines) for a stream of records; errors go to stderr as
`capbox: error: …` with exit status 1 (2 for usage)."""
import argparse
import contextlib
import json
import os
import sys
from typing import Iterable, Optional

from firmware.errors import FirmwareError

PROGRESS_MIN_BYTES = 32 << 20


def fail(message: str, status: int = 1) -> int:
    print(f"capbox: error: {message}", file=sys.stderr)
    return status


def leave(status: int) -> int:
    """Exit with status now, the standard streams flushed, freeing nothing: `capbox detect` holds the detectors'
    tables (about a million objects on large.pcap), and freeing them on the way out cost 0.2 s of CPU."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def warn(message: str) -> None:
    print(f"capbox: warning: {message}", file=sys.stderr)


def load_config(args, overrides: Optional[dict] = None):
    from agent import config
    over = {k: dict(v) for k, v in (overrides or {}).items()}
    if getattr(args, "data_dir", None):
        over.setdefault("agent", {})["data_dir"] = args.data_dir
    return config.load(getattr(args, "config", None), overrides=over)


def guard(fn):
    """A command whose FirmwareError is a one-line error, not a traceback."""
    def run(args) -> int:
        try:
            return fn(args)
        except FirmwareError as e:
            return fail(e.message)
    return run


def refused(e, undone: str) -> int:
    """An AgentError as the operator sees it: a refused verdict's reason and its exit status (10-19),
    anything else exit 1."""
    from firmware.errors import Reason
    verdict = e.details.get("verdict")
    if verdict:
        print(f"REFUSED ({verdict['reason']}): {verdict['message']}; nothing was {undone}", file=sys.stderr)
        return Reason[verdict["reason"].upper()].value
    return fail(e.message)


# ---- output ----------------------------------------------------------------------------

SEVERITY_STYLE = {"critical": "bold white on red", "high": "bold red", "medium": "yellow", "low": "dim"}


def console():
    """rich on a terminal (colours; NO_COLOR and FORCE_COLOR honoured); plain lines into a pipe."""
    from rich.console import Console
    return Console(highlight=False, soft_wrap=True)


def piped() -> bool:
    """Whether console() would print plain lines (rich's is_terminal False), known without importing rich (40 ms
    of a command's start): stdout is no terminal, and neither TTY_COMPATIBLE=1 nor FORCE_COLOR says otherwise."""
    return (os.environ.get("TTY_COMPATIBLE") != "1" and os.environ.get("FORCE_COLOR") is None
            and not sys.stdout.isatty())


def severity(sev: str, width: int = 8) -> str:
    """A severity padded to width, in its colour (rich markup)."""
    return f"[{SEVERITY_STYLE.get(sev, '')}]{sev:<{width}}[/]"


def escape(text: str) -> str:
    """Text printed through console() as itself, not as markup (a '[' in a name)."""
    from rich.markup import escape as rich_escape
    return rich_escape(text)


def print_json(obj) -> None:
    """One report: one JSON object."""
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def print_lines(records: Iterable[dict]) -> int:
    """A stream of records: one JSON object per line, flushed as they come; how many."""
    n = 0
    for r in records:
        sys.stdout.write(json.dumps(r, default=str) + "\n")
        n += 1
    sys.stdout.flush()
    return n


def num(n) -> str:
    return f"{n:,}"


def plural(n: int, word: str) -> str:
    return f"{num(n)} {word}{'' if n == 1 else 's'}"


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


@contextlib.contextmanager
def progress(path: str, what: str = "reading"):
    """A rich progress bar on stderr while a large file is read, only when stderr is a terminal:
    yields show(fraction) (a no-op otherwise)."""
    if not (sys.stderr.isatty() and path != "-" and os.path.isfile(path)
            and os.path.getsize(path) >= PROGRESS_MIN_BYTES):
        yield lambda fraction, *rest: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
    bar = Progress(TextColumn(f"{what} {os.path.basename(path)}"), BarColumn(), TaskProgressColumn(),
                   TimeElapsedColumn(), console=Console(stderr=True), transient=True)
    with bar:
        task = bar.add_task(what, total=1.0)
        yield lambda fraction, *rest: bar.update(task, completed=fraction)


# ---- naming a capture as tcpdump does --------------------------------------------------

def add_capture_file(p, what: str = "pcap or pcapng file ('-' for standard input)") -> None:
    """`FILE [EXPRESSION...]`, or `-r FILE [EXPRESSION...]`, and `--bpf EXPR` (never both)."""
    p.add_argument("-r", "--read", metavar="FILE", dest="read", help=what)
    p.add_argument("words", nargs="*", metavar="FILE [EXPRESSION]",
                   help="the file (unless -r gave it), then a BPF filter expression as tcpdump takes it")
    p.add_argument("--bpf", metavar="EXPR", help="only packets matching this BPF filter (or give it last)")


def resolve_capture_file(args, parser) -> None:
    """args.file and args.bpf from -r, the words and --bpf; a usage error names what is missing."""
    words = list(args.words)
    if args.read:
        args.file = args.read
    elif words:
        args.file = words.pop(0)
    else:
        parser.error("give a capture file: FILE or -r FILE")
    if words and args.bpf:
        parser.error("give the filter once: --bpf EXPR or an expression after the file")
    args.bpf = " ".join(words) if words else (args.bpf or "")


def positive(value: str) -> int:
    n = int(value)
    if n <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return n


def seconds_or_never(value: str) -> int:
    n = int(value)
    if n < 0:
        raise argparse.ArgumentTypeError("must be 0 (none) or a number of seconds")
    return n


def add_tls_arguments(parser) -> None:
    """--cacert / --pin for the commands that talk to an agent over https://."""
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--cacert", metavar="FILE", help="https: trust this CA (or the box's own certificate) file")
    g.add_argument("--pin", metavar="SHA256",
                   help="https: the agent's certificate fingerprint as its console shows it (SHA256 AB:CD:...)")
