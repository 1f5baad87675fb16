"""`make demo` (tools/quickstart.py, ``inspose.quickstart``): the schedule fitted to a budget, and
one tiny end-to-end run."""
import json
import os
import re
import subprocess
import sys

import pytest

from inspose.config import load_config
from inspose.quickstart import fit_schedule

from .conftest import REPO_ROOT

DEMO_CONFIG = str(REPO_ROOT / "configs/synthetic/InsPose_R_18_synthetic_demo.yaml")


def test_fit_schedule_scales_steps_and_warm_up_with_the_iterations():
    cfg = load_config(DEMO_CONFIG, ["SOLVER.MAX_ITER", 4000, "SOLVER.STEPS", "(3200, 3800)",
                                    "SOLVER.WARMUP_ITERS", 100])  # fmt: skip
    fitted = fit_schedule(cfg, 1000)
    assert fitted.SOLVER.MAX_ITER == 1000
    assert tuple(fitted.SOLVER.STEPS) == (800, 950)
    assert fitted.SOLVER.WARMUP_ITERS == 25
    assert cfg.SOLVER.MAX_ITER == 4000  # the original is left alone
    tiny = fit_schedule(cfg, 10)
    assert tiny.SOLVER.WARMUP_ITERS >= 1 and min(tiny.SOLVER.STEPS) >= 1


@pytest.mark.slow
def test_quickstart_generates_trains_evaluates_and_draws(tmp_path):
    """The whole `make demo` job at toy size: 12 + 6 images, the minimum of 20 iterations."""
    env = dict(os.environ, DETECTRON2_DATASETS=str(tmp_path / "datasets"), OMP_NUM_THREADS="2")
    out = tmp_path / "out"
    command = [sys.executable, "tools/quickstart.py", "--budget-minutes", "0.01", "--num-train", "12",
               "--num-val", "6", "--num-examples", "2", "OUTPUT_DIR", str(out), "SOLVER.IMS_PER_BATCH", 2,
               "INPUT.MIN_SIZE_TRAIN", "(112, 128)", "INPUT.MAX_SIZE_TRAIN", 192,
               "INPUT.MIN_SIZE_TEST", 128, "INPUT.MAX_SIZE_TEST", 192]  # fmt: skip
    command = [str(c) for c in command]
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]

    annotations = tmp_path / "datasets/synthetic/annotations"
    train = json.loads((annotations / "person_keypoints_train.json").read_text())
    val = json.loads((annotations / "person_keypoints_val.json").read_text())
    assert (len(train["images"]), len(val["images"])) == (12, 6)
    assert not {i["file_name"] for i in train["images"]} & {i["file_name"] for i in val["images"]}

    assert "iterations (config allows 4000)" in output
    summary = re.search(r"make demo: (\d+) iterations, .* AP ([\d.]+|nan)\.", output)
    assert summary, output[-3000:]
    assert int(summary.group(1)) == 20  # the budget is too short for more than the minimum
    assert re.search(r"^\| AP \| AP50 \| AP75 \| APm \| APl \| AR \|", output, re.MULTILINE)
    assert output.count("copypaste: AP,AP50") == 1  # evaluated once, by the trainer's hook
    assert (out / "model_final.pth").is_file()
    assert len(list((out / "examples").glob("*.png"))) + len(list((out / "examples").glob("*.jpg"))) == 2
