"""Test-wide rules: no network beyond loopback, no real keys, LiteLLM's bundled price map; the
``litellm`` and ``slow`` markers.
"""

from __future__ import annotations

import ast
import os
from collections.abc import AsyncIterator, Iterator
from functools import cache
from pathlib import Path

import pytest

# LiteLLM reads this at import; without it the import would fetch the price map.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

ROOT = Path(__file__).resolve().parent.parent
CASSETTES = ROOT / "cassettes"
CONFORMANCE = ROOT.parent / "shared" / "conformance"

PROVIDER_ENV = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "GOOGLE_AI_API_KEY",
    "GEMINI_API_KEY",
    "LLM_DEFAULT_MODEL",
    "LLM_DEFAULT_TEMPERATURE",
    "LLM_MAX_TOKENS",
    "LLM_TIMEOUT",
    "LLM_MAX_RETRIES",
    "LLM_CONFIG_FILE",
    "LLM_MAX_CONCURRENCY",
    "LLM_STREAM_IDLE_TIMEOUT",
    "LLM_DAILY_BUDGET",
    "LLM_MONTHLY_BUDGET",
    "LLM_BUDGET_TIMEZONE",
    "LLM_USAGE_DB",
    "LLM_STATE_URL",
    "LLM_BUDGET_FAIL_OPEN",
)

FAKE_KEYS = {
    "OPENAI_API_KEY": "sk-test-openai-0000000000000000",
    "ANTHROPIC_API_KEY": "sk-ant-test-00000",  # fake; short enough to look fake too
    "GOOGLE_AI_API_KEY": "test-google-key-000000000000",
}


@pytest.fixture(autouse=True)
def _fresh_shared_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """Breakers, key cool-downs, budgets and ledgers are process-wide; each test starts with
    none."""
    from aiecs_llm.client import shared as accounting
    from aiecs_llm.resilience import state

    monkeypatch.setattr(state, "DEFAULT_STATE", state.InProcessState())
    monkeypatch.setattr(accounting, "DEFAULTS", accounting._Defaults())


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts with fake keys and no other LLM configuration from the machine."""
    for name in PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if any(
            name.startswith(f"{key}_") and name[len(key) + 1 :].isdigit()
            for key in (*FAKE_KEYS, "GEMINI_API_KEY")
        ):
            monkeypatch.delenv(name)  # numbered keys for rotation: OPENAI_API_KEY_1, ...
    for name, value in FAKE_KEYS.items():
        monkeypatch.setenv(name, value)


# Spelled out so that collecting tests does not import the library; test_contract checks it
# against the registry.
PROVIDER_NAMES = ["anthropic", "google", "openai"]


@pytest.fixture(params=PROVIDER_NAMES, ids=str)
def provider(request: pytest.FixtureRequest) -> str:
    """Each registered provider in turn."""
    name: str = request.param
    return name


@pytest.fixture
async def server() -> AsyncIterator[object]:
    """A fault-injecting provider server on 127.0.0.1 for the test's duration."""
    from tests.fake_provider import FakeProviderServer

    async with FakeProviderServer() as running:
        yield running


# --- Markers: which tests touch LiteLLM, which are slow ------------------------------------------
#
# `litellm`: the tests that touch LiteLLM, run by `nox -s tests_litellm_floor` against the lowest
# release pyproject.toml allows (`nox -s tests` runs everything on the newest). The rule, per test
# module: it imports, anywhere in the file (function bodies too) or through a helper module of
# tests/ it imports, LiteLLM itself or a part of aiecs_llm that calls it (LITELLM_PATHS). A name
# taken from `aiecs_llm` (`from aiecs_llm import OpenAIClient`, `aiecs_llm.OpenAIClient`) counts as
# the module that defines it. So a test of the client, a transport, the model or cost map, the
# testing kit or the command line is in; a test of the breaker, budget, ledger or Redis scripts
# alone is not. Prefixes match whole dotted components ("aiecs_llm.client" covers
# "aiecs_llm.client.named", not "aiecs_llm.clients").
LITELLM_PATHS = (
    "litellm",
    "openai",  # the SDK LiteLLM drives for OpenAI
    "aiecs_llm.client",  # every call goes through a transport: LiteLLM or its provider configs
    "aiecs_llm.transport",  # both transports, the translation of LiteLLM's exceptions
    "aiecs_llm.providers",  # LiteLLM loaded once (engine), its model map (catalogue, resolution)
    "aiecs_llm.accounting.pricing",  # LiteLLM's cost map
    "aiecs_llm.testing",  # replays recordings through the client
    "aiecs_llm.cli",  # commands that call, price or list models
)
# Imported by test modules for constants only; following it would mark every one of them.
NOT_FOLLOWED = frozenset({"tests.conftest"})
# `slow`: modules of more than ~30 s each (subprocesses, the 10,000-call load test). CI runs
# them in `nox -s tests`; the floor session leaves them out to stay within a few minutes.
SLOW_MODULES = frozenset(
    {"test_load.py", "test_examples.py", "test_pytest_plugin.py", "test_redis_scale.py"}
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "litellm: touches LiteLLM (set by tests/conftest.py from the module's imports)"
    )
    config.addinivalue_line("markers", "slow: over ~30 s per module; left out of the floor run")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.suffix == ".py" and touches_litellm(item.path):
            item.add_marker(pytest.mark.litellm)
        if item.path.name in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


def touches_litellm(path: Path) -> bool:
    """Whether the test module at ``path`` falls under the ``litellm`` rule above."""
    return _module_touches(_module_name(path), path.resolve(), frozenset())


def _module_name(path: Path) -> str:
    try:
        relative = path.resolve().relative_to(ROOT).with_suffix("")
    except ValueError:  # a module outside the repository (pytester): no package to resolve in
        return path.stem
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def _module_touches(name: str, path: Path, visiting: frozenset[str]) -> bool:
    for imported in _imports(name, path):
        if any(imported == prefix or imported.startswith(f"{prefix}.") for prefix in LITELLM_PATHS):
            return True
        helper = _helper_file(imported)
        if (
            helper is not None
            and imported not in visiting | {name}
            and _module_touches(imported, helper, visiting | {name})
        ):
            return True
    return False


def _helper_file(name: str) -> Path | None:
    """The file of a module under tests/ (not followed: NOT_FOLLOWED), or None."""
    if not name.startswith("tests.") or name in NOT_FOLLOWED:
        return None
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def _imports(name: str, path: Path) -> tuple[str, ...]:
    """Every dotted name the module imports or reads from ``aiecs_llm``, resolved."""
    return tuple(_walk_imports(name, path))


def _walk_imports(name: str, path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    bound: dict[str, str] = {}  # a name `import aiecs_llm...` binds -> the module it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
                if alias.name.split(".", 1)[0] == "aiecs_llm":
                    bound[alias.asname or "aiecs_llm"] = alias.name if alias.asname else "aiecs_llm"
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            yield module
            for alias in node.names:
                yield _exported(f"{module}.{alias.name}")
        elif isinstance(node, ast.Attribute):
            root, _, rest = (_dotted(node) or "").partition(".")
            if root in bound:
                yield _exported(f"{bound[root]}.{rest}")


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else None
    return None


def _exported(name: str) -> str:
    """``aiecs_llm.X`` for a public name X is the module that defines X; anything else as is."""
    package, _, public = name.partition(".")
    if package != "aiecs_llm" or "." in public:
        return name
    import aiecs_llm  # cheap: the package loads its public names on first use

    module = aiecs_llm._EXPORTS.get(public)  # our own package's table of public names
    return f"{module}.{public}" if module else name
