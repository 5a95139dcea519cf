"""RESULTS.md is one file that several benchmarks write: each owns a section
between its own markers and replaces only that, so one can be rerun alone."""
import pathlib


def markers(name: str) -> tuple:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def write_section(results, name: str, section: str) -> None:
    """Put section (which starts and ends with markers(name)) in place of the old one, or at the end."""
    results = pathlib.Path(results)
    begin, end = markers(name)
    text = results.read_text() if results.exists() else ""
    if begin in text and end in text:
        text = text[:text.index(begin)] + section + text[text.index(end) + len(end):].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    results.write_text(text)
