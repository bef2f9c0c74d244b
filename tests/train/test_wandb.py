"""Optional Weights & Biases logging, against a stand-in `wandb` module (no network, no account):
off by default, every metrics line mirrored, and a resumed run continues the same W&B run."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from orl.cli import main
from orl.config import ConfigError, load_config
from orl.train.config import PretrainConfig
from orl.train.logs import WANDB_ID_FILE
from orl.train.loop import pretrain

pytestmark = pytest.mark.slow


class FakeRun:
    def __init__(self, calls: list[tuple[str, Any]]) -> None:
        self.calls = calls

    def log(self, data: dict[str, Any], step: int) -> None:
        self.calls.append(("log", (step, data)))

    def finish(self) -> None:
        self.calls.append(("finish", None))


def fake_wandb(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    calls: list[tuple[str, Any]] = []
    module = types.ModuleType("wandb")

    def init(**kwargs: Any) -> FakeRun:
        calls.append(("init", kwargs))
        return FakeRun(calls)

    module.init = init  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wandb", module)
    return calls


def test_wandb_is_off_by_default(tiny_config: Path) -> None:
    assert load_config(PretrainConfig, tiny_config).logging.wandb is None


def test_a_resumed_run_logs_into_the_same_wandb_run(
    tiny_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = fake_wandb(monkeypatch)
    settings = ["logging.wandb.project=orl-test", "logging.wandb.entity=lab"]
    cfg = load_config(PretrainConfig, tiny_config, settings)
    run = tmp_path / "run"
    pretrain(cfg, run, max_steps=2)  # interrupted after 2 of 6 steps
    pretrain(cfg, run, resume=True)  # the requeued process
    inits = [kw for what, kw in calls if what == "init"]
    assert len(inits) == 2
    run_id = (run / WANDB_ID_FILE).read_text().strip()
    for kw in inits:
        assert (kw["project"], kw["entity"], kw["id"], kw["resume"]) == (
            "orl-test",
            "lab",
            run_id,
            "allow",
        )
        assert kw["config"]["logging"]["wandb"]["project"] == "orl-test"
    logged = [data for what, data in calls if what == "log"]
    assert [step for step, _ in logged] == list(range(1, 7))
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [data["train/loss"] for _, data in logged] == [r["loss"] for r in lines]
    assert [what for what, _ in calls].count("finish") == 2


def test_missing_wandb_package_is_one_line_and_exit_code_2(
    tiny_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    argv = ["pretrain", "--config", str(tiny_config), "--out", str(tmp_path / "run")]
    assert main([*argv, "--set", "logging.wandb.project=x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install 'orl[wandb]'" in err
    with pytest.raises(ConfigError, match=r"logging\.wandb\.project"):
        load_config(PretrainConfig, tiny_config, ["logging.wandb.entity=lab"])


@pytest.mark.parametrize("content", [b"\xff\xfe\x00", b"../../etc", b"a" * 65, b"id one"])
def test_a_run_id_file_that_holds_no_id_is_one_line_and_exit_code_2(
    tiny_config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
    content: bytes,
) -> None:
    calls = fake_wandb(monkeypatch)
    run = tmp_path / "run"
    run.mkdir()
    (run / WANDB_ID_FILE).write_bytes(content)
    argv = ["pretrain", "--config", str(tiny_config), "--out", str(run), "--resume"]
    assert main([*argv, "--set", "logging.wandb.project=x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and WANDB_ID_FILE in err and "delete the file" in err
    assert calls == [] and (run / WANDB_ID_FILE).read_bytes() == content
