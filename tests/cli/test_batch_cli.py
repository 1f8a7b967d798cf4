"""``aiecs-llm batch``: input checks before anything is sent, durable output, resume after a
kill, retried errors, compaction."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from aiecs_llm.cli import batch_run as batch_cli
from tests.fake_provider import FakeProviderServer, Reply

MODEL = "openai/gpt-4o-mini"
ACTUAL_COST = 22 * 0.15e-6 + 8 * 0.60e-6  # the fake server's default answer on gpt-4o-mini


@pytest.fixture
def provider_server(monkeypatch):
    with FakeProviderServer() as running:
        monkeypatch.setenv("OPENAI_BASE_URL", running.openai_base)
        yield running


def write_input(path, n: int, **extra) -> list[str]:
    ids = [f"q{i:03d}" for i in range(n)]
    path.write_text(
        "".join(json.dumps({"id": i, "prompt": f"Say {i}.", **extra}) + "\n" for i in ids)
    )
    return ids


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    batch_cli.add_arguments(parser)
    return batch_cli.run(parser.parse_args([str(a) for a in argv]))


def output_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- input checks ---------------------------------------------------------------------------


def test_a_bad_line_is_named_and_nothing_is_sent(provider_server, tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "a", "prompt": "hi"}\n\n{"id": "b", "prompt": "hi"\n')
    out = tmp_path / "out.jsonl"
    assert run(source, "-o", out, "-m", MODEL) == 2
    err = capsys.readouterr().err
    assert f"{source}:3: " in err
    assert "JSON" in err
    assert "nothing was sent" in err
    assert provider_server.requests == []
    assert not out.exists()


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ('["a list"]', "object"),
        ('{"prompt": "hi"}', "id"),
        ('{"id": 7, "prompt": "hi"}', "id"),
        ('{"id": "", "prompt": "hi"}', "id"),
        ('{"id": "x"}', "exactly one"),
        ('{"id": "x", "prompt": "hi", "messages": [{"role": "user", "content": "hi"}]}',
         "exactly one"),
        ('{"id": "x", "prompt": "   "}', "blank"),
        ('{"id": "x", "messages": []}', "messages"),
        ('{"id": "x", "messages": [{"role": "robot", "content": "hi"}]}', "messages.0.role"),
        ('{"id": "x", "messages": [{"role": "user"}]}', "content"),
        ('{"id": "x", "prompt": "hi", "temprature": 0}', "temprature"),
        ('{"id": "x", "prompt": "hi", "temperature": 3}', "temperature"),
        ('{"id": "x", "prompt": "hi", "temperature": "0.5"}', "temperature"),
        ('{"id": "x", "prompt": "hi", "max_tokens": 0}', "max_tokens"),
        ('{"id": "x", "prompt": "hi", "max_tokens": 1.5}', "max_tokens"),
        ('{"id": "x", "prompt": "hi", "model": 4}', "model"),
    ],
)  # fmt: skip
def test_each_kind_of_bad_line(provider_server, tmp_path, capsys, line, says):
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "ok", "prompt": "hi"}\n' + line + "\n")
    assert run(source, "-o", tmp_path / "out.jsonl", "-m", MODEL) == 2
    err = capsys.readouterr().err
    assert f"{source}:2: " in err
    assert says in err
    assert provider_server.requests == []


def test_duplicate_ids_are_refused(provider_server, tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": i, "prompt": "hi"}) + "\n" for i in "abcb"))
    assert run(source, "-o", tmp_path / "out.jsonl", "-m", MODEL) == 2
    assert "in.jsonl:4: duplicate id 'b' (first on line 2)" in capsys.readouterr().err
    assert provider_server.requests == []


@pytest.mark.parametrize(
    "options",
    [("--concurrency", "0"), ("--temperature", "2.5"), ("--max-tokens", "0")],
)
def test_bad_options_exit_2(provider_server, tmp_path, options):
    write_input(tmp_path / "in.jsonl", 2)
    assert run(tmp_path / "in.jsonl", "-o", tmp_path / "out.jsonl", "-m", MODEL, *options) == 2
    assert provider_server.requests == []


def test_unusable_files_exit_2(provider_server, tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    write_input(source, 2)
    assert run(tmp_path / "missing.jsonl", "-o", tmp_path / "out.jsonl") == 2
    assert "cannot read" in capsys.readouterr().err
    assert run(source, "-o", source) == 2
    assert "must not be the input" in capsys.readouterr().err
    foreign = tmp_path / "foreign.jsonl"
    foreign.write_text('{"id": "a", "status": "ok"}\n{"name": "not ours"}\n')
    assert run(source, "-o", foreign) == 2
    assert "foreign.jsonl:2: not a result line" in capsys.readouterr().err
    assert provider_server.requests == []


# -- running --------------------------------------------------------------------------------


def test_a_run_writes_one_line_per_item_in_input_order(provider_server, tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"id": "a", "prompt": "One?"}\n'
        '{"id": "b", "messages": [{"role": "system", "content": "Own."},'
        ' {"role": "user", "content": "Two?"}], "temperature": 0.1}\n'
        '{"id": "c", "prompt": "Three?", "max_tokens": 5}\n'
    )
    out = tmp_path / "out.jsonl"
    code = run(source, "-o", out, "-m", MODEL, "--system", "Be brief.", "--max-tokens", "50",
               "--temperature", "0", "--concurrency", "1")  # fmt: skip
    assert code == 0
    lines = output_lines(out)
    assert [line["id"] for line in lines] == ["a", "b", "c"]
    first = lines[0]
    assert first["status"] == "ok"
    assert first["content"] == "Hello there, how are you?"
    assert first["provider"] == "openai"
    assert first["model"].startswith("gpt-4o-mini")
    assert (first["prompt_tokens"], first["completion_tokens"]) == (22, 8)
    assert first["cost"] == pytest.approx(ACTUAL_COST)
    assert first["error"] is None
    sent = [request.json for request in provider_server.requests]
    assert sent[0]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent[1]["messages"][0] == {"role": "system", "content": "Own."}  # not doubled
    assert [body["temperature"] for body in sent] == [0, 0.1, 0]
    assert [body.get("max_tokens") or body.get("max_completion_tokens") for body in sent] == [
        50, 50, 5
    ]  # fmt: skip
    err = capsys.readouterr().err
    assert "batch: 3/3 done" in err
    assert "3 ok, 0 errors, 0 not run, 0 skipped" in err


def test_errors_are_retried_on_the_next_run(provider_server, tmp_path, capsys):
    ids = write_input(tmp_path / "in.jsonl", 4)
    out = tmp_path / "out.jsonl"
    provider_server.enqueue(Reply.ok(), Reply.invalid_api_key(), Reply.ok(), Reply.ok())
    assert run(tmp_path / "in.jsonl", "-o", out, "-m", MODEL, "--concurrency", "1") == 1
    lines = output_lines(out)
    assert [line["status"] for line in lines] == ["ok", "error", "ok", "ok"]
    assert lines[1]["error"]["class"] == "AuthenticationError"
    assert lines[1]["content"] is None
    assert "run the same command again" in capsys.readouterr().err

    assert run(tmp_path / "in.jsonl", "-o", out, "-m", MODEL) == 0
    assert len(provider_server.requests) == 5  # only the failed item again
    lines = output_lines(out)
    assert [line["id"] for line in lines] == ids
    assert {line["status"] for line in lines} == {"ok"}
    assert "1 ok, 0 errors, 0 not run, 3 skipped" in capsys.readouterr().err


def test_a_rerun_with_nothing_left_sends_nothing(provider_server, tmp_path, monkeypatch, capsys):
    ids = write_input(tmp_path / "in.jsonl", 3)
    out = tmp_path / "out.jsonl"
    assert run(tmp_path / "in.jsonl", "-o", out, "-m", MODEL) == 0
    monkeypatch.delenv("OPENAI_API_KEY")  # not needed when there is nothing to send
    assert run(tmp_path / "in.jsonl", "-o", out, "-m", MODEL) == 0
    assert len(provider_server.requests) == 3
    assert [line["id"] for line in output_lines(out)] == ids
    assert "0 ok, 0 errors, 0 not run, 3 skipped" in capsys.readouterr().err


def test_an_incomplete_last_line_is_dropped_and_redone(provider_server, tmp_path, capsys):
    ids = write_input(tmp_path / "in.jsonl", 5)
    out = tmp_path / "out.jsonl"
    done = [{"id": i, "status": "ok", "content": "earlier"} for i in (ids[3], ids[0])]
    out.write_text("".join(json.dumps(d) + "\n" for d in done) + '{"id": "q001", "status": "o')
    assert run(tmp_path / "in.jsonl", "-o", out, "-m", MODEL) == 0
    assert "dropped an incomplete last line" in capsys.readouterr().err
    assert len(provider_server.requests) == 3
    lines = output_lines(out)
    assert [line["id"] for line in lines] == ids
    assert lines[0]["content"] == "earlier"
    assert {line["status"] for line in lines} == {"ok"}


def test_a_budget_stop_marks_items_not_run(provider_server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LLM_DAILY_BUDGET", str(ACTUAL_COST * 2.5))
    ids = write_input(tmp_path / "in.jsonl", 6)
    out = tmp_path / "out.jsonl"
    assert run(tmp_path / "in.jsonl", "-o", out, "-m", MODEL, "--max-tokens", "1",
               "--concurrency", "1") == 1  # fmt: skip
    lines = output_lines(out)
    assert [line["id"] for line in lines] == ids
    statuses = [line["status"] for line in lines]
    answered = statuses.count("ok")
    assert statuses == ["ok"] * answered + ["not_run"] * (6 - answered)
    assert lines[answered]["error"]["class"] == "BudgetExceededError"
    assert lines[-1]["error"] is None
    assert len(provider_server.requests) == answered
    assert f"{answered} ok, 0 errors, {6 - answered} not run" in capsys.readouterr().err


def test_a_missing_key_exits_2(provider_server, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    write_input(tmp_path / "in.jsonl", 2)
    assert run(tmp_path / "in.jsonl", "-o", tmp_path / "out.jsonl", "-m", "anthropic") == 2
    assert "ANTHROPIC_API_KEY" in capsys.readouterr().err


# -- killed and resumed ---------------------------------------------------------------------


def batch_command(source, out) -> list[str]:
    return [sys.executable, "-m", "aiecs_llm.cli.batch_run", str(source), "-o", str(out),
            "-m", MODEL, "--concurrency", "3"]  # fmt: skip


def complete_lines(path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_a_killed_run_resumes_with_every_id_once(provider_server, tmp_path):
    ids = write_input(tmp_path / "in.jsonl", 30)
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "OPENAI_BASE_URL": provider_server.openai_base}
    # 18 answers, slowly, then none: the run cannot get past 18 items (let alone finish)
    # before the kill, however late this process gets round to it on a busy machine.
    provider_server.enqueue(*[Reply.ok(delay=0.25)] * 18)
    provider_server.default = Reply.hang()
    with (tmp_path / "first.err").open("w") as err:
        process = subprocess.Popen(
            batch_command(tmp_path / "in.jsonl", out), env=env, stderr=err, stdout=err
        )
        deadline = time.monotonic() + 120
        while complete_lines(out) < 15 and process.poll() is None:
            assert time.monotonic() < deadline, "the batch made no progress"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
    killed_with = complete_lines(out)
    assert process.returncode == -signal.SIGKILL, (tmp_path / "first.err").read_text()
    assert 15 <= killed_with <= 18
    before = len(provider_server.requests)

    provider_server.default = Reply.ok()
    second = subprocess.run(
        batch_command(tmp_path / "in.jsonl", out), env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    lines = output_lines(out)
    assert [line["id"] for line in lines] == ids
    assert {line["status"] for line in lines} == {"ok"}
    assert len(provider_server.requests) - before == 30 - killed_with  # done items not redone
    assert f"{killed_with} skipped" in second.stderr
    assert second.stdout == ""


def test_a_progress_bar_on_a_terminal(provider_server, tmp_path, monkeypatch, capsys):
    pytest.importorskip("rich")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    write_input(tmp_path / "in.jsonl", 3)
    assert run(tmp_path / "in.jsonl", "-o", tmp_path / "out.jsonl", "-m", MODEL) == 0
    err = capsys.readouterr().err
    assert "3/3" in err
    assert "batch: 3/3 done" not in err  # the bar, not the plain lines
    assert "3 ok, 0 errors" in err


def test_main_parses_its_own_arguments(provider_server, tmp_path, capsys):
    import structlog

    write_input(tmp_path / "in.jsonl", 2)
    try:
        code = batch_cli.main([str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "o.jsonl"),
                               "-m", MODEL])  # fmt: skip
    finally:
        structlog.reset_defaults()
    assert code == 0
    assert capsys.readouterr().out == ""
    assert len(output_lines(tmp_path / "o.jsonl")) == 2


def test_ctrl_c_keeps_the_finished_items_and_says_how_to_resume(provider_server, tmp_path):
    write_input(tmp_path / "in.jsonl", 30)
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "OPENAI_BASE_URL": provider_server.openai_base}
    # 8 answers, slowly, then none: Ctrl-C always lands with calls in flight and items left.
    provider_server.enqueue(*[Reply.ok(delay=0.25)] * 8)
    provider_server.default = Reply.hang()
    # A shell that started the suite in the background (nohup, `&`, some CI runners) hands it
    # SIGINT ignored, and a child inherits that; a user's terminal does not. A handled signal
    # is reset to the default at exec, so the child starts as it would from a terminal.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen(
            batch_command(tmp_path / "in.jsonl", out), env=env, stderr=subprocess.PIPE, text=True
        )
    finally:
        signal.signal(signal.SIGINT, inherited)
    deadline = time.monotonic() + 120
    while complete_lines(out) < 5 and process.poll() is None:
        assert time.monotonic() < deadline, "the batch made no progress"
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "run the same command again to resume" in err
    lines = output_lines(out)  # every line complete and parseable
    assert 5 <= len(lines) <= 8
    assert {line["status"] for line in lines} == {"ok"}
