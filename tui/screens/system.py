"""System: components, the disk image's A/B slots, firmware, the
verification of a firmware image by its path, the agent's log with a level
filter."""
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Static

from tui.screens.base import DataScreen, set_text, sync_table
from tui.screens.dialogs import Ask
from tui.source import SourceError

LEVELS = ("", "info", "warning", "error")


class System(DataScreen):
    title = "System"
    BINDINGS = [Binding("e", "next_level", "log level"), Binding("v", "verify", "verify image")]

    def __init__(self):
        super().__init__(name="system")
        self.level = ""
        self.verdict = ""

    def compose(self) -> ComposeResult:
        yield DataTable(id="component-table", cursor_type="none")
        yield Static(id="firmware", classes="box")
        yield Static(id="log-caption")
        yield Static(id="log", classes="box")
        yield Footer(show_command_palette=False)

    def setup(self) -> None:
        table = self.query_one(DataTable)
        for label, width in (("component", 10), ("status", 12), ("critical", 8), ("detail", 40)):
            table.add_column(label, width=width)

    def action_next_level(self) -> None:
        self.level = LEVELS[(LEVELS.index(self.level) + 1) % len(LEVELS)]

    def action_verify(self) -> None:
        self.app.push_screen(Ask("Verify a firmware image (path in the firmware directory)",
                                 placeholder="capbox-fpga1-2.0.0.img"), self._verify)

    @work(thread=True, group="action")
    def _verify(self, path) -> None:
        """The agent checks the image and its .minisig; the verdict stays on screen and in a notification."""
        if not path:
            return
        try:
            v = self.app.source.call("verify_firmware", path)
        except SourceError as e:
            self.app.call_from_thread(self.notify, f"verify {path}: {e}", severity="error", timeout=8)
            return
        self.verdict = verdict_line(path, v)
        self.app.call_from_thread(self.notify, self.verdict, severity="information" if v["valid"] else "error",
                                  timeout=8)

    def fetch(self, source) -> dict:
        return {"health": source.health(), "logs": source.call("recent_logs", limit=12, level=self.level),
                "firmware": source.optional("firmware"), "system": source.optional("system")}

    def show(self, d: dict) -> None:
        skip = {"status", "critical", "last_heartbeat", "error"}
        rows = []
        for name, c in d["health"]["components"].items():
            detail = ", ".join(f"{k} {v}" for k, v in c.items() if k not in skip and not isinstance(v, (dict, list)))
            rows.append((name, (name, c["status"] + (f" ({c['error']})" if c.get("error") else ""),
                                "yes" if c["critical"] else "no", detail[:80])))
        sync_table(self.query_one(DataTable), rows)
        lines = [f"system: {slots_line(d['system'])}"] if d.get("system") else []
        lines.append("firmware: " + firmware_line(d["firmware"]))
        if self.verdict:
            lines.append(self.verdict)
        set_text(self.query_one("#firmware", Static), "\n".join(lines))
        set_text(self.query_one("#log-caption", Static), f"log ({self.level or 'all levels'}; e to change)")
        set_text(self.query_one("#log", Static), "\n".join(
            f"{e['level'][:4]:<4} {e['logger'].rsplit('.', 1)[-1]}: {e['message']}" for e in d["logs"]["logs"]))


def firmware_line(fw) -> str:
    """/v1/firmware in one line: the card, what runs on it, the rollback floor."""
    if not fw:
        return "no card or firmware service here"
    card = fw["card"]
    floor = ", ".join(f"{t} {n}" for t, n in fw["rollback_floor"].items()) or "none"
    if not card["present"]:
        return f"no card at {card['device']} (target {fw['target']}), rollback floor {floor}"
    return (f"card {card['target']} at {card['device']}: {card['firmware_state']} {card['firmware_version']}"
            f"{' (load refused: ' + card['last_load_error'] + ')' if card['last_load_error'] else ''}, "
            f"rollback floor {floor}, link {'up' if card['link_up'] else 'down'}")


def slots_line(system: dict) -> str:
    """/v1/system in one line: the release running, each slot's state (* booted, = committed; a slot on
    trial reads installed, then trying)."""
    release = system.get("release") or {}
    if not system["image"]:
        return "not running from a disk image: no A/B slots"
    slots = []
    for name, sl in sorted(system["slots"].items()):
        marks = ("*" if sl["booted"] else "") + ("=" if sl["committed"] else "")
        slots.append(f"{name}{marks} {sl['status']} {sl['version'] or '-'}" + (f" ({sl['reason']})" if sl["reason"] else ""))
    return f"release {release.get('version', '?')}; slots {', '.join(slots)} (* booted, = committed)"


def verdict_line(path: str, v: dict) -> str:
    """/v1/firmware/verify in one line: valid with what and by whom, or refused and why."""
    if not v["valid"]:
        return f"{path}: REFUSED ({v['reason']}): {v['message']}"
    h = v["header"]
    return (f"{path}: valid, {h['target']} {h['version']} rollback {h['rollback_index']}, key {v['key_id']}"
            f" ({v['trusted_comment']})")
