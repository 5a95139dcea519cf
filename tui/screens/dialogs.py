"""Small modal forms: start a capture, ask for one value."""
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select


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
