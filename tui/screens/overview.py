"""Overview: capture, rates with sparklines, host figures, counters, components."""
import time

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Sparkline, Static

from tui.screens.base import DataScreen, human, mark, set_text

HEALTH_EVERY_S = 2.0
# label, widget id, key in the metrics' history
SPARKLINES = (("pkt/s", "pps-line"), ("bit/s", "bps-line"), ("drops", "drop-line"))
HISTORY_KEYS = {"pps-line": "pps", "bps-line": "bps", "drop-line": "dropped"}


class Overview(DataScreen):
    title = "Overview"

    def __init__(self):
        super().__init__(name="overview")
        self._health = None
        self._health_at = 0.0

    def compose(self) -> ComposeResult:
        yield Static(id="state", classes="banner")
        with Horizontal(id="top"):
            with Vertical(id="traffic", classes="box"):
                yield Static(id="rates")
                for label, wid in SPARKLINES:
                    with Horizontal(classes="spark-row"):
                        yield Static(label, classes="spark-label")
                        yield Sparkline([], id=wid)
            yield Static(id="host", classes="box")
        yield Static(id="counters", classes="box")
        yield Static(id="components", classes="box")
        yield Footer(show_command_palette=False)

    def fetch(self, source) -> dict:
        status = source.call("capture_status")
        metrics = source.optional("capture_metrics") if status["running"] else None
        if time.monotonic() - self._health_at > HEALTH_EVERY_S or self._health is None:
            self._health = source.health()
            self._health_at = time.monotonic()
        anomalies = source.optional("anomalies_by_type")
        threats = source.optional("list_threats", limit=1)
        firmware = source.optional("firmware")
        return {"status": status, "metrics": metrics, "health": self._health, "anomalies": anomalies,
                "threats": threats, "firmware": firmware}

    def unreachable(self, message: str) -> None:
        set_text(self.query_one("#state", Static), f"[b]capbox[/]  [reverse] agent unreachable [/]  {message}")
        set_text(self.query_one("#rates", Static), "no figures: the agent does not answer")
        for wid in HISTORY_KEYS:
            self.query_one(f"#{wid}", Sparkline).data = []
        self._health = None

    def show(self, d: dict) -> None:
        st, m, h = d["status"], d["metrics"], d["health"]
        if st["running"]:
            where = st.get("interface") or (st.get("file") or "").rsplit("/", 1)[-1]
            state = f"capturing: {st['backend']} on {where}" + (f"  filter: {st['bpf']}" if st.get("bpf") else "")
        else:
            last = st.get("last_run") or {}
            state = "idle" + (f" (last capture ended: {last.get('reason')})" if last else "")
        set_text(self.query_one("#state", Static), f"[b]capbox[/] {h.get('version', '')}  mode {h.get('mode')}  "
                                                f"health {h.get('status')}  |  {state}")
        history = (m or {}).get("history") or []
        if m:
            drops = sum(m["drops"].values())
            rates = (f"packets/s {human(m['pps'])}   bits/s {human(m['bps'])}   drops {drops}   "
                     f"packets {human(m['packets'])}   bytes {human(m['bytes'], 'B')}")
        else:
            rates = "not capturing"
        set_text(self.query_one("#rates", Static), rates)
        for wid, key in HISTORY_KEYS.items():
            self.query_one(f"#{wid}", Sparkline).data = [x[key] for x in history]   # none: an empty line
        sysd = h.get("system", {})
        nics = [i for i in h.get("interfaces", []) if i["up"] and i["name"] != "lo"][:3]
        host = [f"cpu {sysd.get('cpu_percent', 0):.0f}%  load {' '.join(f'{x:.1f}' for x in sysd.get('load_average', []))}",
                f"memory {sysd.get('memory', {}).get('percent', 0):.0f}%   disk {sysd.get('disk', {}).get('percent', 0):.0f}%",
                f"agent rss {human(sysd.get('process', {}).get('rss_bytes'), 'B')}"]
        host += [f"{i['name']}: rx {human(i['counters'].get('bytes_recv'), 'B')} tx {human(i['counters'].get('bytes_sent'), 'B')}"
                 f" drops {i['counters'].get('dropin', 0)}" for i in nics]
        set_text(self.query_one("#host", Static), "\n".join(host))
        lines = []
        if m:
            f = m["flows"]
            lines.append(f"flows active {f['active']}  created {f['created']}  evicted {f['evicted']}   "
                         f"malformed {m['malformed']['total']}")
        an = d["anomalies"]
        if an:
            high = sum(t["by_severity"].get("high", 0) for t in an["by_type"].values())
            lines.append(f"anomalies {an['total']} ({high} high)")
        th = d["threats"]
        lines.append(f"threats {th['total']}" if th and "total" in th else "threats: -")
        card = (d["firmware"] or {}).get("card") or {}
        lines.append(f"firmware {card['firmware_version'] or card['firmware_state']}" if card.get("present")
                     else "firmware: -")
        lost = h.get("losses") or {}   # any loss on the event path: where, and how much
        if lost:
            lines.append("[reverse] lost [/] " + "  ".join(f"{cause} {n}" for path in lost.values()
                                                          for cause, n in path.items()))
        set_text(self.query_one("#counters", Static), "   ".join(lines))
        comps = h.get("components", {})
        set_text(self.query_one("#components", Static), 
            "components  " + "  ".join(f"{name} {mark(c['status'] not in ('failed', 'stalled'))}" for name, c in comps.items()))
