"""Resume after SIGKILL and two torchrun-style ranks give the uninterrupted single-process store."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from discover_helpers import TINY, assert_same_store, tiny_config

from orl.discover.pipeline import discover

RUN = (
    "import json, sys; from pathlib import Path;"
    "from orl.discover.config import DiscoverConfig;"
    "from orl.discover.pipeline import run_discover;"
    "cfg = DiscoverConfig(**json.loads(sys.argv[1]));"
    "run_discover(cfg, Path(sys.argv[2]), [sys.argv[3]], Path(sys.argv[4]), resume=True)"
)


def launch(
    settings: dict[str, object], ckpt: Path, data: Path, out: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-c", RUN, json.dumps(settings), str(ckpt), str(data), str(out)]
    return subprocess.Popen(
        args, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


@pytest.mark.slow
def test_resume_after_sigkill_recomputes_nothing_and_matches(
    tmp_path: Path, checkpoint: Path, photos: Path
) -> None:
    settings = {**TINY, "shard_size": 1, "roi_size": 128}
    reference = discover(
        tiny_config(**settings), checkpoint, [str(photos)], tmp_path / "ref", False
    )
    out = tmp_path / "killed"
    proc = launch(settings, checkpoint, photos, out, {})
    deadline = time.monotonic() + 120
    while not list((out / "work").glob("roi-*/shard_000001.npz")):
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "meta.json").exists()
    done = {p: p.stat().st_mtime_ns for p in (out / "work").rglob("shard_*")}
    done |= {p: p.stat().st_mtime_ns for p in (out / "cache").rglob("*.npz")}
    assert len(list((out / "work").glob("roi-*/shard_*.npz"))) < 9  # killed mid-step
    discover(tiny_config(**settings), checkpoint, [str(photos)], out, resume=True)
    assert all(p.stat().st_mtime_ns == t for p, t in done.items())  # nothing finished redone
    assert_same_store(reference, out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_two_ranks_equal_one_process(
    tmp_path: Path, checkpoint: Path, photos: Path, baseline: Path
) -> None:
    out = tmp_path / "ranks"
    port = str(free_port())
    procs = [
        launch(
            TINY,
            checkpoint,
            photos,
            out,
            {
                "RANK": str(r),
                "LOCAL_RANK": str(r),
                "WORLD_SIZE": "2",
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": port,
            },
        )
        for r in range(2)
    ]
    for p in procs:
        assert p.wait(timeout=180) == 0, p.stderr.read() if p.stderr else ""
    assert_same_store(baseline, out)
