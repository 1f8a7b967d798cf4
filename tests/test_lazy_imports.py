"""The package and the command line load only what they use: ``import aiecs_llm`` and
``aiecs-llm --help`` stay fast because neither imports pydantic, structlog or LiteLLM.
"""

import subprocess
import sys

_PROBE = (
    "import sys\n"
    "{statement}\n"
    "heavy = ('litellm', 'openai', 'pydantic', 'pydantic_settings', 'structlog', 'aiohttp')\n"
    "print(','.join(m for m in heavy if m in sys.modules))\n"
)


def _heavy_modules_after(statement: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE.format(statement=statement)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""


def test_import_loads_no_dependency():
    assert _heavy_modules_after("import aiecs_llm") == ""


def test_help_loads_no_dependency():
    statement = (
        "from aiecs_llm.cli.main import main\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['--help']) == 0\n"
    )
    assert _heavy_modules_after(statement) == ""


def test_public_names_load_on_first_access():
    statement = "import aiecs_llm\nassert aiecs_llm.LLMMessage('user', 'hi').content == 'hi'"
    assert "pydantic" in _heavy_modules_after(statement)
