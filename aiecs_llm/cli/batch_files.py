"""The batch command's files: reading a JSONL input strictly, and writing results so that an
interrupted run loses nothing and a rerun completes it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from aiecs_llm.client.batch import BatchRequest, BatchResult
from aiecs_llm.types import LLMMessage

_MAX_REPORTED = 20  # input errors listed before the rest are only counted


class InputError(ValueError):
    """The input or output file cannot be used; nothing was sent."""


def read_input(
    path: Path,
    *,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
) -> list[BatchRequest]:
    """Every line of ``path`` as a ``BatchRequest``; raises ``InputError`` naming each bad
    line (``path:LINE: why``) before anything is sent. ``system`` goes before each
    conversation that has no system message; ``temperature`` and ``max_tokens`` are the
    defaults for lines that give none.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    requests: list[BatchRequest] = []
    problems: list[str] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = _Line.model_validate_json(line)
            messages = _conversation(item, system)
        except ValueError as exc:
            problems.append(f"{path}:{number}: {_reason(exc)}")
            continue
        if item.id in first_line:
            first = first_line[item.id]
            problems.append(f"{path}:{number}: duplicate id {item.id!r} (first on line {first})")
            continue
        first_line[item.id] = number
        requests.append(
            BatchRequest(
                item.id,
                messages,
                item.model,
                temperature if item.temperature is None else item.temperature,
                max_tokens if item.max_tokens is None else item.max_tokens,
            )
        )
    if problems:
        more = len(problems) - _MAX_REPORTED
        listed = problems[:_MAX_REPORTED] + ([f"... and {more} more"] if more > 0 else [])
        raise InputError("bad input, nothing was sent:\n  " + "\n  ".join(listed))
    return requests


def _conversation(item: _Line, system: str | None) -> list[LLMMessage]:
    messages = [LLMMessage("user", item.prompt)] if item.prompt is not None else []
    for index, message in enumerate(item.messages or ()):
        if set(message) != {"role", "content"}:
            raise ValueError(f'messages.{index} must have "role" and "content", and only those')
        try:
            messages.append(LLMMessage(message["role"], message["content"]))
        except ValidationError as exc:
            raise ValueError(f"messages.{index}.{_reason(exc)}") from None
    if system is not None and all(message.role != "system" for message in messages):
        messages.insert(0, LLMMessage("system", system))
    return messages


def _reason(exc: ValueError) -> str:
    if not isinstance(exc, ValidationError):
        return str(exc)
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    message = error["msg"]
    if error["type"] == "value_error":  # our own check: its message, without pydantic's prefix
        message = str(error.get("ctx", {}).get("error", message))
    elif error["type"] == "extra_forbidden":
        message = f"unknown field; a line may have {', '.join(_Line.model_fields)}"
    return f"{where}: {message}" if where else message


class _Line(BaseModel):
    """One input line. Strict: a typo'd field or a quoted number is an error, not a guess."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: str = Field(min_length=1)
    prompt: str | None = Field(default=None, min_length=1)
    messages: list[dict[str, Any]] | None = Field(default=None, min_length=1)
    model: str | None = Field(default=None, min_length=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_conversation(self) -> _Line:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError('give exactly one of "prompt" and "messages"')
        if self.prompt is not None and not self.prompt.strip():
            raise ValueError('"prompt" must not be blank')
        return self


class ResultsFile:
    """The output JSONL: results so far (latest line per id wins), appended durably.

    An incomplete last line (a write cut short by a crash) is truncated away on opening.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: dict[str, str] = {}
        """Latest result line per id (without the newline)."""
        self.ok_ids: set[str] = set()
        try:
            data = path.read_bytes() if path.exists() else b""
            complete = data[: data.rfind(b"\n") + 1]
            for number, line in enumerate(complete.decode("utf-8").splitlines(), start=1):
                self._take(line, number)
            if len(complete) < len(data):
                with path.open("r+b") as file:
                    file.truncate(len(complete))
                sys.stderr.write(f"aiecs-llm batch: dropped an incomplete last line of {path}\n")
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot use {path} as the output: {exc}") from exc

    def _take(self, line: str, number: int) -> None:
        if not line.strip():
            return
        try:
            result = json.loads(line)
            item_id, status = result["id"], result["status"]
        except (ValueError, KeyError, TypeError):
            raise InputError(
                f"{self.path}:{number}: not a result line; is this the right output file?"
            ) from None
        self.lines[item_id] = line
        if status == "ok":
            self.ok_ids.add(item_id)
        else:
            self.ok_ids.discard(item_id)

    def append(self, result: BatchResult) -> None:
        """Write one result line; it is on disk when this returns."""
        line = json.dumps(_result_line(result), ensure_ascii=False)
        data = (line + "\n").encode("utf-8")
        while data:
            data = data[os.write(self._fd, data) :]
        # Per line: a few milliseconds against calls that take seconds, and nothing paid for
        # is lost even if the machine goes down.
        os.fsync(self._fd)
        self._take(line, 0)

    def compact(self, order: Sequence[str]) -> None:
        """Rewrite the file atomically with one line per id: ``order`` first, then any other
        ids the file held; closes it.
        """
        self.close()
        ids = [item_id for item_id in order if item_id in self.lines]
        listed = set(ids)
        ids += [item_id for item_id in self.lines if item_id not in listed]
        temporary = self.path.with_name(self.path.name + ".tmp")
        with temporary.open("w", encoding="utf-8") as file:
            file.writelines(self.lines[item_id] + "\n" for item_id in ids)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)

    def close(self) -> None:
        """Close the file; idempotent."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _result_line(result: BatchResult) -> dict[str, Any]:
    response, error = result.response, result.error
    return {
        "id": result.id,
        "status": result.status,
        "content": response.content if response else None,
        "model": response.model if response else getattr(error, "model", None),
        "provider": response.provider if response else getattr(error, "provider", None),
        "prompt_tokens": response.prompt_tokens if response else None,
        "completion_tokens": response.completion_tokens if response else None,
        "cost": response.cost_estimate if response else None,
        "error": None if error is None else {"class": type(error).__name__, "message": str(error)},
    }
