"""What the flow, threat and call screens show and save beyond their row:
the protocol log lines that match it (GET /v1/logs/{type} with a community
ID or host filter) and its packets as one pcapng (GET /v1/pcap ?flow,
?threat or ?call) saved into a directory the person names."""
import datetime
import os
import pathlib
import re
import time

from hwdrivers.flows import community_id
from tui.screens.dialogs import Ask
from tui.source import SourceError

DEFAULT_DIR = "~/capbox-pcaps"
LOG_KINDS = ("dns", "http", "tls", "conn")
LOG_LIMIT = 3                     # lines per type under a detail
LOGS_EVERY_S = 2.0                # the same selection's lines are asked again this often (the poll is 4/s)
AROUND_S = 300.0                  # a threat's lines: this long either side of its sightings
PORT_PROTOS = {"tcp": 6, "udp": 17, "sctp": 132}


def summary(kind: str, r: dict) -> str:
    """One log record in a line: its time, type and what a person looks for in it."""
    at = datetime.datetime.fromtimestamp(r.get("ts", 0), datetime.timezone.utc).strftime("%H:%M:%S")
    who = f"{r.get('id.orig_h', '')} -> {r.get('id.resp_h', '')}"
    what = {"dns": lambda: f"{r.get('query')} {r.get('qtype_name', '')} {r.get('rcode_name', '-')} "
                           f"{','.join(r.get('answers') or [])}",
            "http": lambda: f"{r.get('method') or '-'} {r.get('host') or ''}{r.get('uri') or ''} "
                            f"{r.get('status_code', '-')}",
            "tls": lambda: f"{r.get('server_name') or '-'} {r.get('version') or ''} {r.get('cipher') or ''}",
            "conn": lambda: f"{r.get('conn_state')} {r.get('orig_ip_bytes')}B/{r.get('resp_ip_bytes')}B "
                            f"{r.get('end_reason')}"}.get(kind, lambda: "")()
    return f"{at} {kind:4} {who}  {what}".rstrip()


def log_lines(source, **query) -> list:
    """The first LOG_LIMIT records of each type matching query (community_id, host, since, until)."""
    lines = []
    for kind in LOG_KINDS:
        answer = source.optional("log_records", kind, limit=LOG_LIMIT, **query)
        lines += [summary(kind, r) for r in (answer or {}).get("records", [])]
    return lines


def flow_community_id(f: dict):
    """The community ID of a flow row of /v1/capture/flows (None for protocols without ports)."""
    proto = PORT_PROTOS.get(f["proto"])
    return community_id(f["src"], f["dst"], proto, f["sport"], f["dport"]) if proto else None


def threat_query(t: dict) -> dict:
    """A threat's records: of its attacker (or source), around its sightings."""
    host = t.get("attacker") or t.get("source_ip")
    if not host:
        return {}
    seen = [datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
            for s in (t.get("first_seen"), t.get("last_seen")) if s]
    return {"host": host, **({"since": min(seen) - AROUND_S, "until": max(seen) + AROUND_S} if seen else {})}


class LogCache:
    """The log lines of one selection, asked again only every LOGS_EVERY_S (fetch runs four times a second)."""

    def __init__(self):
        self.key, self.at, self.lines = None, 0.0, []

    def get(self, source, key, query: dict) -> list:
        if not query:
            return []
        if key != self.key or time.monotonic() - self.at >= LOGS_EVERY_S:
            self.key, self.at, self.lines = key, time.monotonic(), log_lines(source, **query)
        return self.lines


def new_file(directory: str, name: str) -> tuple:
    """(fd, path) of a new file for name in directory (made 0700 if missing): the name is ours, never the
    agent's or the person's; an existing file is not overwritten (name-1, -2...) nor a link followed."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip(".") or "packets.pcapng"     # an id is no path
    root = pathlib.Path(directory).expanduser()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not root.is_dir():
        raise OSError(f"{root} is not a directory")
    stem, dot, ext = name.partition(".")
    for n in range(1000):
        path = root / (f"{stem}-{n}{dot}{ext}" if n else name)
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600), path
        except FileExistsError:
            continue
    raise OSError(f"{root} has {name} and 999 more like it")


def save_packets(screen, what: str, name: str, query: dict) -> None:
    """Ask where, then fetch the packets of `what` (GET /v1/pcap with query) into a new file there."""
    app = screen.app

    def save(directory: str) -> None:
        try:
            fd, path = new_file(directory, name)
        except OSError as e:
            app.call_from_thread(app.notify, f"cannot save there: {e}", severity="error", timeout=8)
            return
        try:
            with os.fdopen(fd, "wb") as out:
                app.source.call("pcap", out, **query)
        except (SourceError, OSError) as e:
            path.unlink(missing_ok=True)
            app.call_from_thread(app.notify, f"packets of {what}: {e}", severity="error", timeout=8)
            return
        app.call_from_thread(app.notify, f"packets of {what} saved: {path} ({path.stat().st_size} bytes)",
                             timeout=6)

    def chosen(directory) -> None:
        if directory:
            app.run_worker(lambda: save(directory), thread=True, group="action")
    app.push_screen(Ask(f"Save the packets of {what} into the directory", value=DEFAULT_DIR), chosen)
