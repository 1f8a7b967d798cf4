"""The project's task runner: CI runs exactly these sessions (see .ci/run)."""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

# The interpreter nox runs on, unless overridden: a session must never be skipped for a
# missing interpreter, or CI would pass without testing anything.
PYTHON = os.environ.get("AIECS_LLM_NOX_PYTHON")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Ruff: lint and formatting."""
    session.install("ruff>=0.17,<0.18")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package (and this file)."""
    session.install("-e", ".[dev]")
    session.run("mypy")
    session.run("mypy", "--strict", "noxfile.py", "--ignore-missing-imports")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite, offline: cassettes and servers on 127.0.0.1 only."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs, env={"LITELLM_LOCAL_MODEL_COST_MAP": "True"})


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The offline tour: recorded conversations replayed through the real client stack."""
    session.install(".")
    session.run("aiecs-llm", "demo")


@nox.session(python=PYTHON)
def record(session: nox.Session) -> None:
    """Re-record cassettes: against the local wire-format server, or `-- --live` with real keys."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "tests.fake_provider.record", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Throughput, latency, CPU, start-up and memory against raw LiteLLM and the providers'
    official SDKs (docs/benchmarks.md).

    Local traffic only (a server on 127.0.0.1). `nox -s bench -- --quick` for a short run.
    """
    session.install("-e", ".[test,bench]")
    session.run(
        "python", "bench/run.py", *session.posargs, env={"LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    )


@nox.session(python=PYTHON)
def examples(session: nox.Session) -> None:
    """Every script in examples/, run offline (recordings replayed) and its output checked."""
    session.install("-e", ".[test]")
    session.run(
        "pytest",
        "tests/test_examples.py",
        *session.posargs,
        env={"LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    )


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """The documentation site (mkdocs, strict: a broken link or page fails), into site/."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", *session.posargs)
