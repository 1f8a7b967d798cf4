"""The aiecs-llm command: run in-process through main() against the local fake server, and in
subprocesses where the process itself is the subject (imports, timing, python -m).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import resource
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import structlog

from aiecs_llm.accounting.ledger import UsageLedger
from aiecs_llm.accounting.records import RequestRecord
from aiecs_llm.cli import models as models_command
from aiecs_llm.cli.main import COMMANDS, main
from aiecs_llm.config.secrets import fingerprint
from tests.conftest import FAKE_KEYS, ROOT
from tests.fake_provider import DEFAULT_TEXT, FakeProviderServer, Reply

KEY = "test-key-cli-0123456789abcdef"
MODEL = "openai/gpt-4o-mini"
# The fake server reports 22 prompt and 8 completion tokens; gpt-4o-mini costs $0.15 and $0.60
# per million: 22 * 0.15e-6 + 8 * 0.60e-6 = 8.1e-6.
ACCOUNTING = re.compile(
    r"^model=openai/gpt-4o-mini\S* tokens_in=22 tokens_out=8 cost=\$0\.0000081 latency_ms=\d+"
)
HEAVY_MODULES = ("litellm", "aiohttp", "openai", "prometheus_client", "tiktoken")


@pytest.fixture
def openai_server(server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return server


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()  # what fixtures printed (the ledger's debug event) is not the command's
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    config = tmp_path / "llm.toml"
    config.write_text(text)
    monkeypatch.setenv("LLM_CONFIG_FILE", str(config))


# -- chat ------------------------------------------------------------------------------------


def test_chat_prints_the_answer_then_one_accounting_line(openai_server, capsys):
    code, out, err = run_cli(capsys, "chat", "Say hello", "-m", MODEL)
    assert code == 0
    assert out == DEFAULT_TEXT + "\n"
    assert len(err.splitlines()) == 1
    assert ACCOUNTING.match(err)
    assert "first_chunk_ms" not in err
    (request,) = openai_server.requests
    assert request.json["messages"] == [{"role": "user", "content": "Say hello"}]


def test_chat_sends_system_temperature_and_max_tokens(openai_server, capsys):
    code, _, _ = run_cli(
        capsys, "chat", "Hi", "-m", MODEL, "--system", "Be brief.", "--temperature", "0.2",
        "--max-tokens", "50",
    )  # fmt: skip
    assert code == 0
    sent = openai_server.requests[0].json
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert (sent["temperature"], sent["max_tokens"]) == (0.2, 50)


def test_chat_uses_llm_default_model(openai_server, capsys, monkeypatch):
    monkeypatch.setenv("LLM_DEFAULT_MODEL", MODEL)
    code, out, _ = run_cli(capsys, "chat", "Hi")
    assert code == 0
    assert out == DEFAULT_TEXT + "\n"
    assert openai_server.requests[0].model == "gpt-4o-mini"


class _Recorder:
    """A stdout that remembers each write and flush."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def write(self, text: str) -> int:
        self.events.append(text)
        return len(text)

    def flush(self) -> None:
        self.events.append("<flush>")


def test_chat_stream_writes_chunks_as_they_arrive(openai_server, capsys, monkeypatch):
    openai_server.enqueue(Reply.ok("one two three four", chunks=4))
    stdout = _Recorder()
    monkeypatch.setattr(sys, "stdout", stdout)
    code = main(["chat", "Count", "-m", MODEL, "--stream"])
    err = capsys.readouterr().err
    assert code == 0
    assert "".join(e for e in stdout.events if e != "<flush>") == "one two three four\n"
    chunks = [e for i, e in enumerate(stdout.events[:-1]) if stdout.events[i + 1] == "<flush>"]
    assert len(chunks) >= 4  # each chunk flushed on its own
    assert ACCOUNTING.match(err)
    assert re.search(r" first_chunk_ms=\d+$", err.strip())
    assert openai_server.requests[0].stream


def test_chat_error_is_one_line_with_exit_1_and_no_key(openai_server, capsys):
    openai_server.enqueue(Reply.invalid_api_key())
    code, out, err = run_cli(capsys, "chat", "Hi", "-m", MODEL)
    assert code == 1
    assert out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith("aiecs-llm: AuthenticationError: ")
    assert "Traceback" not in err
    assert KEY not in err


