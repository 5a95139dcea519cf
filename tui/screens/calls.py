"""Calls: the live capture's SIP dialogs, and the ladder of one call as
sngrep draws it (GET /v1/sessions/<id>/ladder, the same text `capbox callflow` prints);
p saves its packets."""
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import ScrollableContainer
from textual.widgets import DataTable, Footer, Static

from tui.screens.base import DataScreen, set_text, sync_table
from tui.screens.packets import save_packets

COLUMNS = (("start", 8), ("method", 7), ("state", 10), ("from", 15), ("to", 15), ("msgs", 4), ("MOS", 3))
STATE_COLOURS = {"failed": "red", "rejected": "red", "cancelled": "yellow", "in_call": "green", "completed": "green"}


def user(uri: str) -> str:
    """sip:alice@example.net -> alice@example.net (narrow columns)."""
    return (uri or "-").split(":", 1)[-1].split(";")[0]


class Calls(DataScreen):
    title = "Calls"
    AUTO_FOCUS = "#call-table"
    BINDINGS = [Binding("p", "save_packets", "pcap")]

    def __init__(self):
        super().__init__(name="calls")
        self.rows: list = []
        self.selected = None

    def compose(self) -> ComposeResult:
        yield Static(id="call-state", classes="banner")
        yield DataTable(id="call-table", cursor_type="row", zebra_stripes=True)
        with ScrollableContainer(id="call-ladder", classes="box"):
            yield Static(id="call-flow")
        yield Footer(show_command_palette=False)

    def setup(self) -> None:
        table = self.query_one(DataTable)
        for label, width in COLUMNS:
            table.add_column(label, width=width)

    def fetch(self, source) -> dict:
        listed = source.optional("calls", limit=100) or {"calls": [], "total": 0, "active": 0, "capturing": False}
        ids = [c["session_id"] for c in listed["calls"]]
        want = self.selected if self.selected in ids else (ids[0] if ids else None)
        return {"list": listed, "detail": source.optional("call_ladder", want) if want else None}

    def show(self, data: dict) -> None:
        listed = data["list"]
        self.rows = listed["calls"]
        rows = []
        for c in self.rows:
            state = c["state"] + ("*" if c.get("active") else "")
            colour = STATE_COLOURS.get(c["state"])
            mos = c["metrics"].get("mos")
            rows.append((c["session_id"], (c["start_time"][11:19], c["method"], f"[{colour}]{state}[/]" if colour else state,
                                           user(c["from"]), user(c["to"]), str(c["events_count"]),
                                           "-" if mos is None else f"{mos:.1f}")))
        sync_table(self.query_one(DataTable), rows)
        set_text(self.query_one("#call-state", Static), 
            f"{listed['total']} calls, {listed['active']} going on (*)"
            + ("" if listed["capturing"] else "  |  not capturing: calls of the last capture"))
        self._ladder(data["detail"])

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        row = self.query_one(DataTable).cursor_row
        if 0 <= row < len(self.rows) and self.rows[row]["session_id"] != self.selected:
            self.selected = self.rows[row]["session_id"]
            set_text(self.query_one("#call-flow", Static), "")  # the next fetch brings its ladder

    def action_save_packets(self) -> None:
        row = self.query_one(DataTable).cursor_row
        if not 0 <= row < len(self.rows):
            self.notify("no call selected", severity="warning")
            return
        sid = self.rows[row]["session_id"]
        save_packets(self, f"call {sid}", f"call-{sid}.pcapng", {"call": sid})

    def _ladder(self, detail) -> None:
        flow = self.query_one("#call-flow", Static)
        if not self.rows:
            set_text(flow, "no call yet: SIP seen on the capture appears here")
            return
        row = self.query_one(DataTable).cursor_row
        self.selected = self.rows[row]["session_id"] if 0 <= row < len(self.rows) else None
        if detail is not None and detail["session_id"] == self.selected:  # not an answer for an earlier row
            set_text(flow, detail["text"].rstrip("\n"))
