"""Threats: the list with severity colours, one threat in detail (evidence,
verification paths and consensus, deception), and the operator's answers:
acknowledge, confirm, false positive, start a deception session."""
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Input, Static

from tui.screens.base import DataScreen, Filtered, set_text, sync_table
from tui.screens.dialogs import Ask
from tui.screens.packets import LogCache, save_packets, threat_query

COLUMNS = (("time", 8), ("severity", 8), ("type", 13), ("attacker", 15), ("verified", 10), ("status", 12))
# the word is always there (NO_COLOR); colour only adds to it
COLOURS = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan"}
MARKS = {"k": ("acknowledged", "acknowledge"), "c": ("confirmed", "confirm"), "x": ("false_positive", "false positive")}


def matches(t: dict, text: str) -> bool:
    hay = " ".join(str(t.get(k) or "") for k in ("attack_type", "severity", "status", "source_ip", "dest_ip",
                                                 "attacker", "protocol", "verification_status"))
    return all(word in hay for word in text.split())


def words(v) -> str:
    """A value of evidence in few characters: lists joined, no brackets."""
    return ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)


def target_of(t: dict) -> str:
    """What the attacker went for, as a deception session names it: a domain or host from the evidence."""
    ev = t.get("evidence") or {}
    for key in ("domain", "host", "sni", "qname"):
        if ev.get(key):
            return str(ev[key]).rstrip(".")
    return t.get("dest_ip") or ""


def verification_lines(v: dict) -> list:
    """Paths, consensus and outliers of a verification, a line each."""
    lines = [f"verified: {'ATTACK' if v.get('attack_detected') else 'no attack'}  {v.get('paths_succeeded', 0)}/"
             f"{v.get('paths_checked', 0)} paths answered, {v.get('paths_agreed', 0)} agreed, "
             f"consensus {v.get('consensus_percentage', 0):.0f}%"]
    consensus = v.get("consensus_ips") or v.get("consensus")
    if consensus:
        lines.append(f"  consensus {words(consensus)}   local {words(v.get('local_ips') or v.get('local') or '-')}")
    paths = [f"{r.get('path_id', '?')} {r.get('status')}" for r in v.get("path_results") or []]
    if paths:
        lines.append("  paths " + ", ".join(paths))
    if v.get("outliers"):
        lines.append(f"  outliers {', '.join(map(str, v['outliers']))}")
    return lines


class Threats(Filtered, DataScreen):
    filter_id = "threat-filter"
    title = "Threats"
    AUTO_FOCUS = "#threat-table"
    BINDINGS = [Binding("k", "mark('k')", "ack"), Binding("c", "mark('c')", "confirm"),
                Binding("x", "mark('x')", "dismiss"), Binding("d", "deceive", "deceive"),
                Binding("slash", "focus_filter", "filter"), Binding("escape", "leave_filter", "table", show=False),
                Binding("p", "save_packets", "save packets (pcap)", show=False)]

    def __init__(self):
        super().__init__(name="threats")
        self.rows: list = []
        self.selected = None  # the threat id in detail; fetched with the list
        self.detail = None
        self.logs = LogCache()
        self.log_lines: tuple = (None, [])  # (threat id, lines)

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter: type, severity, status, address…", id="threat-filter")
        yield DataTable(id="threat-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="threat-detail", classes="box")
        yield Footer(show_command_palette=False)

    def setup(self) -> None:
        table = self.query_one(DataTable)
        for label, width in COLUMNS:
            table.add_column(label, width=width)

    def fetch(self, source) -> dict:
        listed = source.optional("list_threats", limit=100) or {"threats": [], "total": 0}
        ids = [t["id"] for t in listed["threats"]]
        want = self.selected if self.selected in ids else (ids[0] if ids else None)
        detail = source.optional("get_threat", want) if want else None
        t = next((t for t in listed["threats"] if t["id"] == want), None)
        logs = (want, self.logs.get(source, want, threat_query(t))) if t else (None, [])
        return {"list": listed, "detail": detail, "logs": logs}

    def show(self, data: dict) -> None:
        text = self.query_one("#threat-filter", Input).value.strip()
        self.rows = [t for t in data["list"]["threats"] if matches(t, text)]
        sync_table(self.query_one(DataTable), [
            (t["id"], (t["timestamp"][11:19], f"[{COLOURS[t['severity']]}]{t['severity']}[/]"
                       if t["severity"] in COLOURS else t["severity"], t["attack_type"],
                       t.get("attacker") or t.get("source_ip") or "-", t["verification_status"], t["status"]))
            for t in self.rows])
        self.title = f"Threats ({len(self.rows)} of {data['list']['total']})"
        self.log_lines = data.get("logs") or (None, [])
        self._detail(data["detail"])

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        current = self._current()
        if current and current["id"] != self.selected:
            self.selected = current["id"]
            self._detail(None)  # the next fetch brings its detail

    def _current(self):
        row = self.query_one(DataTable).cursor_row
        return self.rows[row] if self.rows and 0 <= row < len(self.rows) else None

    def _detail(self, d) -> None:
        box = self.query_one("#threat-detail", Static)
        t = self._current()
        if t is None:
            set_text(box, "no threat" if not self.rows else "")
            return
        if t["id"] != self.selected:
            self.selected = t["id"]
        head = (f"{t['id']} {t['severity']} {t['attack_type']} {t['protocol'] or '-'}  {t.get('source_ip') or '-'} -> "
                f"{t.get('dest_ip') or '-'} x{t.get('count') or 1} score {t['score']}\n{t['description']}")
        if d is None or d.get("id") != t["id"]:
            set_text(box, head)
            return
        self.detail = d
        lines = [head]
        ev = d.get("evidence") or {}
        lines.append("evidence " + "  ".join(f"{k} {words(v)}" for k, v in ev.items() if v not in (None, "", [], {})))
        if d.get("verification_result"):
            lines += verification_lines(d["verification_result"])
        else:
            lines.append(f"verification {t['verification_status']}")
        s = d.get("deception_session")
        if s:
            lines.append(f"deception {s.get('session_id')} {s.get('status')} profile {s.get('behavior_profile')}")
        if d.get("note"):
            lines.append(f"note: {d['note']}")
        if self.log_lines[0] == t["id"]:
            lines += self.log_lines[1]
        set_text(box, "\n".join(lines))

    def action_save_packets(self) -> None:
        t = self._current()
        if t is None:
            self.notify("no threat selected", severity="warning")
            return
        save_packets(self, f"threat {t['id']}", f"threat-{t['id']}.pcapng", {"threat": t["id"]})

    def action_mark(self, key: str) -> None:
        t = self._current()
        if t is None:
            self.notify("no threat selected", severity="warning")
            return
        status, word = MARKS[key]
        self.app._act(f"{t['id']}: {word}", "mark_threat", t["id"], status)

    def action_deceive(self) -> None:
        """Ask for the domain to deceive on (prefilled from the evidence), then start a session against the attacker."""
        t = self._current()
        if t is None:
            self.notify("no threat selected", severity="warning")
            return
        attacker = t.get("attacker") or t.get("source_ip")
        if not attacker:
            self.notify("this threat names no attacker to deceive", severity="error")
            return

        def chosen(domain):
            if domain:
                self.app._act(f"deception started against {attacker}", "start_deception", domain, attacker,
                              threat_id=t["id"])
        known = self.detail if self.detail and self.detail["id"] == t["id"] else t
        self.app.push_screen(Ask(f"Deception against {attacker}: target domain", value=target_of(known)), chosen)
