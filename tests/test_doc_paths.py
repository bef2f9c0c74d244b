"""Every `docs/...` path named in the code, the configs and the documentation exists.

Also run by `make lint`.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A path that starts a word (not `https://host/docs/...`) and ends on a name character, so the
# full stop of a sentence is not part of it.
DOC_PATH = re.compile(r"(?<![\w./-])docs/[\w./-]*\w")
SEARCHED = ("src/**/*.py", "tests/**/*.py", "benchmarks/**/*.py", "configs/**/*.yaml", "*.md")
SEARCHED += ("docs/**/*.md", "Makefile", "pyproject.toml")


def named_doc_paths(root: Path = ROOT) -> dict[str, list[str]]:
    """Each `docs/...` path named in the searched files -> where (`file:line`)."""
    found: dict[str, list[str]] = {}
    files = sorted({p for pattern in SEARCHED for p in root.glob(pattern) if p.is_file()})
    for path in files:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for name in DOC_PATH.findall(line):
                found.setdefault(name, []).append(f"{path.relative_to(root)}:{n}")
    return found


def test_every_named_docs_path_exists() -> None:
    found = named_doc_paths()
    missing = {name: where for name, where in found.items() if not (ROOT / name).exists()}
    assert missing == {}
    assert "docs/design.md" in found  # the search does find paths


def test_a_named_path_is_found_without_the_full_stop_or_a_url(tmp_path: Path) -> None:
    name = "docs" + "/a.md"  # spelt in two parts so that this file names no such path
    (tmp_path / "README.md").write_text(f"See {name}. Not https://x.org/{name}.\n")
    assert named_doc_paths(tmp_path) == {name: ["README.md:1"]}
