"""The documentation's code cannot rot silently: every Python block in README.md and docs/ is
executed, page by page, against the local fake provider.

A page's blocks run in order in one namespace, as a reader would type them into one session,
so a later block may use what an earlier one defined. Blocks written with top-level ``await``
run on one event loop per page; blocks that call ``asyncio.run`` themselves run as they are.
Every provider's base URL points at tests/fake_provider on 127.0.0.1 (through a config file in
``LLM_CONFIG_FILE``), the keys are the suite's fakes, and the working directory and ``HOME``
are a temporary folder. Fragments that continue the reader's own code find these names:

- ``client``: an ``OpenAIClient`` (the fake provider answers "Hello there, how are you?");
- ``messages``: a one-message conversation;
- ``key`` and ``call``: a response-cache key and the call that fills it.

A block preceded by ``<!-- docs: not executed (reason) -->`` is only compiled and its
``aiecs_llm`` imports checked; each such exception states its reason.
"""

import ast
import asyncio
import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import get_args, get_origin

import pytest
from pydantic import AliasChoices, BaseModel

from aiecs_llm import LLMMessage, LLMSettings, OpenAIClient
from aiecs_llm.config.settings import _Environment
from tests.fake_provider import FakeProviderServer
from tests.record_examples import running

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(
    r"(<!-- docs: not executed \((?P<why>[^)]+)\) -->\n)?```python\n(?P<code>.*?)```", re.DOTALL
)


@dataclass(frozen=True)
class Block:
    page: Path
    number: int
    code: str
    not_executed: str | None

    @property
    def id(self) -> str:
        return f"{self.page.name}#{self.number}"


def blocks_of(page: Path) -> list[Block]:
    return [
        Block(page, number, match["code"], match["why"])
        for number, match in enumerate(BLOCK.finditer(page.read_text()), start=1)
    ]


BLOCKS = [block for page in PAGES for block in blocks_of(page)]
PAGES_WITH_CODE = [page for page in PAGES if blocks_of(page)]


def test_the_docs_have_code_and_few_exceptions():
    assert len(BLOCKS) >= 15
    skipped = [block.id for block in BLOCKS if block.not_executed]
    assert len(skipped) <= 3, skipped


def compiled(block: Block):
    return compile(
        block.code,
        f"<{block.id}>",
        "exec",
        flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
    )


@pytest.mark.parametrize("block", BLOCKS, ids=lambda block: block.id)
def test_block_compiles_and_its_imports_exist(block):
    for node in ast.walk(compiled(block)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("aiecs_llm"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module} has no {alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("aiecs_llm"):
                    importlib.import_module(alias.name)


@pytest.fixture
def fake_provider(tmp_path, monkeypatch):
    """Every provider at the fake server, in a scratch working directory and home."""
    server = FakeProviderServer()
    with running(server):
        config = tmp_path / "llm.toml"
        config.write_text(
            "".join(
                f'[providers.{name}]\nbase_url = "{url}"\n'
                for name, url in (
                    ("openai", server.openai_base),
                    ("anthropic", server.anthropic_base),
                    ("google", server.gemini_base),
                )
            )
        )
        monkeypatch.setenv("LLM_CONFIG_FILE", str(config))
        monkeypatch.setenv("HOME", str(tmp_path))
        monkeypatch.chdir(tmp_path)
        yield server


@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=lambda page: page.name)
def test_page_runs(page, fake_provider):
    client = OpenAIClient()
    messages = [LLMMessage("user", "Say hello in five words.")]
    namespace = {
        "__name__": "__docs__",
        "client": client,
        "messages": messages,
        "key": "docs-example-cache-key",
        "call": lambda: client.generate_text(messages, temperature=0),
    }
    # One loop for the page's top-level awaits; it runs only inside them, so a block may still
    # call asyncio.run itself. Closing it cancels what LiteLLM left running, as asyncio.run does.
    with asyncio.Runner() as page_loop:
        for block in blocks_of(page):
            if block.not_executed:
                continue
            code = compile(
                block.code, f"<{block.id}>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
            )
            try:
                result = eval(code, namespace)
                if asyncio.iscoroutine(result):
                    page_loop.run(result)
            except Exception as error:
                raise AssertionError(f"{block.id} failed: {error!r}") from error
        page_loop.run(client.close())
    assert fake_provider.requests or page.name in {"cli.md", "testing.md"}


def settings_table() -> list[tuple[str, str]]:
    """(config keys, environment variables) of each row of configuration.md's table, with the
    shorthand "`a.b.input`, `.output`" spelled out."""
    text = (ROOT / "docs" / "configuration.md").read_text()
    section = text[text.index("## Every setting") : text.index("## Config file")]
    rows = []
    for line in section.splitlines():
        if not line.startswith("| ") or line.startswith(("| config", "|---")):
            continue
        keys_cell, env_cell = line.split("|")[1:3]
        keys: list[str] = []
        for span in re.findall(r"`([^`]+)`", keys_cell):
            keys.append(keys[-1].rsplit(".", 1)[0] + span if span.startswith(".") else span)
        rows.append((" ".join(keys), env_cell))
    return rows


def setting_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every leaf setting as a regular expression over config keys; dict keys match anything."""
    paths = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{re.escape(name)}"
        annotation = field.annotation
        value = get_args(annotation)[1] if get_origin(annotation) is dict else None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths += setting_paths(annotation, f"{path}\\.")
        elif isinstance(value, type) and issubclass(value, BaseModel):
            paths += setting_paths(value, f"{path}\\.[^ .]+\\.")
        elif get_origin(annotation) is dict:
            paths.append(f"{path}\\.[^ .]+")
        else:
            paths.append(path)
    return paths


def test_the_configuration_table_lists_every_setting_and_variable():
    rows = settings_table()
    keys = " ".join(key for key, _ in rows)
    missing = [path for path in setting_paths(LLMSettings) if not re.search(rf"\b{path}\b", keys)]
    assert not missing, f"configuration.md lacks {missing}"
    variables = " ".join(env for _, env in rows)
    for field in _Environment.model_fields.values():
        alias = field.validation_alias
        names = alias.choices if isinstance(alias, AliasChoices) else [alias]
        for name in names:
            assert f"`{name}`" in variables, f"configuration.md lacks {name}"


def test_the_configuration_example_loads(tmp_path):
    page = (ROOT / "docs" / "configuration.md").read_text()
    example = page[page.index("## Config file") :]
    toml = example[example.index("```toml\n") + 8 : example.index("```\n", 8)]
    config = tmp_path / "llm.toml"
    config.write_text(toml)
    settings = LLMSettings.load(config)
    assert settings.budgets.tags["service=billing"].daily == 5
    assert settings.fallbacks == {"gpt-4": ["gpt-3.5-turbo"]}
