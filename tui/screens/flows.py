"""Flows: the live flow table, sortable, filtered as you type, one flow in
detail with its protocol log lines; p saves its packets."""
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Input, Static

from tui.screens.base import DataScreen, Filtered, human, set_text, sync_table
from tui.screens.packets import LogCache, flow_community_id, save_packets

COLUMNS = (("src", 15), ("sport", 5), ("dst", 15), ("dport", 5), ("proto", 5), ("packets", 7), ("bytes", 7),
           ("rate", 8), ("rtt ms", 6), ("retrans", 7), ("state", 11), ("app", 8))
SORTS = ("bytes", "packets", "last", "first")


def matches(flow: dict, text: str) -> bool:
    """Every word of the filter appears in the flow's addresses, ports, protocol, app or state."""
    hay = f"{flow['src']}:{flow['sport']} {flow['dst']}:{flow['dport']} {flow['proto']} {flow['app']} {flow['state']}"
    return all(word in hay for word in text.split())


class Flows(Filtered, DataScreen):
    filter_id = "flow-filter"
    title = "Flows"
    AUTO_FOCUS = "#flow-table"  # screen keys work at once; / moves to the filter, escape back
    BINDINGS = [Binding("ctrl+s", "next_sort", "sort"), Binding("slash", "focus_filter", "filter"),
                Binding("escape", "leave_filter", "table", show=False), Binding("p", "save_packets", "pcap")]

    def __init__(self):
        super().__init__(name="flows")
        self.sort = "bytes"
        self.rows: list = []
        self.selected = None        # the flow id in detail: its log lines come with the list
        self.logs = LogCache()
        self.log_lines: tuple = (None, [])  # (flow id, lines)

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter: address, port, protocol, app…", id="flow-filter")
        yield DataTable(id="flow-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="flow-detail", classes="box")
        yield Footer(show_command_palette=False)

    def setup(self) -> None:
        table = self.query_one(DataTable)
        for label, width in COLUMNS:
            table.add_column(label, width=width)

    def action_next_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self.data = None  # the next answer is drawn even if it is the same
        self.notify(f"flows by {self.sort}", timeout=1.5)

    def fetch(self, source) -> dict:
        data = source.optional("capture_flows", limit=100, sort=self.sort) or {"flows": [], "active": 0}
        flow = next((f for f in data["flows"] if f["id"] == self.selected), data["flows"][0] if data["flows"] else None)
        if flow is not None:
            cid = flow_community_id(flow)
            data["logs"] = (flow["id"], self.logs.get(source, cid, {"community_id": cid} if cid else {}))
        return data

    def show(self, data: dict) -> None:
        text = self.query_one("#flow-filter", Input).value.strip()
        self.rows = [f for f in data["flows"] if matches(f, text)]
        rows = []
        for f in self.rows:
            rate = f["bytes"] / f["duration_s"] if f["duration_s"] > 0 else 0
            rows.append((str(f["id"]), (f["src"], str(f["sport"]), f["dst"], str(f["dport"]), f["proto"],
                                        human(f["packets"]), human(f["bytes"], "B"), human(rate, "B/s"),
                                        "-" if f["rtt_ms"] is None else f"{f['rtt_ms']:.1f}", str(f["retransmissions"]),
                                        f["state"] or "-", f["app"])))
        sync_table(self.query_one(DataTable), rows)
        self.title = f"Flows ({len(self.rows)} of {data['active']} active, by {self.sort})"
        self.log_lines = data.get("logs") or (None, [])
        self._detail()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        row = self.query_one(DataTable).cursor_row
        if 0 <= row < len(self.rows):
            self.selected = self.rows[row]["id"]
        self._detail()

    def action_save_packets(self) -> None:
        row = self.query_one(DataTable).cursor_row
        if not 0 <= row < len(self.rows):
            self.notify("no flow selected", severity="warning")
            return
        f = self.rows[row]
        save_packets(self, f"flow {f['id']}", f"flow-{f['id']}.pcapng", {"flow": f["id"]})

    def _detail(self) -> None:
        table = self.query_one(DataTable)
        detail = self.query_one("#flow-detail", Static)
        if not self.rows or table.cursor_row >= len(self.rows):
            set_text(detail, "no flow" if not self.rows else "")
            return
        f = self.rows[table.cursor_row]
        rtt = "-" if f["rtt_ms"] is None else f"{f['rtt_ms']:.2f} ms"
        set_text(detail, 
            f"{f['proto']} {f['src']}:{f['sport']} -> {f['dst']}:{f['dport']}  vlan {f['vlan']}  app {f['app']}  "
            f"state {f['state'] or '-'}\n"
            f"packets {f['packets_fwd']} -> / <- {f['packets_rev']}   bytes {f['bytes_fwd']} -> / <- {f['bytes_rev']}   "
            f"duration {f['duration_s']:.1f} s\n"
            f"rtt {rtt}   retransmissions {f['retransmissions']}   "
            f"out of order {f['out_of_order']}" + "".join("\n" + x for x in self._logs_of(f["id"])))

    def _logs_of(self, flow_id) -> list:
        shown, lines = self.log_lines
        return lines if shown == flow_id else []
