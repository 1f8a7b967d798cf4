import pkgutil
import subprocess
import sys

import aiecs_llm


def test_all_lists_exactly_the_public_names():
    assert len(aiecs_llm.__all__) == len(set(aiecs_llm.__all__))
    submodules = {module.name for module in pkgutil.iter_modules(aiecs_llm.__path__)}
    public = {name for name in dir(aiecs_llm) if not name.startswith("_")}
    assert public - submodules == set(aiecs_llm.__all__)


def test_every_exported_name_resolves():
    for name in aiecs_llm.__all__:
        assert getattr(aiecs_llm, name) is not None


def test_import_does_not_load_litellm():
    code = (
        "import sys, aiecs_llm\n"
        "heavy = [m for m in ('litellm', 'openai', 'tiktoken', 'tokenizers') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""


def test_package_is_typed():
    from importlib.resources import files

    assert files("aiecs_llm").joinpath("py.typed").is_file()


def test_what_the_client_constructor_accepts_is_importable_from_the_package():
    from aiecs_llm.accounting.alerts import AlertManager
    from aiecs_llm.accounting.budget import BudgetController
    from aiecs_llm.accounting.cache import ResponseCache
    from aiecs_llm.accounting.ledger import UsageLedger
    from aiecs_llm.accounting.monitor import LLMMonitor

    for name, value in {
        "LLMMonitor": LLMMonitor,
        "UsageLedger": UsageLedger,
        "BudgetController": BudgetController,
        "AlertManager": AlertManager,
        "ResponseCache": ResponseCache,
    }.items():
        assert getattr(aiecs_llm, name) is value
        assert name in aiecs_llm.__all__
