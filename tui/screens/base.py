"""What every screen of the console is: fetch (in a worker thread) and show
(on the UI thread).  The app calls fetch about four times a second for the
screen in front; nothing on the UI thread waits on the agent."""
from textual.coordinate import Coordinate
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

    def unreachable(self, message: str) -> None:
        """The agent did not answer: a screen that shows live figures says so instead of the last ones."""

    def redraw(self) -> None:
        """Show the last answer again (a filter typed, a row chosen), without waiting for a new one."""
        if self.data is not None:
            self.show(self.data)


class Filtered:
    """A screen with a table and a filter typed above it (its Input's id in filter_id): / goes to the
    filter, Escape or Enter back to the table, and every keystroke redraws."""

    filter_id = ""

    def action_focus_filter(self) -> None:
        self.query_one(f"#{self.filter_id}").focus()

    def action_leave_filter(self) -> None:
        self.query_one("DataTable").focus()

    def on_input_changed(self, event) -> None:
        self.redraw()

    def on_input_submitted(self, event) -> None:
        self.query_one("DataTable").focus()


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


def set_text(static, text) -> None:
    """Static.update lays the whole screen out again, even for the same text: only when it changed."""
    if getattr(static, "capbox_text", None) != text:
        static.capbox_text = text
        static.update(text)


def sync_table(table, rows: list) -> None:
    """Make a DataTable show rows, a list of (key, cells).  While the number of
    rows stays the same the cells are updated in place (a table cleared and
    refilled four times a second costs the console most of its CPU: every row
    added makes it measure itself again); otherwise it is rebuilt.  Either way
    the cursor stays on the row with the key it was on, or at the same place."""
    old = getattr(table, "capbox_rows", None)
    keys = [k for k, _ in rows]
    at = table.cursor_row
    current = old[at][0] if old and 0 <= at < len(old) else None
    if old is not None and len(old) == len(rows):
        for r, ((_, cells), (_, before)) in enumerate(zip(rows, old)):
            for c, (value, was) in enumerate(zip(cells, before)):
                if value != was:
                    table.update_cell_at(Coordinate(r, c), value)
    else:
        table.clear()
        for _, cells in rows:
            table.add_row(*cells)
    table.capbox_rows = rows
    if rows:
        want = keys.index(current) if current in keys else min(max(at, 0), len(rows) - 1)
        if want != table.cursor_row:
            table.move_cursor(row=want)
