"""`orl run`: stage caching, downstream invalidation, resume after a kill, failures, the report."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image, ImageDraw

from orl.cli import main

pytestmark = pytest.mark.slow

TRAIN = {
    "epochs": 2,
    "arch": "resnet18",
    "batch_size": 8,
    "workers": 0,
    "log_every": 1,
    "save_every_epochs": 0,
    "save_every_steps": 1,
    "model": {"proj_hidden": 32, "proj_dim": 16, "pred_hidden": 32},
    "augment": {"image_size": 32, "patch_size": 16},
    "optim": {"warmup_epochs": 1},
}
DISCOVER = {
    "k": 2,
    "knn_resize": 40,
    "knn_crop": 32,
    "roi_size": 32,
    "min_size": 16,
    "shard_size": 4,
    "ss_max_side": 96,
    "proposal_workers": 1,
    "batch_size": 16,
    "device": "cpu",
}


def scene(seed: int, size: tuple[int, int] = (96, 72)) -> Image.Image:
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", size, tuple(int(c) for c in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(img)
    for _ in range(3):
        x0, y0 = int(rng.integers(0, 40)), int(rng.integers(0, 30))
        box = (x0, y0, x0 + int(rng.integers(20, 50)), y0 + int(rng.integers(20, 40)))
        draw.rectangle(box, fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return img


@pytest.fixture
def pipeline(tmp_path: Path) -> Path:
    photos = tmp_path / "photos"
    photos.mkdir()
    rows = ["path,source,licence,width,height,labels"]
    for i in range(16):
        scene(i).save(photos / f"p{i:02d}.jpg", quality=95)
        rows.append(f"p{i:02d}.jpg,test,CC0,96,72,demo:{'ab'[i % 2]}")
    (photos / "manifest.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "byol.yaml").write_text(yaml.safe_dump({**TRAIN, "method": "byol", "data": "x"}))
    (tmp_path / "orl.yaml").write_text(yaml.safe_dump({**TRAIN, "method": "orl", "data": "x"}))
    config = tmp_path / "pipeline.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": [str(photos)],
                "stage1": {"config": "byol.yaml"},
                "stage2": {"overrides": DISCOVER},
                "stage3": {"config": "orl.yaml"},
                "eval": {
                    "manifest": str(photos / "manifest.csv"),
                    "label_prefix": "demo:",
                    "min_per_class": 2,
                    "folds": 2,
                },
                "report_photos": 2,
                "report_pairs": 2,
            }
        )
    )
    return config


def _states(work: Path) -> dict[str, dict[str, object]]:
    return {
        s: json.loads((work / s / "stage.json").read_text())
        for s in ("stage1", "stage2", "stage3", "eval")
    }


def _stamps(work: Path) -> dict[str, int]:
    return {s: (work / s / "stage.json").stat().st_mtime_ns for s in ("stage1", "stage2", "stage3")}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.cells: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(dict(attrs).get("src") or "")

    def handle_data(self, data: str) -> None:
        self.cells.append(data.strip())


def test_pipeline_runs_caches_and_invalidates_downstream(
    pipeline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "work"
    assert main(["run", "--config", str(pipeline), "--out", str(work)]) == 0
    states = _states(work)
    assert all(s["status"] == "done" for s in states.values())
    html = (work / "report.html").read_text()
    parser = _Tags()
    parser.feed(html)
    assert parser.images and all(src.startswith("data:image/png;base64,") for src in parser.images)
    for row in ("random init", "BYOL", "ORL"):
        assert row in parser.cells
    results = json.loads((work / "eval" / "results.json").read_text())
    assert [r["name"] for r in results["rows"]] == ["random init", "BYOL", "ORL"]
    capsys.readouterr()

    # a second run computes nothing
    before = _stamps(work)
    assert main(["run", "--config", str(pipeline), "--out", str(work)]) == 0
    out = capsys.readouterr().out
    assert out.count("up to date") == 4 and _stamps(work) == before

    # a changed stage-2 setting recomputes stages 2 and 3 (and the evaluation), not stage 1
    assert (
        main(
            ["run", "--config", str(pipeline), "--out", str(work), "--set", "stage2.overrides.k=1"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "stage1: up to date" in out
    assert "stage2: running" in out and "stage3: running" in out and "eval: running" in out
    after = _stamps(work)
    assert after["stage1"] == before["stage1"]
    assert after["stage2"] != before["stage2"] and after["stage3"] != before["stage3"]
    assert json.loads((work / "stage2" / "meta.json").read_text())["k"] == 1


def _kill_when(cmd: list[str], ready: callable, timeout: float = 240) -> None:  # type: ignore[valid-type]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + timeout
    while not ready() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the pipeline finished before it could be killed"


@pytest.mark.parametrize("victim", ["stage2", "stage3"])
def test_resume_after_a_kill_redoes_no_finished_stage(
    pipeline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], victim: str
) -> None:
    work = tmp_path / "work"
    cmd = [sys.executable, "-m", "orl", "run", "--config", str(pipeline), "--out", str(work)]
    if victim == "stage2":
        ready = lambda: any((work / "stage2").rglob("*.npz"))  # noqa: E731  (a finished shard)
    else:
        ready = lambda: (work / "stage3" / "checkpoints" / "last.pt").exists()  # noqa: E731
    _kill_when(cmd, ready)
    state = json.loads((work / victim / "stage.json").read_text())
    assert state["status"] == "running"
    stage1_file = work / "stage1" / "stage.json"
    done_before = stage1_file.stat().st_mtime_ns

    assert main(["run", "--config", str(pipeline), "--out", str(work), "--resume"]) == 0
    out = capsys.readouterr().out
    assert "stage1: up to date" in out and f"{victim}: resuming" in out
    assert stage1_file.stat().st_mtime_ns == done_before
    assert all(s["status"] == "done" for s in _states(work).values())


def test_a_failing_stage_is_named_and_finished_stages_stay(
    pipeline: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import orl.pipeline.run as run_module

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(run_module, "run_discover", broken)
    work = tmp_path / "work"
    assert main(["run", "--config", str(pipeline), "--out", str(work)]) == 1
    err = capsys.readouterr().err
    assert "stage2 failed (RuntimeError: disk full)" in err
    assert str(work / "stage2" / "error.log") in err
    assert "disk full" in (work / "stage2" / "error.log").read_text()
    assert json.loads((work / "stage1" / "stage.json").read_text())["status"] == "done"
    assert (work / "stage1" / "checkpoints" / "last.pt").exists()


def test_the_same_command_runs_under_torchrun(pipeline: Path, tmp_path: Path) -> None:
    """Two gloo ranks run every stage; rank 0 alone writes the bookkeeping and the report."""
    work = tmp_path / "work"
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "orl", "run",
         "--config", str(pipeline), "--out", str(work)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert all(s["status"] == "done" for s in _states(work).values())
    assert proc.stdout.count("pipeline finished") == 1  # printed by rank 0 only
    assert (work / "report.html").exists()
    meta = json.loads((work / "stage2" / "meta.json").read_text())
    assert meta["num_images"] == 16


def test_the_scene_study_is_skipped_only_when_its_packages_cannot_be_fetched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import orl.pipeline.run as run_module
    from orl.data.photo_sources import FetchError
    from orl.pipeline import layout
    from orl.pipeline.stages import StageFailed
    from orl.pipeline.study_config import resolve_study

    study = resolve_study(Path("scenes_study_quick"), [])
    dirs = {layout.SCENES_DIR: tmp_path / layout.SCENES_DIR}
    stages = run_module._Stages(tmp_path, dirs, False, True, {"stages": {}})

    def no_apt(*args: object, **kwargs: object) -> None:
        raise FetchError("apt-get not found")

    monkeypatch.setattr(run_module, "run_study", no_apt)
    run_module._scene_study(stages, study, world_size=1)
    assert "scene study skipped: apt-get not found" in capsys.readouterr().out

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(run_module, "run_study", broken)
    with pytest.raises(StageFailed, match="disk full"):
        run_module._scene_study(stages, study, world_size=1)
    run_module._scene_study(stages, study, world_size=2)  # under torchrun: not even tried
    assert "skipped under torchrun" in capsys.readouterr().out