def test_chat_debug_shows_the_traceback(openai_server, capsys):
    openai_server.enqueue(Reply.invalid_api_key())
    code, _, err = run_cli(capsys, "--debug", "chat", "Hi", "-m", MODEL)
    assert code == 1
    assert "Traceback (most recent call last)" in err
    assert err.splitlines()[-1].startswith("aiecs-llm: AuthenticationError: ")
    assert KEY not in err


def test_debug_is_accepted_after_the_command(openai_server, capsys):
    openai_server.enqueue(Reply.invalid_api_key())
    code, _, err = run_cli(capsys, "chat", "Hi", "-m", MODEL, "--debug")
    assert code == 1
    assert "Traceback" in err


def test_chat_without_any_model_is_a_configuration_error(capsys):
    code, _, err = run_cli(capsys, "chat", "Hi")
    assert code == 2
    assert len(err.splitlines()) == 1
    assert "LLM_DEFAULT_MODEL" in err


def test_chat_refuses_an_empty_prompt(capsys):
    code, _, err = run_cli(capsys, "chat", "  ", "-m", MODEL)
    assert (code, err) == (2, "aiecs-llm: ConfigurationError: the prompt is empty\n")


def test_usage_errors_are_one_line_with_exit_2(capsys):
    code, out, err = run_cli(capsys, "cost", "-m", MODEL)
    assert (code, out) == (2, "")
    assert err == (
        "aiecs-llm cost: error: one of the arguments --input-tokens --text is required "
        "(see aiecs-llm cost --help)\n"
    )


