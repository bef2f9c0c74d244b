"""The pipeline's work folder: where each stage leaves its outputs (written by `orl run`, read by
the report).

    WORK_DIR/
      pipeline.json            data_fingerprint, data (sources), stages.<name>.{status, wall_time_s}
      stage1/  stage3/         `orl pretrain` runs: config.yaml, metrics.jsonl, summary.json,
                               checkpoints/last.pt (stage 1 = BYOL, stage 3 = ORL; sec. 3.2, 3.3)
      stage2/                  the correspondence store (sec. 3.1) + optional timing.json
      eval/results.json        protocol, columns, rows[{name, metrics}]
      scenes_study/results.json  optional scene-benchmark study (runs, corr, baselines)

Every file is optional to its readers (`viz/report_inputs.py`): the report says "not run" for a
stage that has not run (or not finished) instead of failing.
"""

from __future__ import annotations

STAGE1_DIR = "stage1"
STAGE2_DIR = "stage2"
STAGE3_DIR = "stage3"
EVAL_DIR = "eval"
SCENES_DIR = "scenes_study"  # optional: the scene-benchmark study (pipeline/study.py)
PIPELINE_FILE = "pipeline.json"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
CHECKPOINT_FILE = "checkpoints/last.pt"
TIMING_FILE = "timing.json"
RESULTS_FILE = "results.json"
STORE_META_FILE = "meta.json"
# The stage names used as keys of pipeline.json's `stages`, in pipeline order.
STAGES = (STAGE1_DIR, STAGE2_DIR, STAGE3_DIR, EVAL_DIR)
