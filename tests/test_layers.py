"""The house's import rules, read from the source (ast) of every module:
faces -> core -> drivers, never back.

- hwdrivers and firmware import no agent and no tui;
- the agent core (all of agent but its faces) imports no face;
- tui imports only the client side of the agent (agent.client);
- no import circle between packages (agent.<sub>, tui, hwdrivers, firmware).
An import inside a function counts: it is an arrow all the same."""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("agent", "tui", "hwdrivers", "firmware")
FACES = ("agent.cli", "agent.api", "agent.console", "agent.client", "agent.__main__", "tui")
CLIENT_SIDE = ("agent.client",)


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict:
    """Every module of the four packages -> the modules of ours it imports."""
    sources = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            sources[module_name(path)] = (path, path.name == "__init__.py")
    return {name: sorted({resolve(t, sources) for t in imports(ast.parse(path.read_text(), str(path)), name, is_pkg)}
                         - {None}) for name, (path, is_pkg) in sources.items()}


def resolve(target: str, known) -> str:
    """The module an import names: `from agent.api import app` is agent.api.app, `from agent.bus import iso`
    is agent.bus; None for what is not ours."""
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target or None


def imports(tree: ast.AST, name: str, is_pkg: bool) -> set:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:               # relative: resolved against this module's package
                here = name.split(".") if is_pkg else name.split(".")[:-1]
                here = here[:len(here) - node.level + 1]
                base = ".".join(here + ([base] if base else []))
            found.update(f"{base}.{a.name}" for a in node.names)   # a module or a name in base
    return {m for m in found if m.split(".")[0] in PACKAGES}


def within(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def unit(module: str) -> str:
    """The package an arrow is counted between: agent.<sub> for the agent, else the top package."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "agent" and len(parts) > 1 else parts[0]


MODULES = modules()
KNOWN = set(MODULES)


def arrows(select, forbidden) -> list:
    return [f"{m} -> {t}" for m, targets in MODULES.items() if select(m) for t in targets if forbidden(t)]


def test_the_tree_is_read():
    assert {"agent.runtime", "agent.api.app", "hwdrivers.capture", "firmware.verify", "tui.app"} <= KNOWN
    assert "agent.bus" in MODULES["agent.runtime"]


def test_drivers_import_no_agent_and_no_tui():
    assert arrows(lambda m: within(m, ("hwdrivers", "firmware")), lambda t: within(t, ("agent", "tui"))) == []


def test_the_agent_core_imports_no_face():
    core = lambda m: within(m, ("agent",)) and not within(m, FACES)   # noqa: E731
    assert arrows(core, lambda t: within(t, FACES)) == []


def test_tui_imports_only_the_client_side():
    assert arrows(lambda m: within(m, ("tui",)),
                  lambda t: within(t, ("agent",)) and not within(t, CLIENT_SIDE)) == []


def package_graph() -> dict:
    graph: dict = {}
    for m, targets in MODULES.items():
        for t in targets:
            a, b = unit(m), unit(t)
            if a != b and b != "agent":      # agent/__init__ holds only the version
                graph.setdefault(a, set()).add(b)
    return graph


def circles(graph: dict) -> list:
    """The strongly connected parts with more than one package (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                on.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                out.append(sorted(part))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_between_packages():
    assert circles(package_graph()) == []


@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}}, []),
])
def test_the_circle_finder_finds_circles(graph, expected):
    assert circles(graph) == expected


def test_imports_are_read_through_functions_and_relative_forms():
    tree = ast.parse("import os\ndef f():\n    from tui.app import CapboxApp\nfrom . import bus\nfrom .api import app\n")
    assert imports(tree, "agent.runtime", False) == {"tui.app.CapboxApp", "agent.bus", "agent.api.app"}
    assert resolve("tui.app.CapboxApp", KNOWN) == "tui.app" and resolve("os.path", KNOWN) is None


def test_the_architecture_note_names_every_package():
    """docs/ARCHITECTURE.md matches the code: every package and top module of the agent is in its table."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    units = {unit(m) for m in MODULES if m.startswith("agent.")} - {"agent.__main__"}
    assert sorted(u for u in units if f"`{u}`" not in text) == []
