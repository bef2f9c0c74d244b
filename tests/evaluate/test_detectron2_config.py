from __future__ import annotations

from typing import Any

import yaml

from orl.presets import PRESET_DIR

CONFIG = PRESET_DIR / "detectron2" / "mask_rcnn_R_50_FPN_1x_orl.yaml"


def test_config_matches_the_paper_transfer_setting() -> None:
    cfg: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    model, solver = cfg["MODEL"], cfg["SOLVER"]
    assert model["BACKBONE"]["FREEZE_AT"] == 0 and model["RESNETS"]["STRIDE_IN_1X1"] is False
    norms = [model["RESNETS"]["NORM"], model["FPN"]["NORM"], model["ROI_BOX_HEAD"]["NORM"],
             model["ROI_MASK_HEAD"]["NORM"]]  # fmt: skip
    assert norms == ["SyncBN"] * 4
    assert (model["ROI_BOX_HEAD"]["NUM_CONV"], model["ROI_BOX_HEAD"]["NUM_FC"]) == (4, 1)
    assert cfg["INPUT"]["FORMAT"] == "RGB" and model["PIXEL_MEAN"] == [123.675, 116.28, 103.53]
    assert model["PIXEL_STD"] == [58.395, 57.12, 57.375]
    assert (solver["MAX_ITER"], solver["BASE_LR"], solver["IMS_PER_BATCH"]) == (90000, 0.02, 16)
    assert solver["STEPS"] == "(60000, 80000)" and solver["WARMUP_ITERS"] == 1000
    assert cfg["INPUT"]["MIN_SIZE_TEST"] == 800 and cfg["TEST"]["PRECISE_BN"]["ENABLED"] is True
