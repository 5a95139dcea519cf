"""The configuration reference (docs/CONFIG.md), made from agent/config.py
itself: every section's docstring, every key with its default, its range or
choices (config.RULES), its environment variable and the comment written
beside it.  `python -m agent.configref > docs/CONFIG.md`; a test keeps the
file current."""
import dataclasses
import inspect
import io
import json
import tokenize

from agent import config


def _comments(cls) -> dict:
    """{field: the comment on its line} from the section's source."""
    src = inspect.getsource(cls)
    out, line_field = {}, {}
    for i, line in enumerate(src.splitlines(), 1):
        name = line.strip().split(":", 1)[0]
        if name.isidentifier() and ":" in line and not line.strip().startswith(("class", "def", "@")):
            line_field[i] = name
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.COMMENT and tok.start[0] in line_field:
            out[line_field[tok.start[0]]] = tok.string.lstrip("# ").strip()
    return out


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, tuple):
        return json.dumps(list(v))
    return json.dumps(v) if isinstance(v, str) else repr(v)


def _rule(key: str) -> str:
    r = config.RULES.get(key)
    if not r:
        return ""
    if "choices" in r:
        return " \\| ".join(f"`{c}`" if c else '`""`' for c in r["choices"])
    return f"{r['min']} – {r['max']}"


def render() -> str:
    lines = ["# Configuration reference", "",
             "Every key of `capbox.toml`, made from `agent/config.py` (`python -m agent.configref > docs/CONFIG.md`;",
             "`tests/test_docs.py` fails when this file is out of date). A key is set, in rising precedence,",
             "by its default, the TOML file (`capbox run --config FILE`), the environment variable",
             "`CAPBOX_<SECTION>_<KEY>` (lists: comma-separated or JSON), and the command line. A bad value",
             "stops the start with a message naming the key.", ""]
    for name, cls in config.SECTIONS.items():
        lines += [f"## [{name}]", ""]
        doc = inspect.getdoc(cls)
        if doc and not doc.startswith(cls.__name__ + "("):
            lines += [" ".join(doc.split()), ""]
        comments = _comments(cls)
        lines += ["| key | default | range | meaning |", "|---|---|---|---|"]
        defaults = cls()
        for f in dataclasses.fields(cls):
            key = f"{name}.{f.name}"
            meaning = comments.get(f.name, "").replace("|", "\\|")
            lines.append(f"| `{f.name}` | `{_value(getattr(defaults, f.name))}` | {_rule(key)} | {meaning} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
