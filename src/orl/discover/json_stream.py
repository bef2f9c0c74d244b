"""A pull parser for large JSON files, on the standard library's decoder.

The authors' correspondence file for COCO is hundreds of MB of JSON; `json.load` would hold all of
it as Python objects (several GB). `JsonReader` walks the containers the caller asks it to walk,
one element at a time, and decodes each leaf or small sub-tree whole with
`json.JSONDecoder.raw_decode`, so memory holds the text of one element (at most `max_value`
characters) plus what the caller keeps.

    reader = JsonReader(f)
    for key in reader.members():            # the top-level object
        if key == "bbox":
            for i in reader.items():     # one element per call to reader.value()
                boxes = reader.value()
        else:
            reader.skip()
    reader.end()

After each key or item the caller must consume exactly one value (`value`, `skip`, or a nested
`members`/`items` walk); anything else is a `JsonStreamError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, TextIO

_NOT_WHITESPACE = re.compile(r"[^ \t\r\n]")
_DELIMITER = re.compile(r"[,\]}\s]")


class JsonStreamError(ValueError):
    """Not valid JSON, or not the structure asked for; the message says where."""


class JsonReader:
    """Pull parser over a text file (see the module docstring)."""

    def __init__(self, f: TextIO, chunk: int = 1 << 16, max_value: int = 1 << 26) -> None:
        self._f = f
        self._chunk = chunk
        self._max_value = max_value
        self._buf = ""
        self._pos = 0
        self._offset = 0  # characters dropped from the front of the buffer
        self._eof = False
        self._decoder = json.JSONDecoder()

    def _fill(self, size: int) -> bool:
        """Read `size` more characters; False at the end of the file."""
        if self._eof:
            return False
        if self._pos:
            self._offset += self._pos
            self._buf, self._pos = self._buf[self._pos :], 0
        more = self._f.read(size)
        if not more:
            self._eof = True
            return False
        self._buf += more
        return True

    def _peek(self) -> str:
        """The next non-whitespace character ("" at the end of the file), not consumed."""
        while True:
            found = _NOT_WHITESPACE.search(self._buf, self._pos)
            self._pos = found.start() if found else len(self._buf)
            if found or not self._fill(self._chunk):
                return self._buf[self._pos : self._pos + 1]

    def _error(self, what: str) -> JsonStreamError:
        return JsonStreamError(f"{what} at character {self._offset + self._pos}")

    def _expect(self, char: str) -> None:
        found = self._peek()
        if found != char:
            raise self._error(f"expected {char!r}, found {found or 'the end of the file'!r}")
        self._pos += 1

    def value(self) -> Any:
        """The next value, decoded whole (at most `max_value` characters of text)."""
        if self._peek() not in ('"', "[", "{"):
            # A number or literal is complete only once a delimiter follows: "1" may be "1.5".
            while not _DELIMITER.search(self._buf, self._pos) and self._more_for_value():
                pass
        while True:
            try:
                obj, end = self._decoder.raw_decode(self._buf, self._pos)
            except json.JSONDecodeError as exc:
                if not self._more_for_value():
                    raise self._error(f"invalid JSON ({exc.msg})") from exc
                continue
            except RecursionError as exc:
                raise self._error("JSON nested too deeply") from exc
            self._pos = end
            return obj

    def _more_for_value(self) -> bool:
        """Grow the buffer for a value that does not fit yet (doubling: linear time overall)."""
        pending = len(self._buf) - self._pos
        if pending > self._max_value:
            raise self._error(f"a value longer than {self._max_value} characters")
        return self._fill(max(self._chunk, pending))

    def members(self) -> Iterator[str]:
        """Walk an object: yield each key; the caller consumes its value before the next."""
        self._expect("{")
        first = True
        while True:
            if self._peek() == "}":
                self._pos += 1
                return
            if not first:
                self._expect(",")
            if self._peek() != '"':
                raise self._error("expected a string key")
            key = self.value()
            self._expect(":")
            yield key
            first = False

    def items(self) -> Iterator[int]:
        """Walk an array: yield each position; the caller consumes the element before the next."""
        self._expect("[")
        index = 0
        while True:
            if self._peek() == "]":
                self._pos += 1
                return
            if index:
                self._expect(",")
            yield index
            index += 1

    def peek_kind(self) -> str:
        """ "object", "array" or "value": what the next value is, without consuming it."""
        char = self._peek()
        return {"{": "object", "[": "array"}.get(char, "value")

    def skip(self) -> None:
        """Consume the next value without keeping it, however large or deeply nested."""
        walks: list[Iterator[object]] = []  # the open containers, innermost last
        while True:
            kind = self.peek_kind()
            if kind == "value":
                self.value()
            else:
                walks.append(self.members() if kind == "object" else self.items())
            while walks:  # move on to the next value to consume, closing finished containers
                if next(walks[-1], None) is not None:
                    break
                walks.pop()
            else:
                return

    def end(self) -> None:
        """Check that nothing but whitespace follows."""
        if self._peek():
            raise self._error("unexpected data after the JSON value")
