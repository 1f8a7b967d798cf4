"""The layout docs/architecture.md describes, kept true: the top-level entries it lists, no import
cycles (deferred and type-checking imports included), packages importing only packages below
them, and no module over 400 lines.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "aiecs_llm"
MAX_LINES = 400

# Lower ranks may not import higher ones; equal ranks may not import each other.
RANKS = {
    "errors": 0,
    "types": 0,
    "config": 1,
    "providers": 2,
    "transport": 3,
    "resilience": 3,
    "accounting": 3,
    "redis": 4,
    "client": 5,
    "testing": 6,
    "cli": 7,
    "__main__": 8,
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.with_suffix("").relative_to(ROOT).parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every aiecs_llm module ``path`` imports, wherever the import statement is."""

    def resolve(name: str) -> str:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        targets.update(resolve(name) for name in names if name.startswith("aiecs_llm"))
    return targets - {"", "aiecs_llm"}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def _package(module: str) -> str:
    return module.split(".")[1]


def test_the_top_level_holds_what_the_architecture_page_lists():
    entries = {
        path.name
        for path in PACKAGE.iterdir()
        if path.name != "__pycache__"
        and not path.name.startswith(".")
        and (path.is_file() or any(path.glob("*.py")))
    }
    page = (ROOT / "docs" / "architecture.md").read_text()
    for entry in entries - {"__init__.py", "__main__.py", "py.typed"}:
        documented = entry if entry.endswith(".py") else f"{entry}/"
        assert f"`{documented}`" in page or f"/{documented}`" in page, (
            f"aiecs_llm/{entry} is not described in docs/architecture.md"
        )
    assert len(entries) <= 14, sorted(entries)


def test_no_import_cycles_deferred_imports_included():
    assert _cycles(_graph()) == []


def test_packages_import_only_packages_below_them():
    wrong = []
    for module, imported in _graph().items():
        if module == "aiecs_llm":
            continue  # the public re-exports
        for target in imported:
            if (
                _package(module) != _package(target)
                and RANKS[_package(target)] >= RANKS[_package(module)]
            ):
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_no_module_is_over_the_size_limit():
    long = {
        str(path.relative_to(ROOT)): count
        for path in PACKAGE.rglob("*.py")
        if (count := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_litellm_is_imported_only_where_it_is_loaded_and_driven():
    # providers/engine.py loads it, configured; transport/ drives its provider configs. Every
    # other module reaches LiteLLM through engine.litellm().
    importers = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        if re.search(r"^\s*(import litellm|from litellm[\w.]* import)", text, re.MULTILINE):
            importers.append(str(path.relative_to(PACKAGE)))
    assert importers
    assert [
        name
        for name in importers
        if name != "providers/engine.py" and not name.startswith("transport/")
    ] == []
