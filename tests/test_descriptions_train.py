"""Training and evaluating on a dataset described in YAML, through ``tools/train_net.py`` only.

No dataset is registered in Python here: the description file is given on train_net's command
line (``DATASETS.DESCRIPTIONS``), train_net registers it, trains a few iterations and evaluates
with the dataset's own OKS sigmas, which a spy on pycocotools' COCOeval records.
"""
import json
import subprocess
import sys
import uuid

import numpy as np
import pytest

import inspose  # noqa: F401  (before detectron2)
import detectron2.evaluation.coco_evaluation as coco_evaluation

from inspose.data.description_registry import unregister
from inspose.evaluation import crowdpose

from .conftest import REPO_ROOT, CROWDPOSE
from .model_utils import TINY_CONFIG
from .tool_utils import load_tool

FAST = [
    "SOLVER.MAX_ITER", "3", "SOLVER.STEPS", "(2,)", "SOLVER.WARMUP_ITERS", "1",
    "SOLVER.IMS_PER_BATCH", "1", "INPUT.MIN_SIZE_TRAIN", "(128, 160)", "INPUT.MAX_SIZE_TRAIN", "192",
    "INPUT.MIN_SIZE_TEST", "128", "INPUT.MAX_SIZE_TEST", "192", "MODEL.INSPOSE.SCORE_THRESH_TEST", "0.0",
]  # fmt: skip


@pytest.fixture
def sigma_spy(monkeypatch):
    """The ``params.kpt_oks_sigmas`` of every pycocotools COCOeval that detectron2 runs."""
    seen = []

    class Spy(coco_evaluation.COCOeval):
        def evaluate(self):
            seen.append(np.asarray(self.params.kpt_oks_sigmas).tolist())
            return super().evaluate()

    monkeypatch.setattr(coco_evaluation, "COCOeval", Spy)
    return seen


def _train(tmp_path, description, train, test, k):
    output = tmp_path / "out"
    argv = [
        "--config-file", str(REPO_ROOT / TINY_CONFIG),
        "DATASETS.DESCRIPTIONS", f"['{description}']",
        "DATASETS.TRAIN", f"('{train}',)", "DATASETS.TEST", f"('{test}',)",
        "MODEL.INSPOSE.NUM_KEYPOINTS", str(k), "OUTPUT_DIR", str(output), *FAST,
    ]  # fmt: skip
    load_tool("train_net").cli(argv)
    lines = (output / "metrics.json").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _crowdpose_description(path, name, folder):
    names = ", ".join(CROWDPOSE.names)
    flips = ", ".join(f"[{CROWDPOSE.names[a]}, {CROWDPOSE.names[b]}]" for a, b in CROWDPOSE.flip_pairs)
    path.write_text(
        f"keypoint_names: [{names}]\n"
        f"flip_pairs: [{flips}]\n"
        "skeleton: [[head, neck], [neck, left_shoulder], [neck, right_shoulder]]\n"
        f"oks_sigmas: [{', '.join(str(round(s, 4)) for s in CROWDPOSE.oks_sigmas)}]\n"
        "evaluation: crowdpose\n"
        f"splits:\n  - {{name: {name}, json_file: {folder}/test_crowdpose.json, image_root: {folder}}}\n"
    )
    return path


def test_train_net_trains_and_evaluates_a_14_keypoint_description(tmp_path, crowdpose_mini, sigma_spy):
    name = f"described_crowdpose_{uuid.uuid4().hex[:8]}"
    description = _crowdpose_description(tmp_path / "crowdpose.yaml", name, crowdpose_mini)
    try:
        metrics = _train(tmp_path, description, name, name, 14)
    finally:
        unregister(name)
    assert sigma_spy and all(np.allclose(s, CROWDPOSE.oks_sigmas) for s in sigma_spy)
    assert max(m.get("iteration", -1) for m in metrics) >= 2  # MAX_ITER 3: iterations 0..2
    final = [m for m in metrics if "keypoints/AP" in m]
    assert final, "no evaluation results in metrics.json"
    if crowdpose.available():  # CrowdPose's protocol: AP easy / medium / hard as well
        assert "keypoints/crowdpose_APmedium" in final[-1]


def test_train_net_trains_on_a_generated_synthetic_set_by_its_description(tmp_path, sigma_spy):
    data = tmp_path / "mysynth"
    printed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "datasets/prepare_synthetic.py"), "--out", str(data),
         "--num-train", "3", "--num-val", "2", "--workers", "1"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    description = data / "synthetic.yaml"
    assert description.is_file()
    command = printed.strip().splitlines()[-1].strip()
    assert command.startswith(".venv/bin/python tools/train_net.py --config-file configs/synthetic/")
    assert f"DATASETS.DESCRIPTIONS \"['{description}']\"" in command
    assert "DATASETS.TRAIN \"('synthetic_mysynth_train',)\"" in command
    try:
        metrics = _train(tmp_path, description, "synthetic_mysynth_train", "synthetic_mysynth_val", 17)
    finally:
        unregister("synthetic_mysynth_train")
        unregister("synthetic_mysynth_val")
    from inspose.data import COCO_PERSON

    assert sigma_spy and np.allclose(sigma_spy[-1], COCO_PERSON.oks_sigmas)
    assert any("keypoints/AP" in m for m in metrics)
