"""Resumable units: a failure names the unit, keeps the cause, and leaves the unit resumable."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from orl.data.photo_sources import FetchError
from orl.pipeline.stages import ERROR_FILE, STAGE_FILE, StageFailed, run_stage


def test_a_failing_unit_keeps_its_cause_and_is_retried_with_the_same_key(tmp_path: Path) -> None:
    folder = tmp_path / "unit"

    def fail() -> None:
        raise FetchError("apt-get is not installed")

    with pytest.raises(StageFailed, match="scenes failed") as info:
        run_stage("scenes", folder, "k1", fail, resume=True, log=lambda _: None)
    assert isinstance(info.value.__cause__, FetchError)  # orl run skips the study on this cause
    assert "apt-get is not installed" in (folder / ERROR_FILE).read_text()
    assert json.loads((folder / STAGE_FILE).read_text())["status"] == "running"

    ran = []
    state = run_stage("scenes", folder, "k1", lambda: ran.append(1), resume=True, log=print)
    assert ran == [1] and state["status"] == "done"
    assert not (folder / ERROR_FILE).exists()
    again = run_stage("scenes", folder, "k1", lambda: ran.append(2), resume=True, log=print)
    assert ran == [1] and again["status"] == "done"  # done with this key: not run again


def test_the_error_log_is_written_whole(
    tmp_path: Path, disk_full_midway: Callable[[], None]
) -> None:
    def fail() -> None:
        raise FetchError("apt-get is not installed")

    disk_full_midway()
    with pytest.raises(StageFailed):
        run_stage("scenes", tmp_path / "unit", "k1", fail, resume=True, log=lambda _: None)
    log = (tmp_path / "unit" / ERROR_FILE).read_text()
    assert log.startswith("Traceback") and log.rstrip().endswith("apt-get is not installed")
