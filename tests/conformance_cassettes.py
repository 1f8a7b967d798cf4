"""Loader for the shared conformance recordings (``../shared/conformance``).

The recordings are real provider HTTP traffic captured by several public projects, each with
its own flavour of VCR.py YAML (see that folder's README). This module reads ``SOURCES.tsv`` and
turns any interaction of any recording into vcrpy's standard cassette form, which the tests
write to a temporary file and replay with stock vcrpy. Nothing here edits or copies the shared
files into the repository.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

try:  # the C loader is ~10x faster on the two 1 MB context-window recordings
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader

_Dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Row:
    """One line of ``SOURCES.tsv``: a recording and what a client must read from it."""

    file: str
    provider: str
    kind: str
    request_model: str
    stream: bool
    target_interaction: int
    interaction_statuses: tuple[int, ...]
    expected_status: int
    expected_model: str
    expected_prompt_tokens: int | None
    expected_completion_tokens: int | None
    expected_reasoning_tokens: int | None
    expected_output_tokens_incl_reasoning: int | None
    expected_finish_reason: str
    expected_error_type: str
    expected_content_prefix: str
    body_format: str
    note: str

    @property
    def is_error(self) -> bool:
        return self.expected_status >= 400


def _int_or_none(value: str) -> int | None:
    value = value.strip()
    return int(value) if value else None


def load_rows(conformance: Path) -> list[Row]:
    """Every row of ``SOURCES.tsv``, typed."""
    with (conformance / "SOURCES.tsv").open(newline="", encoding="utf-8") as handle:
        # QUOTE_NONE: prefixes such as "This is a test." keep their quotes.
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        rows = []
        for raw in reader:
            rows.append(
                Row(
                    file=raw["file"],
                    provider=raw["provider"],
                    kind=raw["kind"],
                    request_model=raw["request_model"],
                    stream=raw["stream"].strip().lower() == "true",
                    target_interaction=int(raw["target_interaction"]),
                    interaction_statuses=tuple(
                        int(s) for s in raw["interaction_statuses"].split(",") if s.strip()
                    ),
                    expected_status=int(raw["expected_status"]),
                    expected_model=raw["expected_model"],
                    expected_prompt_tokens=_int_or_none(raw["expected_prompt_tokens"]),
                    expected_completion_tokens=_int_or_none(raw["expected_completion_tokens"]),
                    expected_reasoning_tokens=_int_or_none(raw["expected_reasoning_tokens"]),
                    expected_output_tokens_incl_reasoning=_int_or_none(
                        raw["expected_output_tokens_incl_reasoning"]
                    ),
                    expected_finish_reason=raw["expected_finish_reason"],
                    expected_error_type=raw["expected_error_type"],
                    expected_content_prefix=raw["expected_content_prefix"],
                    body_format=raw["body_format"],
                    note=raw["note"],
                )
            )
    return rows


def read_recording(path: Path) -> list[dict[str, Any]]:
    """The raw interactions of one recording (``!!binary`` bodies come back as bytes)."""
    with path.open("rb") as handle:
        data = yaml.load(handle, Loader=_Loader)
    interactions = data.get("interactions") if isinstance(data, Mapping) else None
    if not isinstance(interactions, list):
        raise ValueError(f"{path.name}: no 'interactions' list")
    return interactions


def _headers(raw: Any) -> dict[str, list[str]]:
    if not raw:
        return {}
    headers: dict[str, list[str]] = {}
    for name, values in dict(raw).items():
        listed = values if isinstance(values, list) else [values]
        headers[str(name)] = [str(v) for v in listed]
    return headers


def _drop(headers: dict[str, list[str]], *names: str) -> None:
    lowered = {n.lower() for n in names}
    for name in [n for n in headers if n.lower() in lowered]:
        del headers[name]


def header(headers: Mapping[str, list[str]], name: str) -> str | None:
    """The first value of a header, looked up case-insensitively."""
    for key, values in headers.items():
        if key.lower() == name.lower() and values:
            return values[0]
    return None


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def normalize(interaction: Mapping[str, Any]) -> dict[str, Any]:
    """One interaction in vcrpy's standard form.

    * ``parsed_body`` (pydantic-ai) becomes a JSON string ``body``; ``content-length`` is
      dropped because the re-serialised body is not byte-identical to the original.
    * gzip ``!!binary`` bodies are served as they are, with their ``Content-Encoding: gzip``
      header, so the HTTP client under test decompresses them as it would in production.
    * the older vcrpy httpx layout (``status_code`` / ``content``) is accepted.
    """
    request = interaction["request"]
    response = interaction["response"]

    if "parsed_body" in request:
        request_body: Any = _json_text(request["parsed_body"])
    else:
        request_body = request.get("body")
        if isinstance(request_body, Mapping):  # {"string": ...} variant
            request_body = request_body.get("string")

    response_headers = _headers(response.get("headers"))
    if "parsed_body" in response:
        body: Any = _json_text(response["parsed_body"])
        _drop(response_headers, "content-length")
    elif "body" in response:
        raw_body = response["body"]
        body = raw_body.get("string") if isinstance(raw_body, Mapping) else raw_body
    else:  # older vcrpy httpx layout
        body = response.get("content")
    if body is None:
        body = ""

    if isinstance(body, bytes) and body.startswith(GZIP_MAGIC):
        encoding = (header(response_headers, "content-encoding") or "").lower()
        if "gzip" not in encoding:
            raise ValueError("gzip body without a Content-Encoding: gzip header")

    if "status" in response:
        status = dict(response["status"])
    else:
        status = {"code": response["status_code"], "message": ""}
    status.setdefault("message", "")
    status["message"] = status["message"] or ""

    return {
        "request": {
            "method": request["method"],
            "uri": request["uri"],
            "body": request_body,
            "headers": _headers(request.get("headers")),
        },
        "response": {
            "status": {"code": int(status["code"]), "message": str(status["message"])},
            "headers": response_headers,
            "body": {"string": body},
        },
    }


def write_cassette(interactions: Iterable[Mapping[str, Any]], path: Path) -> Path:
    """Write normalised interactions as a vcrpy cassette (``version: 1``)."""
    data = {"interactions": list(interactions), "version": 1}
    path.write_text(yaml.dump(data, Dumper=_Dumper, allow_unicode=True), encoding="utf-8")
    return path


def response_text(interaction: Mapping[str, Any]) -> str:
    """A normalised interaction's response body as text (gunzipped when needed)."""
    import gzip

    body = interaction["response"]["body"]["string"]
    if isinstance(body, bytes):
        if body.startswith(GZIP_MAGIC):
            body = gzip.decompress(body)
        return body.decode("utf-8")
    return str(body)