def test_chat_end_to_end_in_a_subprocess(server):
    env = {**os.environ, "OPENAI_BASE_URL": server.openai_base, "OPENAI_API_KEY": KEY}
    done = subprocess.run(
        [sys.executable, "-m", "aiecs_llm", "chat", "Say hello", "-m", MODEL, "--stream"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == DEFAULT_TEXT + "\n"
    assert len(done.stderr.splitlines()) == 1
    assert ACCOUNTING.match(done.stderr)
    assert "first_chunk_ms=" in done.stderr


# -- models ----------------------------------------------------------------------------------


def line_for(out: str, model: str) -> str:
    return next(line for line in out.splitlines() if line.split(maxsplit=1)[0] == model)


def test_models_lists_context_window_and_prices_offline(capsys):
    code, out, _ = run_cli(capsys, "models", "--provider", "openai")
    assert code == 0
    assert re.match(r"openai/gpt-4o-mini +128,000 +\$0\.15 +\$0\.60", line_for(out, MODEL))
    assert not any(line.startswith(("anthropic/", "gemini/")) for line in out.splitlines())


def test_models_marks_deprecated_models_and_their_successors(capsys, monkeypatch):
    monkeypatch.setattr(models_command, "_today", lambda: date(2026, 11, 25))
    code, out, _ = run_cli(capsys, "models")
    assert code == 0
    assert line_for(out, "openai/gpt-4").endswith(
        "DEPRECATED since 2026-10-23, successor openai/gpt-5.6-sol"
    )
    assert line_for(out, MODEL).endswith("deprecated from 2027-01-14, successor openai/gpt-6-luna")
    assert line_for(out, "anthropic/claude-haiku-4-5").endswith("$5.00")  # no deprecation
    assert "gemini/gemini-2.5-flash" in out


def test_models_json(capsys, monkeypatch):
    monkeypatch.setattr(models_command, "_today", lambda: date(2026, 11, 25))
    code, out, _ = run_cli(capsys, "models", "--provider", "openai", "--json")
    assert code == 0
    by_model = {entry["model"]: entry for entry in json.loads(out)}
    mini = by_model[MODEL]
    assert (mini["context_window"], mini["input_price_per_million"]) == (128_000, 0.15)
    assert (mini["output_price_per_million"], mini["deprecated"]) == (0.6, False)
    assert by_model["openai/gpt-4"]["deprecated"] is True
    assert by_model["openai/gpt-4"]["successor_model"] == "openai/gpt-5.6-sol"


def test_models_follow_the_configured_list(capsys, tmp_path, monkeypatch):
    write_config(tmp_path, monkeypatch, '[providers.openai]\nmodels = ["gpt-4o-mini", "mine"]\n')
    code, out, _ = run_cli(capsys, "models", "--provider", "openai")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[1:]] == [MODEL, "openai/mine"]
    assert line_for(out, "openai/mine").endswith("not in LiteLLM's map")


def test_models_unknown_provider(capsys):
    code, _, err = run_cli(capsys, "models", "--provider", "nope")
    assert code == 2
    assert "unknown provider 'nope'" in err


# -- cost ------------------------------------------------------------------------------------


def estimate_line(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("estimate"))


def test_cost_from_token_counts(capsys):
    code, out, _ = run_cli(
        capsys, "cost", "-m", MODEL, "--input-tokens", "1000", "--output-tokens", "500"
    )
    assert code == 0
    # 1000 * $0.15 / 1M + 500 * $0.60 / 1M = $0.00015 + $0.0003
    assert estimate_line(out) == "estimate  $0.00045"
    assert "$0.15 input, $0.60 output per 1M tokens (LiteLLM prices)" in out


def test_cost_counts_a_file_with_the_models_tokenizer(capsys, tmp_path):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("hello" + " hello" * 99)  # o200k: "hello" and " hello" are one token each
    code, out, _ = run_cli(
        capsys, "cost", "-m", MODEL, "--text", str(prompt), "--output-tokens", "200"
    )
    assert code == 0
    assert f"100 input (counted in {prompt} with the model's tokenizer) + 200 output" in out
    # 100 * $0.15 / 1M + 200 * $0.60 / 1M = $0.000015 + $0.00012
    assert estimate_line(out) == "estimate  $0.000135"


def test_cost_uses_the_configured_price(capsys, tmp_path, monkeypatch):
    write_config(tmp_path, monkeypatch, '[costs."gpt-4o-mini"]\ninput = 0.001\noutput = 0.002\n')
    code, out, _ = run_cli(
        capsys, "cost", "-m", MODEL, "--input-tokens", "1000", "--output-tokens", "500"
    )
    assert code == 0
    # per 1K: (1000 * 0.001 + 500 * 0.002) / 1000
    assert estimate_line(out) == "estimate  $0.002"
    assert "$1.00 input, $2.00 output per 1M tokens (config [costs] override)" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-m", MODEL, "--text", "/nonexistent/prompt.txt"], "cannot read /nonexistent/prompt.txt"),
        (["-m", "no-such-model-xyz", "--input-tokens", "5"], "no provider known for model"),
        (["-m", MODEL, "--input-tokens", "-5"], "argument --input-tokens: -5 is negative"),
    ],
)
def test_cost_errors(capsys, argv, message):
    code, _, err = run_cli(capsys, "cost", *argv)
    assert code == 2
    assert len(err.splitlines()) == 1
    assert message in err


# -- health ----------------------------------------------------------------------------------


def test_health_without_live_shows_fingerprints_never_keys(server, capsys):
    code, out, err = run_cli(capsys, "health", "--no-live")
    assert code == 0
    for provider, variable in (
        ("openai", "OPENAI_API_KEY"),
        ("anthropic", "ANTHROPIC_API_KEY"),
        ("google", "GOOGLE_AI_API_KEY"),
    ):
        assert re.search(rf"^{provider} +{fingerprint(FAKE_KEYS[variable])} +1 +not run", out, re.M)
    for key in FAKE_KEYS.values():
        assert key not in out + err
    assert server.requests == []


