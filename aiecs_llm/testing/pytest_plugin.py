"""pytest plugin: offline CI for a service's own LLM calls, loaded through the ``pytest11``
entry point when aiecs-llm is installed.

Mark a test (or request the fixture) and its provider traffic is replayed from a cassette::

    @pytest.mark.llm_cassette  # tests/cassettes/<test module>/<test name>.yaml
    async def test_summary(): ...


    @pytest.mark.llm_cassette("shared/summary.yaml")  # relative to the test file
    async def test_summary_again(): ...

``pytest --llm-record=new`` (real keys) records the cassettes and calls that are missing,
``--llm-record=all`` re-records every cassette used, and the default ``--llm-record=none``
replays only: a missing cassette or an unrecorded call fails the test with a
``ConfigurationError`` naming the file and the request. Requests match on method, URL and the
body fields that decide the answer (:data:`aiecs_llm.testing.BODY_FIELDS`).

Loading the plugin costs next to nothing: LiteLLM and vcrpy are imported by the first test that
uses a cassette, never by a run that does not.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

if TYPE_CHECKING:
    from aiecs_llm.testing import RecordMode

RECORD_MODES: Final[dict[str, RecordMode]] = {"none": "none", "new": "new_episodes", "all": "all"}
"""``--llm-record`` values and the vcrpy record modes they stand for."""
REPLAY_KEY: Final = "replay-without-a-key"
"""Set for each provider key variable that is unset during a replay: clients refuse to start
without a key, and a replayed request carries none."""
CASSETTE_DIR_INI: Final = "llm_cassette_dir"
_UNRECORDED = "Can't play back this request"


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--llm-record`` and the ``llm_cassette_dir`` ini option."""
    group = parser.getgroup("aiecs-llm", "aiecs-llm cassettes")
    group.addoption(
        "--llm-record",
        choices=tuple(RECORD_MODES),
        default="none",
        help="none: replay only (default); new: record missing cassettes and calls (real keys); "
        "all: re-record every cassette used",
    )
    parser.addini(
        CASSETTE_DIR_INI,
        "folder of the cassettes, relative to each test file (default: cassettes)",
        default="cassettes",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Declare the marker, so ``--strict-markers`` suites accept it."""
    config.addinivalue_line(
        "markers",
        "llm_cassette(path=None): replay (or with --llm-record, record) the test's LLM calls; "
        "path is relative to the test file, default <llm_cassette_dir>/<module>/<test>.yaml",
    )


@pytest.fixture
def llm_record_mode(request: pytest.FixtureRequest) -> str:
    """The ``--llm-record`` value: ``none``, ``new`` or ``all``."""
    mode: str = request.config.getoption("--llm-record")
    return mode


@pytest.fixture
def llm_cassette_path(request: pytest.FixtureRequest) -> Path:
    """The test's cassette: the ``llm_cassette`` marker's path, else
    ``<llm_cassette_dir>/<module>/<test name>.yaml`` beside the test file.
    """
    here = request.path.parent
    marker = request.node.get_closest_marker("llm_cassette")
    if marker is not None and marker.args:
        return here / str(marker.args[0])
    folder = here / str(request.config.getini(CASSETTE_DIR_INI))
    name = request.node.name.replace("/", "_")
    return folder / request.path.stem / f"{name}.yaml"


@pytest.fixture
def llm_cassette(
    llm_cassette_path: Path, llm_record_mode: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """Run the test inside its cassette; yields vcrpy's ``Cassette`` (``play_count``, ...)."""
    from aiecs_llm.errors import ConfigurationError
    from aiecs_llm.testing import LLM_MATCH_ON, use_cassette

    if llm_record_mode == "none":
        if not llm_cassette_path.exists():
            raise ConfigurationError(
                f"no cassette at {llm_cassette_path}: record it once with real keys "
                "(pytest --llm-record=new) and commit it"
            )
        _placeholder_keys(monkeypatch)
    with use_cassette(
        llm_cassette_path, record_mode=RECORD_MODES[llm_record_mode], match_on=LLM_MATCH_ON
    ) as cassette:
        yield cassette


@pytest.fixture(autouse=True)
def _llm_cassette_marker(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("llm_cassette") is not None:
        request.getfixturevalue("llm_cassette")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Tell how to fix a call that is not in its cassette, next to vcrpy's explanation."""
    report = yield
    if call.excinfo is not None and _UNRECORDED in str(call.excinfo.value):
        report.sections.append(
            (
                "aiecs-llm cassette",
                "This LLM call is not in the cassette (the request and the cassette file are "
                "named above).\nIf the call is meant to change, record it with real keys: "
                f"pytest --llm-record=new {item.nodeid}",
            )
        )
    return report


def _placeholder_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiecs_llm.client.named import PROVIDERS

    for client in PROVIDERS.values():
        if not os.environ.get(client.spec.api_key_env):
            monkeypatch.setenv(client.spec.api_key_env, REPLAY_KEY)
