"""CrowdPose's evaluation protocol (xtcocotools, optional) on the genuine crowdpose_mini samples."""
import json
import logging

import pytest

import inspose  # noqa: F401  (before detectron2)
from inspose.evaluation import crowdpose
from inspose.evaluation.keypoint_evaluator import KeypointEvaluator

from .conftest import CROWDPOSE


def _ground_truth_as_results(json_file, shift=0.0):
    with open(json_file) as f:
        coco = json.load(f)
    results = []
    for a in coco["annotations"]:
        keypoints = [v + (shift if i % 3 != 2 else 0) for i, v in enumerate(a["keypoints"])]
        results.append({"image_id": a["image_id"], "category_id": 1, "keypoints": keypoints, "score": 1.0})
    return results


def test_perfect_predictions_score_100_and_shifted_ones_less(crowdpose_mini):
    pytest.importorskip("xtcocotools", reason="CrowdPose's protocol needs xtcocotools (optional)")
    json_file = str(crowdpose_mini / "test_crowdpose.json")
    perfect = crowdpose.crowdpose_metrics(json_file, _ground_truth_as_results(json_file), CROWDPOSE.oks_sigmas)
    assert set(perfect) == {f"crowdpose_{m}" for m in crowdpose.CROWDPOSE_METRICS}
    assert perfect["crowdpose_AP"] == pytest.approx(100.0)
    assert perfect["crowdpose_APmedium"] == pytest.approx(100.0)  # crowd indices 0.33 and 0.39
    shifted = crowdpose.crowdpose_metrics(json_file, _ground_truth_as_results(json_file, 8.0), CROWDPOSE.oks_sigmas)
    assert shifted["crowdpose_AP"] < 90.0


def test_without_xtcocotools_the_evaluator_warns_that_ap_is_not_comparable(crowdpose_mini_dataset, monkeypatch, caplog):
    from detectron2.data import MetadataCatalog

    metadata = MetadataCatalog.get(crowdpose_mini_dataset)
    monkeypatch.setattr(metadata, "keypoint_evaluation", "crowdpose", raising=False)
    monkeypatch.setattr(crowdpose, "available", lambda: False)
    evaluator = KeypointEvaluator(crowdpose_mini_dataset, distributed=False)
    results = _ground_truth_as_results(metadata.source_json_file)
    for r in results:
        r["category_id"] = 0  # the contiguous id detectron2's evaluator maps back
    evaluator._results = {}  # as COCOEvaluator.evaluate() starts
    with caplog.at_level(logging.WARNING):
        evaluator._eval_predictions([{"image_id": r["image_id"], "instances": [r]} for r in results])
    assert "not comparable with published CrowdPose tables" in caplog.text
    assert "crowdpose_AP" not in evaluator._results["keypoints"]
