"""Selective search is reproducible: seeded libc rand(), one OpenCV thread (sec. 3.1 (ii))."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np

from orl.discover.proposals import (
    SearchTask,
    image_seed,
    scale_boxes,
    search_many,
    selective_search,
)


def digest(boxes: np.ndarray) -> str:
    return hashlib.sha256(boxes.tobytes()).hexdigest()


def test_same_output_twice_and_in_another_process(photos: Path) -> None:
    task = SearchTask(str(photos / "s1.jpg"), image_seed("s1.jpg", 0), "fast", 0)
    first = selective_search(task)
    assert len(first) > 20
    assert digest(selective_search(task)) == digest(first)
    code = (
        "import hashlib, sys; from orl.discover.proposals import SearchTask, selective_search;"
        f"b = selective_search(SearchTask({task.path!r}, {task.seed}, 'fast', 0));"
        "print(hashlib.sha256(b.tobytes()).hexdigest())"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == digest(first)
    # the seed matters: without seeding, the order would be arbitrary and differ between runs
    reseeded = selective_search(SearchTask(task.path, task.seed + 1, "fast", 0))
    assert digest(reseeded) != digest(first)
    assert sorted(map(tuple, reseeded.tolist())) == sorted(map(tuple, first.tolist()))


def test_boxes_from_a_downscaled_search_map_back_to_original_pixels(photos: Path) -> None:
    boxes = selective_search(SearchTask(str(photos / "s1.jpg"), 1, "fast", 60))
    assert boxes[:, 0].min() >= 0 and (boxes[:, 0] + boxes[:, 2]).max() <= 120
    assert (boxes[:, 1] + boxes[:, 3]).max() == 90  # some proposal spans the full height
    mapped = scale_boxes(np.array([[10.0, 5.0, 20.0, 40.0]]), (60, 45), (120, 90))
    assert mapped.tolist() == [[20, 10, 40, 80]]


def test_worker_processes_give_the_in_process_result(photos: Path) -> None:
    tasks = [
        SearchTask(str(photos / f"s{i}.jpg"), image_seed(f"s{i}.jpg", 0), "fast", 0)
        for i in range(3)
    ]
    tasks.append(SearchTask(str(photos / "s8_corrupt.jpg"), 1, "fast", 0))
    pooled = list(search_many(tasks, workers=2))
    inline = list(search_many(tasks, workers=1))
    assert pooled[3] is None and inline[3] is None
    assert [digest(b) for b in pooled[:3]] == [digest(b) for b in inline[:3]]  # type: ignore[arg-type]
