"""docs/CONFIG.md is made from agent/config.py and must say what the code does."""
import pathlib

from agent import config, configref

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "CONFIG.md"


def test_the_reference_is_current():
    assert DOC.read_text() == configref.render(), "run: python -m agent.configref > docs/CONFIG.md"


def test_every_key_and_rule_is_in_the_reference():
    text = DOC.read_text()
    for name, cls in config.SECTIONS.items():
        assert f"## [{name}]" in text
        for field in cls.__dataclass_fields__:
            assert f"| `{field}` |" in text
    assert "| `snaplen` | `65535` | 64 – 262144 |" in text
