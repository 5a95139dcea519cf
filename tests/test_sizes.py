"""No Python module over 500 lines and no function over 80 (parser tables
excepted, none today): a reader holds a module and a function in one view."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("agent", "tui", "hwdrivers", "firmware")
MAX_MODULE = 500
MAX_FUNCTION = 80
TABLES: set = set()        # "module:function" of a parser table allowed to be longer


def sources():
    for pkg in PACKAGES:
        yield from sorted((ROOT / pkg).rglob("*.py"))


def test_no_module_over_500_lines():
    long = {str(p.relative_to(ROOT)): n for p in sources() if (n := len(p.read_text().splitlines())) > MAX_MODULE}
    assert long == {}


def test_no_function_over_80_lines():
    long = {}
    for p in sources():
        rel = str(p.relative_to(ROOT))
        for node in ast.walk(ast.parse(p.read_text(), rel)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION and f"{rel}:{node.name}" not in TABLES:
                    long[f"{rel}:{node.name}"] = n
    assert long == {}


def test_the_tree_is_read():
    assert {"agent/runtime.py", "hwdrivers/capture.py", "tui/app.py"} <= {str(p.relative_to(ROOT)) for p in sources()}
