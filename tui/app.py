"""The capbox console: screens switched by keys, refreshed four times a
second from a worker thread, actions sent to the agent's API."""
import time
from typing import Optional

from textual import work
from textual.app import App
from textual.app import ScreenStackError
from textual.binding import Binding
from textual.worker import get_current_worker

from tui.screens.analysis import Analysis
from tui.screens.calls import Calls
from tui.screens.base import DataScreen
from tui.screens.dialogs import Ask, Help, StartCapture
from tui.screens.flows import Flows
from tui.screens.overview import Overview
from tui.screens.system import System
from tui.screens.threats import Threats
from tui.source import Source, SourceError

REFRESH_S = 0.25
SCREENS = {"o": Overview, "f": Flows, "t": Threats, "a": Analysis, "l": Calls, "y": System}


class CapboxApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "capbox"
    # The footer shows a screen's own keys, then help, start/stop and quit: it fits 80 columns on
    # every screen.  The rest are in the help (?), which lists every binding there is.
    BINDINGS = [
        Binding("o", "show('o')", "overview", show=False), Binding("f", "show('f')", "flows", show=False),
        Binding("t", "show('t')", "threats", show=False), Binding("a", "show('a')", "anomalies", show=False),
        Binding("l", "show('l')", "calls", show=False), Binding("y", "show('y')", "system", show=False),
        Binding("b", "filter", "filter of the running capture", show=False),
        Binding("w", "window_size", "traffic window size", show=False),
        Binding("question_mark", "help", "help", key_display="?"), Binding("s", "start_stop", "start/stop"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, source: Source, refresh_s: Optional[float] = REFRESH_S):
        """refresh_s None: each screen is fetched once when it comes to the front (fixed pictures)."""
        super().__init__()
        self.source = source
        self.refresh_s = refresh_s
        self._last_error = ""

    def on_mount(self) -> None:
        for key, cls in SCREENS.items():
            self.install_screen(cls(), name=key)
        self.push_screen("o")
        self.poll()

    def action_show(self, key: str) -> None:
        self.switch_screen(key)

    def action_help(self) -> None:
        if not isinstance(self.screen, Help):
            self.push_screen(Help(self.screen, self.BINDINGS))

    @work(thread=True, exclusive=True, group="poll")
    def poll(self) -> None:
        """Fetch for the screen in front, show on the UI thread; errors become notifications."""
        worker = get_current_worker()
        shown = None
        while not worker.is_cancelled:
            try:
                screen = self.screen
            except ScreenStackError:  # the app is closing
                return
            if isinstance(screen, DataScreen) and screen.ready and (self.refresh_s or screen is not shown):
                try:
                    data = screen.fetch(self.source)
                    if screen is not shown or data != screen.data:  # an unchanged answer is not drawn again
                        self.call_from_thread(self._show, screen, data)
                    shown = screen
                except SourceError as e:
                    self.call_from_thread(self._error, str(e))
                    self.call_from_thread(screen.unreachable, str(e))
                    shown = None                                 # drawn again in full once it answers
                except Exception as e:  # a surprise from the agent's answer: said, not fatal
                    self.call_from_thread(self._error, f"{type(e).__name__}: {e}")
            time.sleep(self.refresh_s or 0.05)

    def _show(self, screen: DataScreen, data: dict) -> None:
        if screen is not self.screen:
            return
        try:
            screen.data = data
            screen.show(data)
            self._last_error = ""
        except Exception as e:  # an answer the screen did not expect: said, not fatal
            self._error(f"{screen.title}: {type(e).__name__}: {e}")

    def _error(self, message: str) -> None:
        if message != self._last_error:  # once, not four times a second
            self.notify(message, severity="error", timeout=6)
            self._last_error = message

    # ---- actions: each one client call, in a worker, the answer as a notification ----

    @work(thread=True, group="action")
    def _act(self, what: str, method: str, *args, **kwargs) -> None:
        try:
            self.source.call(method, *args, **kwargs)
            self.call_from_thread(self.notify, what, timeout=3)
        except SourceError as e:
            self.call_from_thread(self.notify, f"{what} failed: {e}", severity="error", timeout=8)

    @work(thread=True, group="action")
    def action_start_stop(self) -> None:
        try:
            running = self.source.call("capture_status")["running"]
            backends = [b["name"] for b in self.source.call("capture_backends")["backends"] if b["available"]]
        except SourceError as e:
            self.call_from_thread(self.notify, str(e), severity="error")
            return
        if running:
            self._act("capture stopped", "capture_stop", "console")
        else:
            self.call_from_thread(self.push_screen, StartCapture(backends), self._start)

    def _start(self, body) -> None:
        if body:
            self._act("capture started", "capture_start", **body)

    def action_filter(self) -> None:
        self.push_screen(Ask("BPF filter for the running capture (empty: none)", placeholder="tcp port 443"),
                         lambda bpf: bpf is not None and self._act(f"filter set: {bpf or 'none'}",
                                                                    "capture_filter", bpf))

    def action_window_size(self) -> None:
        def chosen(value):
            if value is None:
                return
            if not value.isdigit() or not 1 <= int(value) <= 3600:
                self.notify("window size: seconds, 1 to 3600", severity="error")
                return
            self._act(f"window size {value} s (from the next capture)", "compute_windows", source="live",
                      window_size=int(value))
        self.push_screen(Ask("Window size in seconds", placeholder="10"), chosen)
