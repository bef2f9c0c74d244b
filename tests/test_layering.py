"""Imports point one way: shared infrastructure at the bottom, then the building blocks (data,
models), the stages (discover, the evaluations, then training, whose online monitor scores with
the evaluation's kNN), the pipeline, the pictures, the command.

Every `import` counts, also one inside a function or under `if TYPE_CHECKING:`: a lazy import
hides a cycle, it does not remove it.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "orl"

# Lowest first. A module may import its own package (or file) and anything in a lower layer.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("presets", "progress"),  # the bundled presets' index (config reads it); progress bars
    ("artifacts", "config", "distributed"),  # shared infrastructure
    ("checkpoint",),  # checkpoint files, written through artifacts
    ("augment", "losses"),  # view pipelines, loss functions
    ("augment_tensor",),  # the view pipelines on batched tensors, drawn as `augment` draws
    ("data", "models"),  # images and data sets; networks
    ("discover",),  # stage 2: its correspondence store is read by stage 3 and the evaluation
    ("evaluate",),  # the evaluations
    ("train",),  # stages 1 and 3; their online kNN monitor is the evaluation's kNN
    ("pipeline",),  # `orl run`, the scene study, the work-folder layout
    ("viz",),  # pictures and the report, drawn from what the pipeline wrote
    ("cli",),  # the `orl` command
    ("__main__",),  # `python -m orl`
)
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def _unit(module: str) -> str:
    """`orl.train.loop` -> `train`; `orl.cli` -> `cli`."""
    return module.split(".")[1]


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported orl module) of every import statement in a file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("orl.")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "orl":  # `from orl import distributed`
                found += [(node.lineno, f"orl.{a.name}") for a in node.names]
            elif node.module.startswith("orl."):
                found.append((node.lineno, node.module))
    return found


def _violations(src: Path = SRC) -> list[str]:
    bad = []
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src)
        if rel.name == "__init__.py" and len(rel.parts) == 1:
            continue
        unit = rel.parts[0].removesuffix(".py")
        for line, module in _imports(path):
            other = _unit(module)
            if other != unit and RANK[other] >= RANK[unit]:
                bad.append(f"src/orl/{rel}:{line}: {unit} (layer {RANK[unit]}) imports {module}")
    return bad


def test_every_package_has_a_layer() -> None:
    """Every module and package; a folder without Python files (the presets) imports nothing."""
    units = {p.name.removesuffix(".py") for p in SRC.iterdir() if p.suffix == ".py"}
    units |= {p.name for p in SRC.iterdir() if p.is_dir() and any(p.rglob("*.py"))}
    units -= {"__init__"}
    assert units == set(RANK)


def test_no_package_imports_one_above_or_beside_it() -> None:
    assert _violations() == []


def test_a_lazy_upward_import_and_a_sideways_one_are_caught(tmp_path: Path) -> None:
    fake = tmp_path / "orl"
    (fake / "data").mkdir(parents=True)
    (fake / "data" / "x.py").write_text("def f():\n    from orl.train.loop import pretrain\n")
    (fake / "data" / "y.py").write_text("import orl.models.byol\nfrom orl import checkpoint\n")
    assert _violations(fake) == [
        "src/orl/data/x.py:2: data (layer 5) imports orl.train.loop",
        "src/orl/data/y.py:1: data (layer 5) imports orl.models.byol",
    ]
