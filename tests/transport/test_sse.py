"""The fast transport's server-sent-event decoder against the WHATWG standard's rules, fed
whole and byte by byte (a line end, a CRLF pair or a UTF-8 character split between reads
must not change a thing).
"""

from __future__ import annotations

import pytest

from aiecs_llm.transport.sse import Event, SSEDecoder


def _decode(stream: bytes, *, piece: int | None = None) -> list[Event]:
    decoder = SSEDecoder()
    if piece is None:
        return decoder.feed(stream)
    events: list[Event] = []
    for start in range(0, len(stream), piece):
        events += decoder.feed(stream[start : start + piece])
    return events


CASES = {
    "lf": (b'data: {"a": 1}\n\ndata: {"b": 2}\n\n', [Event('{"a": 1}'), Event('{"b": 2}')]),
    "crlf": (b"data: x\r\n\r\ndata: y\r\n\r\n", [Event("x"), Event("y")]),
    "cr only": (b"data: x\r\rdata: y\r\r", [Event("x"), Event("y")]),
    "mixed line ends": (
        b"data: x\r\n\ndata: y\r\rdata: z\n\r\n",
        [Event("x"), Event("y"), Event("z")],
    ),
    "multi-line data joined with LF": (
        b'data: {"text":\ndata:  "hi"}\n\n',
        [Event('{"text":\n "hi"}')],
    ),
    "no space after the colon": (b"data:x\n\n", [Event("x")]),
    "only one leading space is dropped": (b"data:  x\n\n", [Event(" x")]),
    "comments are skipped": (b": keep-alive\n\n:ping\ndata: x\n\n", [Event("x")]),
    "event names": (
        b"event: message_start\ndata: 1\n\nevent: ping\ndata: 2\n\ndata: 3\n\n",
        [Event("1", "message_start"), Event("2", "ping"), Event("3")],
    ),
    "an event without data is not dispatched": (b"event: ping\n\ndata: x\n\n", [Event("x")]),
    "id and retry are ignored": (b"id: 7\nretry: 100\ndata: x\n\n", [Event("x")]),
    "a field without a colon (empty data)": (b"data\n\n", [Event("")]),
    "unterminated last event is discarded": (b"data: x\n\ndata: y\n", [Event("x")]),
    "byte order mark": (b"\xef\xbb\xbfdata: x\n\n", [Event("x")]),
    "non-ascii text": ('data: "héllo ✓"\n\n'.encode(), [Event('"héllo ✓"')]),
    "the done marker is data like any other": (b"data: [DONE]\n\n", [Event("[DONE]")]),
}


@pytest.mark.parametrize(
    "piece", [None, 1, 2, 3, 7], ids=lambda p: f"reads of {p}" if p else "whole"
)
@pytest.mark.parametrize(("stream", "expected"), CASES.values(), ids=CASES.keys())
def test_events(stream: bytes, expected: list[Event], piece: int | None) -> None:
    assert _decode(stream, piece=piece) == expected


def test_a_crlf_split_between_reads_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\r") == []
    assert decoder.feed(b"\n\r") == [Event("x")]
    assert decoder.feed(b"\ndata: y\r\n\r\n") == [Event("y")]


def test_a_lone_cr_at_the_end_of_a_read_ends_the_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\r\r") == [Event("x")]
    assert decoder.feed(b"data: y\r") == []
    assert decoder.feed(b"\r") == [Event("y")]