def test_health_json_without_live(capsys):
    code, out, _ = run_cli(capsys, "health", "--no-live", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["openai"]["key_fingerprint"] == fingerprint(FAKE_KEYS["OPENAI_API_KEY"])
    assert report["openai"]["live"] is None
    assert all(key not in out for key in FAKE_KEYS.values())


def point_every_provider_at(server, tmp_path, monkeypatch):
    write_config(
        tmp_path,
        monkeypatch,
        f'[providers.openai]\nbase_url = "{server.openai_base}"\n'
        f'[providers.anthropic]\nbase_url = "{server.anthropic_base}"\n'
        f'[providers.google]\nbase_url = "{server.gemini_base}"\n',
    )


def test_health_live_against_the_fake_server(server, capsys, tmp_path, monkeypatch):
    point_every_provider_at(server, tmp_path, monkeypatch)
    code, out, err = run_cli(capsys, "health")
    assert code == 0, err
    for provider in ("openai", "anthropic", "google"):
        assert re.search(rf"^{provider} +sha256:[0-9a-f]{{8}} +1 +ok +\d+ ms", out, re.M)
    assert len(server.requests) == 3
    assert all(key not in out + err for key in FAKE_KEYS.values())


def test_health_live_failure_exits_1(server, capsys, tmp_path, monkeypatch):
    point_every_provider_at(server, tmp_path, monkeypatch)
    server.enqueue(*[Reply.invalid_api_key()] * 3)
    code, out, err = run_cli(capsys, "health")
    assert code == 1
    assert out.count("FAILED") == 3
    assert err == "aiecs-llm: live check failed for openai, anthropic, google\n"


# -- usage -----------------------------------------------------------------------------------


def record(day: int, provider: str, model: str, cost: float, service: str) -> RequestRecord:
    return RequestRecord(
        started_at=datetime(2025, 6, day, 12, tzinfo=UTC),
        provider=provider,
        model=model,
        prompt_tokens=100,
        completion_tokens=10,
        cost=cost,
        tags={"service": service},
    )


@pytest.fixture
def ledger_file(tmp_path: Path) -> Path:
    path = tmp_path / "usage.db"
    with UsageLedger(path) as ledger:
        ledger.record(record(1, "openai", "gpt-4o-mini", 0.01, "billing"))
        ledger.record(record(1, "anthropic", "claude-sonnet-4-5", 0.02, "search"))
        ledger.record(record(2, "openai", "gpt-4o-mini", 0.03, "billing"))
    return path


def test_usage_table(capsys, ledger_file):
    code, out, _ = run_cli(capsys, "usage", "--db", str(ledger_file))
    assert code == 0
    assert out.splitlines()[0].split() == [
        "day", "provider", "model", "requests", "errors", "prompt_tokens", "completion_tokens",
        "cost",
    ]  # fmt: skip
    assert re.search(r"^2025-06-01 +anthropic +claude-sonnet-4-5 +1 .* \$0\.020000$", out, re.M)
    assert re.search(r"^TOTAL +3 +0 +300 +30 +\$0\.060000$", out, re.M)


def test_usage_csv_from_llm_usage_db(capsys, ledger_file, monkeypatch):
    monkeypatch.setenv("LLM_USAGE_DB", str(ledger_file))
    code, out, _ = run_cli(capsys, "usage", "--format", "csv", "--group-by", "tag:service")
    assert code == 0
    assert out.splitlines() == [
        "period,provider,model,tag,requests,errors,prompt_tokens,completion_tokens,cost",
        ",,,billing,2,0,200,20,0.04",
        ",,,search,1,0,100,10,0.02",
    ]


def test_usage_json_between_days(capsys, ledger_file):
    code, out, _ = run_cli(
        capsys, "usage", "--db", str(ledger_file), "--format", "json",
        "--since", "2025-06-02", "--until", "2025-06-02", "--group-by", "model",
    )  # fmt: skip
    assert code == 0
    report = json.loads(out)
    assert (report["total_requests"], report["total_cost"]) == (1, 0.03)
    assert [row["model"] for row in report["rows"]] == ["gpt-4o-mini"]


def test_usage_html_to_a_file(capsys, ledger_file, tmp_path):
    target = tmp_path / "report.html"
    code, out, err = run_cli(
        capsys, "usage", "--db", str(ledger_file), "--format", "html", "-o", str(target)
    )
    assert (code, out) == (0, "")
    assert err == f"wrote {target}: 3 requests, $0.06\n"
    page = target.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "claude-sonnet-4-5" in page


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "no usage ledger configured: set LLM_USAGE_DB or [ledger] path in the config file"),
        (["--db", "/nonexistent/usage.db"], "no usage ledger at /nonexistent/usage.db"),
        (["--db", "{db}", "--group-by", "day,week"], "group_by ['day', 'week']"),
        (["--db", "{db}", "--timezone", "Mars/Base"], "unknown timezone 'Mars/Base'"),
        (["--db", "{db}", "--since", "2025-06-03", "--until", "2025-06-01"], "--until is before"),
        (["--since", "June"], "argument --since: 'June' is not a date like 2025-01-31"),
    ],
)
def test_usage_errors(capsys, ledger_file, argv, message):
    code, _, err = run_cli(capsys, "usage", *(arg.format(db=ledger_file) for arg in argv))
    assert code == 2
    assert len(err.splitlines()) == 1
    assert message in err


