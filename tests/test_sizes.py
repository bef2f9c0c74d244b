"""No module past 400 lines and no function past 60: a longer one is asking to be split.

A length a reader would accept goes into `ALLOWED` with the reason; an entry that no longer
exceeds its limit fails too, so the list stays true. Also run by `make lint`.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "orl"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60  # from the `def` line to the last line of the body, docstring included

# `path` (a module) or `path:function` -> why a reader would accept its length. Empty: every
# module and function of the package is within the limits.
ALLOWED: dict[str, str] = {}


def oversized(src: Path = SRC) -> dict[str, int]:
    """`path` of each longer module and `path:function` of each longer function (methods and
    nested functions included; `Class.method`, `outer.inner`) -> its number of lines."""
    found: dict[str, int] = {}
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src).as_posix()
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_MODULE_LINES:
            found[rel] = len(text.splitlines())
        for name, lines in _function_lengths(ast.parse(text)):
            if lines > MAX_FUNCTION_LINES:
                found[f"{rel}:{name}"] = lines
    return found


def _function_lengths(node: ast.AST, prefix: str = "") -> list[tuple[str, int]]:
    """(qualified name, lines) of every function defined in `node`, at any depth."""
    lengths = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = prefix + child.name
            if not isinstance(child, ast.ClassDef):
                assert child.end_lineno is not None
                lengths.append((name, child.end_lineno - child.lineno + 1))
            lengths += _function_lengths(child, name + ".")
        else:
            lengths += _function_lengths(child, prefix)
    return lengths


def test_no_module_or_function_is_longer_than_the_limits() -> None:
    found = oversized()
    assert {k: v for k, v in found.items() if k not in ALLOWED} == {}
    assert sorted(set(ALLOWED) - set(found)) == []  # a stale entry


def _function(name: str, lines: int, indent: str = "") -> str:
    """The source of a function exactly `lines` lines long."""
    body = "".join(f"{indent}    x{i} = {i}\n" for i in range(lines - 1))
    return f"{indent}def {name}():\n{body}"


def test_a_long_module_a_long_method_and_a_long_nested_function_are_caught(
    tmp_path: Path,
) -> None:
    limit = MAX_FUNCTION_LINES
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "fits.py").write_text(
        _function("fits", limit) + "z = 0\n" * (MAX_MODULE_LINES - limit)
    )
    long_one = "class C:\n" + _function("method", limit + 1, "    ")
    long_one += "def outer():\n" + _function("inner", limit + 1, "    ")
    (tmp_path / "pkg" / "long.py").write_text(long_one + "z = 0\n" * MAX_MODULE_LINES)
    assert oversized(tmp_path) == {
        "pkg/long.py": 1 + (limit + 1) + 1 + (limit + 1) + MAX_MODULE_LINES,
        "pkg/long.py:C.method": limit + 1,
        "pkg/long.py:outer": limit + 2,
        "pkg/long.py:outer.inner": limit + 1,
    }
