"""The pull parser reads what `json.load` reads, in pieces, and refuses what it refuses."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from orl.discover.json_stream import JsonReader, JsonStreamError

DOC = {
    "info": {"orl": {"flags": {"3": 1}}, "x": [1.5, -2e-3, True, None, 'é"\\']},
    "images": {"file_name": ["a.jpg", "b c.jpg"], "id": [12345678901234, 2]},
    "empty": {"a": [], "b": {}},
    "pseudo_annotations": {"bbox": [[[1, 2, 3, 4]], [[5, 6, 7, 8], [9, 10, 11, 12]]]},
}


def walk(reader: JsonReader) -> Any:
    """Rebuild a document through keys()/items()/value(): must equal json.loads."""
    kind = reader.peek_kind()
    if kind == "object":
        return {key: walk(reader) for key in reader.members()}
    if kind == "array":
        return [walk(reader) for _ in reader.items()]
    return reader.value()


@pytest.mark.parametrize("chunk", [1, 2, 7, 1 << 16])
@pytest.mark.parametrize("indent", [None, 2])
def test_walking_in_any_chunk_size_gives_json_load(chunk: int, indent: int | None) -> None:
    text = json.dumps(DOC, indent=indent)
    reader = JsonReader(io.StringIO(text), chunk=chunk)
    assert walk(reader) == DOC
    reader.end()


def test_numbers_split_across_chunks_are_read_whole() -> None:
    reader = JsonReader(io.StringIO("[123456, 7e10, true]"), chunk=2)
    assert [reader.value() for _ in reader.items()] == [123456, 7e10, True]


def test_skip_consumes_any_value_and_deep_nesting() -> None:
    deep = "[" * 50_000 + "]" * 50_000
    reader = JsonReader(io.StringIO('{"a": ' + deep + ', "b": {"c": [1, {"d": 2}]}, "e": 3}'))
    seen = {}
    for key in reader.members():
        if key == "e":
            seen[key] = reader.value()
        else:
            reader.skip()
    assert seen == {"e": 3}


@pytest.mark.parametrize(
    "text",
    ['{"a": 1,}', '{"a" 1}', "[1 2]", "[1,]", '{"a": [1, 2}', "[1, 2", '{"a": tru}', "[1] x", ""],
)
def test_malformed_json_is_a_one_line_error(text: str) -> None:
    reader = JsonReader(io.StringIO(text), chunk=3)
    with pytest.raises(JsonStreamError) as info:
        walk(reader)
        reader.end()
    assert "\n" not in str(info.value) and "at character" in str(info.value)


def test_a_value_larger_than_the_bound_is_refused() -> None:
    reader = JsonReader(io.StringIO("[" + json.dumps("x" * 5000) + "]"), chunk=64, max_value=1000)
    with pytest.raises(JsonStreamError, match="longer than 1000"):
        for _ in reader.items():
            reader.value()
