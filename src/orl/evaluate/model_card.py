"""The model card (`README.md`) of an exported backbone: what was trained, on what, how long, and
the evaluation numbers of the paper's protocols (sec. 4.1) measured on it.

Every value that reaches the card is a number, a hexadecimal digest or a name from a fixed list,
so nothing read from a checkpoint or a report can inject Markdown or HTML into it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orl.checkpoint import load_checkpoint
from orl.evaluate.features import POOLS, SVM_LAYERS
from orl.evaluate.inputs import EvalInputError
from orl.models.pretrained import Pretrained

# method -> (short name, what it is)
METHODS = {
    "byol": ("BYOL", "image-level BYOL, stage 1 of ORL (sec. 3.1)"),
    "byol_multicrop": ("multi-crop BYOL", "BYOL with multi-crop views, the Table 5c baseline"),
    "simclr": ("SimCLR", "image-level SimCLR, a baseline of Tables 1-4"),
    "mocov2": ("MoCo v2", "image-level MoCo v2, a baseline of Tables 1-4"),
    "orl": ("ORL", "object-level BYOL, stage 3 of ORL (sec. 3.1-3.2)"),
}
LAYERS = (*SVM_LAYERS, *POOLS)
_HEX = re.compile(r"[0-9a-f]{8,64}")


@dataclass(frozen=True)
class TrainingFacts:
    """What an `orl pretrain` checkpoint says about its run."""

    method: str
    epochs_done: int
    epochs: int
    steps: int
    batch_size: int
    image_size: int
    data_fingerprint: str


def training_facts(checkpoint: Path) -> TrainingFacts:
    """Read the run facts of an orl checkpoint (`weights_only=True`, like every load)."""
    ckpt = load_checkpoint(checkpoint)
    cfg = ckpt["config"]
    fingerprint = str(ckpt.get("data_fingerprint", ""))
    return TrainingFacts(
        method=str(cfg.get("method", "byol")),
        epochs_done=int(ckpt.get("epoch", 0)),
        epochs=int(cfg["epochs"]),
        steps=int(ckpt.get("step", 0)),
        batch_size=int(cfg["batch_size"]),
        image_size=int(cfg.get("augment", {}).get("image_size", 0)),
        data_fingerprint=fingerprint if _HEX.fullmatch(fingerprint) else "unknown",
    )


def _pct(value: Any, path: Path) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EvalInputError(f"{path}: expected a number, got {value!r}; pass an orl eval report")
    return f"{100 * float(value):.2f}"


def _layer(name: str, path: Path) -> str:
    if name not in LAYERS:
        raise EvalInputError(f"{path}: unknown feature depth {name!r}; pass an orl eval report")
    return name


def evaluation_rows(report: dict[str, Any], path: Path) -> list[tuple[str, str, str, str]]:
    """(protocol, setting, metric, value in %) rows of one `orl eval ... --out` report."""
    protocol = report.get("protocol")
    if protocol == "voc07-svm":
        return [
            ("VOC07 linear SVM", _layer(n, path), "mAP", _pct(r["mAP"], path))
            for n, r in report["layers"].items()
        ]
    if protocol == "voc07-lowshot":
        on_test = str(report.get("cost_selection", "")).startswith("test set")
        rows = []
        for n, per_k in report["layers"].items():
            for k, stats in per_k.items():
                setting = f"{_layer(n, path)}, k={int(k)}" + (", cost on test" if on_test else "")
                rows.append(("VOC07 low-shot SVM", setting, "mAP", _pct(stats["mean"], path)))
        return rows
    if protocol == "linear":
        return [
            ("linear probe", _layer(n, path), "top-1", _pct(v, path))
            for n, v in report["top1"].items()
        ]
    if protocol in ("semi", "knn"):
        name = "semi-supervised fine-tuning" if protocol == "semi" else "weighted kNN"
        return [
            (name, "", m, _pct(report[k], path)) for k, m in (("top1", "top-1"), ("top5", "top-5"))
        ]
    if "scene_map" in report:  # `orl eval scenes`
        return [
            ("scene benchmark", "", "scene mAP", _pct(report["scene_map"], path)),
            ("scene benchmark", "", "object-crop top-1", _pct(report["crop_top1"], path)),
        ]
    raise EvalInputError(
        f"{path}: not a report of `orl eval voc07|voc07-lowshot|linear|semi|knn|scenes`"
    )


def read_results(paths: Sequence[Path], weights: Pretrained) -> list[tuple[str, str, str, str]]:
    """Evaluation rows of every report; each must have evaluated exactly these weights."""
    rows = []
    for path in paths:
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise EvalInputError(f"{path}: unreadable results JSON ({type(exc).__name__})") from exc
        if not isinstance(report, dict):
            raise EvalInputError(f"{path}: not an orl eval report")
        if report.get("checkpoint") != weights.identity:
            raise EvalInputError(
                f"{path}: evaluated {report.get('checkpoint')!r}, not the exported "
                f"{weights.identity}; pass the reports of this checkpoint"
            )
        try:
            rows += evaluation_rows(report, path)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            if isinstance(exc, EvalInputError):
                raise
            raise EvalInputError(f"{path}: incomplete orl eval report ({exc!r})") from exc
    return rows


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _method(weights: Pretrained, facts: TrainingFacts | None) -> tuple[str, str]:
    """(short name for the title, what the method is) of the exported weights."""
    if facts is not None:
        return METHODS.get(facts.method, ("unknown method", "unknown"))
    if weights.identity.startswith("random:"):
        return "random init", "none (random initialisation)"
    return "imported", "unknown (exported from a plain state dict)"


def _header(weights: Pretrained, width: int, short: str) -> list[str]:
    """Hugging Face metadata, title and what the model outputs."""
    return [
        "---",
        "library_name: timm",
        "license: other",  # the weights inherit the terms of the images they were trained on
        "pipeline_tag: image-feature-extraction",
        "tags:",
        "- image-feature-extraction",
        "- self-supervised-learning",
        "- orl",
        "---",
        "",
        f"# {short} {weights.arch}",
        "",
        f"A {weights.arch} pre-trained without labels by the orl library, which implements ORL "
        "(Xie et al., *Unsupervised Object-Level Representation Learning from Scene Images*, "
        f"NeurIPS 2021). There is no classifier: the model outputs the {width}-d global average "
        "of the last stage (`num_classes: 0`).",
        "",
    ]


def _training_rows(
    weights: Pretrained, facts: TrainingFacts | None, method: str
) -> list[tuple[str, str]]:
    rows = [("method", method), ("checkpoint", f"`{weights.identity}`")]
    if facts is not None:
        rows += [
            ("data set fingerprint", f"`{facts.data_fingerprint}` (SHA-256 of the ordered "
             "relative paths and sizes of the training images)"),
            ("epochs", f"{facts.epochs_done} of {facts.epochs}"),
            ("steps", str(facts.steps)),
            ("batch size", str(facts.batch_size)),
            ("training resolution", f"{facts.image_size} px"),
        ]  # fmt: skip
    return rows


def _use_and_licence(arch: str) -> list[str]:
    """How to load the weights (timm, torchvision) and the licence note."""
    return [
        "",
        "## Use",
        "",
        "```python",
        "import timm",
        'model = timm.create_model("hf-hub:OWNER/NAME", pretrained=True)  # or "local-dir:FOLDER"',
        "```",
        "",
        "```python",
        "import torch, torchvision",
        "from safetensors.torch import load_file",
        f"net = torchvision.models.{arch}()",
        "net.fc = torch.nn.Identity()",
        'net.load_state_dict(load_file("model.safetensors"))',
        "```",
        "",
        "Inputs: RGB, ImageNet mean and std, 224 px (resize 256, centre crop 224, as the linear "
        "evaluations). Publish the folder with `huggingface_hub.upload_folder` or "
        "`hf upload OWNER/NAME FOLDER`.",
        "",
        "## Licence",
        "",
        "`license: other`: the weights inherit the terms of the images they were trained on; "
        "set the licence in the metadata above before publishing.",
        "",
    ]


def model_card(
    weights: Pretrained,
    width: int,
    facts: TrainingFacts | None,
    results: Sequence[tuple[str, str, str, str]],
) -> str:
    """The Markdown of `README.md`: Hugging Face metadata, training facts, evaluation, usage."""
    short, method = _method(weights, facts)
    lines = _header(weights, width, short)
    lines += ["## Training", ""]
    lines += _table(("", ""), _training_rows(weights, facts, method))
    lines += ["", "## Evaluation", ""]
    if results:
        lines += _table(("protocol", "setting", "metric", "value (%)"), results)
    else:
        lines.append("No evaluation report was attached to this export.")
    lines += _use_and_licence(weights.arch)
    return "\n".join(lines)
