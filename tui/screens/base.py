"""What every screen of the console is: fetch (in a worker thread) and show
(on the UI thread).  The app calls fetch about four times a second for the
screen in front; nothing on the UI thread waits on the agent."""
from textual.screen import Screen


class DataScreen(Screen):
    title = ""
    ready = False  # shown only once mounted: a table needs its columns before its rows
    data = None    # the answer shown last (the app skips drawing the same answer again)

    def on_mount(self) -> None:
        self.setup()
        self.ready = True

    def setup(self) -> None:
        """Once the widgets exist (columns of tables...)."""

    def fetch(self, source) -> dict:
        raise NotImplementedError

    def show(self, data: dict) -> None:
        raise NotImplementedError

    def redraw(self) -> None:
        """Show the last answer again (a filter typed, a row chosen), without waiting for a new one."""
        if self.data is not None:
            self.show(self.data)


def human(n, unit: str = "") -> str:
    """1234567 -> '1.2M' (SI), for narrow columns."""
    if n is None:
        return "-"
    n = float(n)
    for suffix in ("", "k", "M", "G", "T"):
        if abs(n) < 1000:
            return f"{n:.0f}{suffix}{unit}" if suffix == "" else f"{n:.1f}{suffix}{unit}"
        n /= 1000
    return f"{n:.1f}P{unit}"


def mark(ok: bool) -> str:
    """A state mark readable without colour."""
    return "[green]ok[/]" if ok else "[red]DOWN[/]"
