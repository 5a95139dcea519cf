"""What the docs show is what the code does: the configuration reference is
made from agent/config.py, and the pictures are the console's snapshots and a
real call's ladder."""
import pathlib
import subprocess
import sys

import pytest

from agent import config, configref
from tests.conftest import ROOT, pcap

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
DOC = DOCS / "CONFIG.md"
SNAPSHOTS = ROOT / "tests" / "tui" / "__snapshots__" / "test_screens"


def test_the_reference_is_current():
    assert DOC.read_text() == configref.render(), "run: python -m agent.configref > docs/CONFIG.md"


def test_every_key_and_rule_is_in_the_reference():
    text = DOC.read_text()
    for name, cls in config.SECTIONS.items():
        assert f"## [{name}]" in text
        for field in cls.__dataclass_fields__:
            assert f"| `{field}` |" in text
    assert "| `snaplen` | `65535` | 64 – 262144 |" in text


@pytest.mark.parametrize("screen", ["overview", "threats", "flows"])
def test_the_console_pictures_are_its_snapshots(screen):
    """docs/img/console-*.svg are the snapshot tests' pictures (copy them again after --snapshot-update)."""
    assert (DOCS / "img" / f"console-{screen}.svg").read_bytes() == \
        (SNAPSHOTS / f"test_screen_snapshots[{screen}].svg").read_bytes()


def test_the_ladder_picture_is_what_callflow_draws(tmp_path):
    out = tmp_path / "ladder.svg"
    subprocess.run([sys.executable, "-m", "agent", "callflow", pcap("ndpi__FAX-Call-t38-CA-TDM-SIP-FB-1.pcap"),
                    "00e9d4a500e9d48", "--svg", str(out)], cwd=ROOT, check=True, capture_output=True, timeout=120)
    assert out.read_bytes() == (DOCS / "img" / "callflow-fax.svg").read_bytes()


def test_each_bus_channel_is_documented_from_its_dataclass():
    """docs/API.md's channel table is agent.events.schema_rows(): a field added to an event, or a channel
    added to the bus, fails here until the table is written again (python -m agent.events)."""
    from agent.events import schema_rows
    text = (DOCS / "API.md").read_text()
    table = text.split("<!-- channels: from agent.events.schema_rows() -->\n")[1].split("<!-- end of channels -->")[0]
    assert table.splitlines()[2:] == schema_rows()
