"""The presets shipped inside the package (`orl/configs/*.yaml`, installed as package data).

`--config` takes a YAML path or the name of a bundled preset: `coco_orl_r50_800ep`,
`coco_orl_r50_800ep.yaml` or `detectron2/mask_rcnn_R_50_FPN_1x_orl`. A path to a missing file
inside a folder named `configs` (such as `configs/demo.yaml`, where a repository clone kept the
presets before they moved into the package) names the bundled preset of the same relative name.
Each preset's first comment line is its one-line description (`orl presets`).
"""

from __future__ import annotations

from pathlib import Path

PRESET_DIR = Path(__file__).resolve().parent / "configs"
SUFFIX = ".yaml"


def preset_names() -> list[str]:
    """Every bundled preset, by the name `--config` takes (relative path without `.yaml`)."""
    return sorted(
        p.relative_to(PRESET_DIR).with_suffix("").as_posix() for p in PRESET_DIR.rglob(f"*{SUFFIX}")
    )


def bundled_preset(path: Path) -> Path | None:
    """The bundled file that a missing `path` names, or None (see the module docstring)."""
    parts = path.parts
    if "configs" in parts[:-1]:
        parts = parts[len(parts) - parts[::-1].index("configs") :]
    elif path.is_absolute():
        return None
    name = "/".join(parts)
    candidate = (PRESET_DIR / (name if name.endswith(SUFFIX) else name + SUFFIX)).resolve()
    if not candidate.is_relative_to(PRESET_DIR) or not candidate.is_file():
        return None
    return candidate


def preset_description(path: Path) -> str:
    """The first comment line of a preset, without the `#`."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return ""
