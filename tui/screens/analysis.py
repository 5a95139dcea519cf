"""Anomalies and baselines: recent windows as a chart, the anomalies, the baseline."""
from textual.app import ComposeResult
from textual.widgets import DataTable, Footer, Sparkline, Static

from tui.screens.base import DataScreen, human, set_text, sync_table


class Analysis(DataScreen):
    title = "Anomalies"

    def __init__(self):
        super().__init__(name="analysis")

    def compose(self) -> ComposeResult:
        yield Static(id="window-caption")
        yield Sparkline([0], id="window-line")
        yield DataTable(id="anomaly-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="baseline", classes="box")
        yield Footer(show_command_palette=False)

    def setup(self) -> None:
        table = self.query_one(DataTable)
        for label, width in (("window", 6), ("severity", 8), ("type", 16), ("source", 18), ("message", 60)):
            table.add_column(label, width=width)

    def fetch(self, source) -> dict:
        first = source.optional("windows", limit=60)
        total = first["total"] if first else 0
        recent = source.optional("windows", limit=60, offset=total - 60) if total > 60 else first
        return {"windows": recent, "anomalies": source.optional("anomalies", limit=100),
                "baselines": source.optional("baselines")}

    def show(self, d: dict) -> None:
        w = d["windows"]
        items = w["windows"] if w else []
        bps = [x["bandwidth"]["avg_bps"] for x in items]
        caption = "no windows yet" if not items else (
            f"windows of {w['set']['window_size']} s ({w['set']['kind']} {w['set']['source']}): last {len(items)} of "
            f"{w['total']}, bits/s now {human(bps[-1])}, peak {human(max(bps))}")
        set_text(self.query_one("#window-caption", Static), caption)
        self.query_one(Sparkline).data = bps or [0]
        an = d["anomalies"]
        sync_table(self.query_one(DataTable), [
            (f"{a['window_id']} {a['type']} {a['flow_src']}",
             (str(a["window_id"]), a["severity"].upper() if a["severity"] == "high" else a["severity"], a["type"],
              a["flow_src"] or "-", a["message"])) for a in (an["anomalies"] if an else [])[-100:][::-1]])
        b = d["baselines"]
        if b and b["available"]:
            bw = b["baselines"].get("bandwidth", {})
            lat = b["baselines"].get("latency", {})
            con = b["baselines"].get("connection", {})
            text = (f"baseline '{b['name']}': bandwidth median {human(bw.get('median'))}bit/s p95 {human(bw.get('p95'))}   "
                    f"rtt p95 median {lat.get('median', '-')} ms   connections/window median {con.get('median', '-')}")
        else:
            text = "no baseline yet" + (f" (learning for {b['baseline_duration_hours']} h)" if b else "")
        set_text(self.query_one("#baseline", Static), text)
