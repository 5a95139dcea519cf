"""Small modal forms: start a capture, ask for one value."""
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static


class StartCapture(ModalScreen):
    """Backend and interface (or file) for a new capture; dismisses with the request body or None."""

    BINDINGS = [("escape", "cancel", "cancel")]

    def __init__(self, backends: list):
        super().__init__()
        self.backends = backends

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Start a capture")
            yield Select([(b, b) for b in self.backends], value=self.backends[0] if self.backends else Select.BLANK,
                         id="backend", allow_blank=False)
            yield Input(placeholder="interface, capture file, or demo", id="source")
            yield Input(placeholder="BPF filter (optional)", id="bpf")
            yield Button("Start", variant="primary", id="go")

    def on_mount(self) -> None:
        self.query_one("#source", Input).focus()

    def _submit(self) -> None:
        backend = self.query_one("#backend", Select).value
        source = self.query_one("#source", Input).value.strip()
        body = {"backend": "" if backend in (Select.BLANK, None) else backend,
                "bpf": self.query_one("#bpf", Input).value.strip()}
        if body["backend"] == "pcapfile" or "/" in source or source.endswith((".pcap", ".pcapng")) or source == "demo":
            body["file"] = source
            body["pace"] = 1.0
        else:
            body["interface"] = source
        self.dismiss(body)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self._submit()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._submit()

    def action_cancel(self) -> None:
        self.dismiss(None)


class Ask(ModalScreen):
    """One line of input; dismisses with the text or None."""

    BINDINGS = [("escape", "cancel", "cancel")]

    def __init__(self, question: str, value: str = "", placeholder: str = ""):
        super().__init__()
        self.question, self.value, self.placeholder = question, value, placeholder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question)
            yield Input(value=self.value, placeholder=self.placeholder, id="answer")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


def _key(binding) -> str:
    return binding.key_display or {"slash": "/", "question_mark": "?", "escape": "Esc"}.get(
        binding.key, binding.key.replace("ctrl+", "^"))


class Help(ModalScreen):
    """Every key: the screen's own, then the console's, from their bindings (so it cannot go stale)."""

    BINDINGS = [("escape", "dismiss", "close"), ("question_mark", "dismiss", "close"), ("q", "dismiss", "close")]

    def __init__(self, under, app_bindings: list):
        super().__init__()
        self.under = under
        self.app_bindings = app_bindings

    def compose(self) -> ComposeResult:
        lines = []
        own = [b for b in getattr(self.under, "BINDINGS", []) if hasattr(b, "key")]
        if own:
            lines.append(f"[b]{getattr(self.under, 'title', '') or 'this screen'}[/]")
            lines += [f"  {_key(b):<6} {b.description}" for b in own]
        lines.append("[b]everywhere[/]")
        lines += [f"  {_key(b):<6} {b.description}" for b in self.app_bindings]
        lines += ["  ^p     command palette", "", "Esc or ? closes this help"]
        with Vertical(classes="dialog", id="help"):
            yield Static("\n".join(lines))
