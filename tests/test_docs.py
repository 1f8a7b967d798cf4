"""The documentation's code cannot rot silently: every Python block in README.md and docs/
compiles, and every name it imports from aiecs_llm exists."""

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def python_blocks():
    for page in PAGES:
        for number, match in enumerate(BLOCK.finditer(page.read_text()), start=1):
            yield pytest.param(match.group(1), id=f"{page.name}#{number}")


BLOCKS = list(python_blocks())


def test_the_docs_have_code():
    assert len(BLOCKS) >= 15


@pytest.mark.parametrize("code", BLOCKS)
def test_block_compiles_and_its_imports_exist(code):
    tree = compile(code, "<doc>", "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("aiecs_llm"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module} has no {alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("aiecs_llm"):
                    importlib.import_module(alias.name)
