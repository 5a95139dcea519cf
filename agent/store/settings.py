"""Settings changed at run time (over REST or the console) that must outlive
a restart: one JSON value per name in the `settings` table.  Whatever is kept
here wins over the configuration file, which holds the first-start values."""
import json
import time
from typing import Any

# the names kept, and who writes them
FLOW_METER = "flow_meter"        # agent.capture.control: enabled, timeouts, sampling
CAPTURE_BPF = "capture_bpf"      # agent.capture.control: the filter of the capture that autostarts
RECORDING = "recording"          # agent.capture.recording: enabled and its settings
ENCRYPTION = "encryption"        # agent.capture.recording: the key file, or None for plaintext


class Settings:
    def __init__(self, store):
        self.store = store

    def get(self, name: str, default: Any = None) -> Any:
        rows = self.store.query("SELECT value FROM settings WHERE name = ?", (name,))
        if not rows:
            return default
        try:
            return json.loads(rows[0]["value"])
        except ValueError:
            return default

    def put(self, name: str, value: Any) -> None:
        text = json.dumps(value, separators=(",", ":"))
        self.store.write(lambda c: c.execute(
            "INSERT INTO settings (name, value, updated) VALUES (?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value, updated = excluded.updated",
            (name, text, time.time())))
