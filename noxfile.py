"""The project's task runner: CI runs exactly these sessions (see .ci/run)."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import nox
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

nox.options.sessions = ["lint", "typecheck", "tests", "tests_litellm_floor"]
nox.options.reuse_existing_virtualenvs = True

# The interpreter nox runs on, unless overridden: a session must never be skipped for a
# missing interpreter, or CI would pass without testing anything.
PYTHON = os.environ.get("AIECS_LLM_NOX_PYTHON")
PYPROJECT = Path(__file__).resolve().parent / "pyproject.toml"
TEST_ENV = {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}

# The tests that touch LiteLLM (marker set by tests/conftest.py from each module's imports),
# without the `slow` modules (load test, subprocess suites) that `tests` runs on the newest.
LITELLM_TESTS = ("-m", "litellm and not slow")
# A release nothing here may install, even when asked: 1.82.7 and 1.82.8 were compromised.
NEVER_INSTALL = frozenset({"1.82.7", "1.82.8"})
# Where `litellm_floor_search` starts by default: the oldest release after the pulled 1.107.x.
SEARCH_FROM = "1.108.0"


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
    session.run("pytest", *session.posargs, env=TEST_ENV)


@nox.session(python=PYTHON)
def tests_litellm_floor(session: nox.Session) -> None:
    """The tests that touch LiteLLM on the lowest LiteLLM release pyproject.toml allows.

    `tests` runs the newest release, so CI covers both ends of the declared range. The floor is
    read from the `litellm>=` bound in pyproject.toml. `AIECS_LLM_LITELLM=1.2.3` tries another
    release of the range; pytest arguments after `--` come last (`-- -m litellm` adds the slow
    modules, `-- -m ""` runs the whole suite).
    """
    version = os.environ.get("AIECS_LLM_LITELLM") or litellm_floor()
    session.install("-e", ".[test]", f"litellm=={_installable(version)}")
    _require_litellm(session, version)
    session.run("pytest", *LITELLM_TESTS, *session.posargs, env=TEST_ENV)


@nox.session(python=PYTHON)
def litellm_floor_search(session: nox.Session) -> None:
    """Bisect LiteLLM releases for the lowest on which the LiteLLM tests pass: the re-check of
    the `litellm>=` bound in pyproject.toml, in one command (about 3 minutes per release tried).

    Searches from `AIECS_LLM_LITELLM_FROM` (default 1.108.0) up to the newest release the
    upper bound allows, assuming that once a release passes the newer ones do too (each release
    tried is printed, so a table can be checked by hand). `LLM_FAST_TRANSPORT` and pytest
    arguments after `--` apply to every run. It prints the floor to write; it changes nothing.
    """
    requirement = _litellm_requirement()
    start = Version(os.environ.get("AIECS_LLM_LITELLM_FROM") or SEARCH_FROM)
    upper = SpecifierSet(",".join(str(s) for s in requirement.specifier if s.operator != ">="))
    listing = session.run("pip", "index", "versions", "litellm", silent=True)
    found = re.search(r"Available versions: (.+)", str(listing))
    if found is None:
        session.error(f"`pip index versions litellm` listed no releases:\n{listing}")
    candidates = sorted(
        (
            Version(text)
            for text in found.group(1).split(", ")
            if text not in NEVER_INSTALL and not Version(text).is_prerelease
        ),
    )
    candidates = [v for v in candidates if v >= start and upper.contains(v)]
    if not candidates:
        session.error(f"no LiteLLM release from {start} satisfies {upper}")
    session.install("-e", ".[test]")
    results: dict[Version, tuple[bool, str]] = {}

    def passes(index: int) -> bool:
        version = candidates[index]
        session.log(f"LiteLLM {version}: installing and running the LiteLLM tests")
        session.install(f"litellm=={_installable(str(version))}")
        _require_litellm(session, str(version))
        output = session.run(
            "pytest",
            *LITELLM_TESTS,
            "-q",
            "-p",
            "no:cacheprovider",
            *session.posargs,
            env=TEST_ENV,
            silent=True,
            success_codes=[0, 1, 2],  # 1: tests failed, 2: collection errors
        )
        results[version] = _outcome(str(output))
        session.log(f"LiteLLM {version}: {results[version][1]}")
        return results[version][0]

    # The newest must pass; then bisect between a failing `low` and a passing `high`.
    low, high = -1, len(candidates) - 1
    if passes(high) and high > 0:
        if passes(0):
            high = 0
        else:
            low = 0
        while high - low > 1:
            middle = (low + high) // 2
            if passes(middle):
                high = middle
            else:
                low = middle
    session.log("release | result")
    for version, (_ok, summary) in sorted(results.items()):
        session.log(f"{version} | {summary}")
    if not results[candidates[high]][0]:
        session.error(f"the newest release allowed ({candidates[high]}) fails the LiteLLM tests")
    below = f" ({candidates[low]} fails)" if low >= 0 else " (the oldest release searched)"
    session.log(f"lowest passing release: {candidates[high]}{below}")
    session.log(f"pyproject.toml declares: litellm{requirement.specifier}")


def litellm_floor() -> str:
    """The lowest LiteLLM release pyproject.toml allows: the version of its `litellm>=` bound."""
    floors = [s.version for s in _litellm_requirement().specifier if s.operator == ">="]
    if len(floors) != 1:
        raise ValueError("pyproject.toml must bound litellm from below with exactly one >=")
    return floors[0]


def _litellm_requirement() -> Requirement:
    with PYPROJECT.open("rb") as file:
        dependencies: list[str] = tomllib.load(file)["project"]["dependencies"]
    for line in dependencies:
        requirement = Requirement(line)
        if requirement.name == "litellm":
            return requirement
    raise ValueError("pyproject.toml does not depend on litellm")


def _installable(version: str) -> str:
    if version in NEVER_INSTALL:
        raise ValueError(f"LiteLLM {version} was a compromised release: never install it")
    return version


def _require_litellm(session: nox.Session, version: str) -> None:
    """Fail unless the session's LiteLLM is exactly ``version`` (pip may resolve otherwise)."""
    installed = session.run(
        "python", "-c", "import importlib.metadata as m; print(m.version('litellm'))", silent=True
    )
    if str(installed).strip() != version:
        session.error(f"LiteLLM {version} was asked for, {str(installed).strip()} is installed")


def _outcome(output: str) -> tuple[bool, str]:
    """Whether a pytest run passed, its counts and its first failure, from its output."""
    lines = output.strip().splitlines()
    counts = lines[-1].strip("= ") if lines else "no output"
    summary = [i for i, line in enumerate(lines) if "short test summary info" in line]
    failures = [
        line
        for line in lines[summary[-1] if summary else len(lines) :]
        if line.startswith(("FAILED ", "ERROR "))
    ]
    passed = " passed" in counts and not re.search(r"\d+ (failed|errors?)\b", counts)
    first = f"; first: {failures[0][:200]}" if failures else ""
    return passed, counts + first


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
    session.run("python", "bench/run.py", *session.posargs, env=TEST_ENV)


@nox.session(python=PYTHON)
def examples(session: nox.Session) -> None:
    """Every script in examples/, run offline (recordings replayed) and its output checked."""
    session.install("-e", ".[test]")
    session.run("pytest", "tests/test_examples.py", *session.posargs, env=TEST_ENV)


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """The documentation site (mkdocs, strict: a broken link or page fails), into site/."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", *session.posargs)
