"""`orl submit` plumbing with submitit's local executor: the job is pre-empted (SIGTERM, as SLURM
sends), saves at the step boundary, requeues itself with `--resume auto` through submitit's
checkpoint protocol, and the requeued job ends bit-identical to an uninterrupted run."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from orl.cli import main
from orl.train.submit import Cluster, PretrainJob, build_executor, submit
from tests.train.test_preempt import assert_same_final_run, logged_steps

submitit = pytest.importorskip("submitit")
pytestmark = pytest.mark.slow

OVERRIDES = ("epochs=3", "save_every_steps=0", "deterministic=true")


def test_preempted_job_requeues_and_resumes_exactly(tiny_config: Path, tmp_path: Path) -> None:
    reference, run = tmp_path / "reference", tmp_path / "run"
    sets = [x for o in OVERRIDES for x in ("--set", o)]
    assert main(["pretrain", "--config", str(tiny_config), "--out", str(reference), *sets]) == 0

    job = submit(
        PretrainJob(str(tiny_config), OVERRIDES, str(run)),
        Cluster(gpus_per_node=0, cpus_per_task=1, time_min=10),
        "local",
    )
    deadline = time.time() + 180
    while len(logged_steps(run)) < 4 and job.state == "RUNNING" and time.time() < deadline:
        time.sleep(0.02)
    job._process.send_signal(signal.SIGTERM)  # the controller forwards it to the task
    summary = job.result()  # waits for the requeued job
    assert summary["steps"] == 9

    log = Path(job.paths.stdout).read_text() + Path(job.paths.stderr).read_text()
    assert "Requeued job" in log  # submitit's requeue ran after our checkpoint
    requeued = submitit.helpers.DelayedSubmission.load(job.paths.submitted_pickle)
    assert requeued.function.resume is True  # the requeued job is `--resume auto`
    assert_same_final_run(reference, run)


def test_the_slurm_script_asks_for_the_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nodes, GPUs and one task per GPU, partition, time limit and the requeue signal."""
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 2))
    cluster = Cluster(nodes=2, gpus_per_node=8, partition="gpu", time_min=600, cpus_per_task=10)
    executor = build_executor(tmp_path, cluster, "slurm")
    script = executor._executor._make_submission_file_text("CMD", "uid")
    for line in (
        "#SBATCH --nodes=2",
        "#SBATCH --gpus-per-node=8",
        "#SBATCH --ntasks-per-node=8",
        "#SBATCH --cpus-per-task=10",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=600",
        "#SBATCH --signal=USR2@120",
    ):
        assert line in script
    assert executor._executor.max_num_timeout == cluster.max_timeouts


def test_orl_submit_passes_the_pretrain_job_and_the_cluster(
    tiny_config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seen: dict[str, object] = {}

    class Submitted:
        job_id = "42"
        paths = type("Paths", (), {"folder": tmp_path / "run" / "submitit" / "42"})

    def fake_submit(job: PretrainJob, cluster: Cluster, name: str | None) -> Submitted:
        seen.update(job=job, cluster=cluster, name=name)
        return Submitted()

    monkeypatch.setattr("orl.train.submit.submit", fake_submit)
    argv = ["submit", "--config", str(tiny_config), "--out", str(tmp_path / "run")]
    argv += ["--set", "epochs=5", "--nodes", "4", "--gpus-per-node", "8", "--partition", "p"]
    assert main([*argv, "--time", "60", "--resume", "auto"]) == 0
    job, cluster = seen["job"], seen["cluster"]
    assert job == PretrainJob(str(tiny_config), ("epochs=5",), str(tmp_path / "run"), True)
    assert (cluster.nodes, cluster.gpus_per_node, cluster.partition, cluster.time_min) == (  # type: ignore[attr-defined]
        4,
        8,
        "p",
        60,
    )
    assert seen["name"] is None  # SLURM, detected
    assert "submitted job 42" in capsys.readouterr().out
    assert main([*argv[:5], "--set", "epochs=0"]) == 2  # bad settings fail before submitting