# -- the command itself ----------------------------------------------------------------------


def test_an_unexpected_failure_is_still_one_line(capsys, monkeypatch):
    def explode(_args):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setitem(COMMANDS, "models", dataclasses.replace(COMMANDS["models"], run=explode))
    code, _, err = run_cli(capsys, "models")
    assert code == 1
    assert err == (
        "aiecs-llm: RuntimeError: boom second line (rerun with 'aiecs-llm --debug' for the "
        "traceback)\n"
    )


def test_litellm_log_lines_show_only_with_debug(capsys, caplog, monkeypatch):
    def noisy(_args):
        logging.getLogger("LiteLLM").warning("LoggingWorker: event loop changed")
        return 0

    monkeypatch.setitem(COMMANDS, "models", dataclasses.replace(COMMANDS["models"], run=noisy))
    assert run_cli(capsys, "models") == (0, "", "")
    assert caplog.records == []
    assert logging.getLogger("LiteLLM").level == logging.NOTSET
    assert run_cli(capsys, "models", "--debug")[0] == 0
    assert [record.message for record in caplog.records] == ["LoggingWorker: event loop changed"]


def test_main_leaves_the_logging_configuration_as_it_found_it(capsys):
    before = structlog.get_config()
    run_cli(capsys, "--debug", "cost", "-m", MODEL, "--input-tokens", "1")
    assert structlog.get_config() == before


def test_serve_rejects_a_port_out_of_range(capsys):
    code, _, err = run_cli(capsys, "serve", "--port", "70000")
    assert code == 2
    assert "argument --port: 70000 is not between 0 and 65535" in err


def test_help_lists_every_command(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    for name, command in COMMANDS.items():
        assert re.search(rf"^    {name} +{re.escape(command.summary[:30])}", out, re.M)


def test_each_command_help_has_an_example(capsys):
    for name in COMMANDS:
        code, out, _ = run_cli(capsys, name, "--help")
        assert code == 0
        assert f"examples:\n  aiecs-llm {name}" in out


def test_help_imports_neither_litellm_nor_aiohttp():
    script = (
        "import sys\nfrom aiecs_llm.cli.main import COMMANDS, main\n"
        "for argv in [['--help'], *([name, '--help'] for name in COMMANDS)]:\n"
        "    assert main(argv) == 0\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY_MODULES!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.splitlines()[-1] == "[]"

    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "aiecs_llm", "--help"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()]
    assert "aiecs_llm.cli.main" in imported
    assert not [name for name in imported if name.split(".")[0] in HEAVY_MODULES]


def console_script() -> Path:
    script = Path(sys.executable).with_name("aiecs-llm")
    if not script.exists():
        pytest.skip("the aiecs-llm console script is not installed in this environment")
    return script


def test_help_is_fast():
    # CPU time, not wall time: what the command costs, which other work on a busy machine
    # does not stretch. Importing LiteLLM alone takes about 5 s of CPU; the whole --help
    # about 0.15 s (the import test above is the exact guard).
    timings = []
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([console_script(), "--help"], capture_output=True, timeout=120, check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        timings.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    assert min(timings) < 1.5, timings


def test_python_dash_m_is_the_same_command():
    via_script = subprocess.run(
        [console_script(), "chat", "--help"], capture_output=True, text=True, check=True
    )
    via_module = subprocess.run(
        [sys.executable, "-m", "aiecs_llm", "chat", "--help"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    assert via_script.stdout == via_module.stdout
    bad_script = subprocess.run(
        [console_script(), "nope"], capture_output=True, text=True, check=False
    )
    bad_module = subprocess.run(
        [sys.executable, "-m", "aiecs_llm", "nope"], capture_output=True, text=True, check=False
    )
    assert bad_script.returncode == bad_module.returncode == 2
    assert bad_script.stderr == bad_module.stderr
    assert len(bad_module.stderr.splitlines()) == 1
