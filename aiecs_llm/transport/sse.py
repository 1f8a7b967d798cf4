"""Server-sent events, decoded as the WHATWG HTML standard says (section 9.2.6, "Interpreting an
event stream"): lines end at CRLF, LF or a lone CR, even when the pair is split between two reads;
``data:`` lines accumulate and are joined by line feeds; one leading space after the colon is
dropped; lines starting with ``:`` are comments; ``event:`` names the event; a blank line
dispatches it, and an event that has no data is not dispatched; a byte order mark opening the
stream is dropped. An event the body ends in the middle of (no blank line after it) is discarded,
as the standard and the openai SDK's decoder do.
"""

from __future__ import annotations

from dataclasses import dataclass

_CR = b"\r"
_LF = b"\n"
_COLON = 0x3A  # a line that starts with ":" is a comment
_DATA = b"data"
_EVENT = b"event"
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class Event:
    """One dispatched event."""

    data: str
    event: str = ""
    """The ``event:`` field, "" when the event had none (the standard's type is then
    ``message``)."""


class SSEDecoder:
    """Turns the bytes of an event stream, as they arrive, into events."""

    __slots__ = ("_data", "_event", "_partial", "_skip_lf", "_started")

    def __init__(self) -> None:
        self._started = False
        self._partial = b""
        """The start of a line whose end has not arrived yet."""
        self._skip_lf = False
        """The last read ended in CR: an LF starting the next one belongs to that line end."""
        self._data: list[str] = []
        self._event = ""

    def feed(self, chunk: bytes) -> list[Event]:
        """The events completed by ``chunk``."""
        if not self._started:
            head = self._partial + chunk
            if len(head) < len(_BOM) and _BOM.startswith(head):
                self._partial = head  # maybe a byte order mark, split between reads
                return []
            self._started = True
            self._partial = b""
            chunk = head.removeprefix(_BOM)
        if self._skip_lf and chunk.startswith(_LF):
            chunk = chunk[1:]
        self._skip_lf = False
        if not chunk:
            return []
        text = self._partial + chunk if self._partial else chunk
        if _CR in text:
            # A CR at the very end may be the first half of a CRLF: the next read tells.
            self._skip_lf = text.endswith(_CR)
            text = text.replace(b"\r\n", _LF).replace(_CR, _LF)
        *lines, self._partial = text.split(_LF)
        events: list[Event] = []
        for line in lines:
            if not line:
                if self._data:
                    events.append(Event("\n".join(self._data), self._event))
                self._data = []
                self._event = ""
            elif line[0] != _COLON:
                self._field(line)
        return events

    def _field(self, line: bytes) -> None:
        name, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        # Lines end only at CR or LF, so a line always holds whole UTF-8 sequences.
        if name == _DATA:
            self._data.append(value.decode("utf-8", "replace"))
        elif name == _EVENT:
            self._event = value.decode("utf-8", "replace")
        # "id", "retry" and unknown fields say nothing a chat stream needs.
