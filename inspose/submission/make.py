"""Making a COCO keypoint submission (``tools/make_submission.py``): predict on COCO test-dev or
any image list, validate the results, write the json + zip for the evaluation server.

Default images: ``keypoints_coco_2017_test-dev`` ($DETECTRON2_DATASETS/coco/annotations/
image_info_test-dev2017.json and coco/test2017/). An image-info file (a json with an ``images``
list) and its image folder are registered under a fresh name instead. The results are validated
before anything is written; a missing or corrupt image stops the run with its path and writes
nothing. ``KeypointResultsCollector`` gathers the results records during inference.
"""
import hashlib
import itertools
import logging
import os
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import DatasetEvaluator, inference_on_dataset
from detectron2.utils import comm

from ..config import ConfigError
from ..data import COCO_PERSON, ImageReadError, KeypointCountError, register_image_list, spec_from_metadata
from ..data.builtin import COCO_TEST_DEV
from ..data.checks import check_datasets_match_config
from ..engine import Trainer, build_model_with_weights, setup_cfg, setup_loggers
from ..engine.launch import launch
from ..engine.weights import UntrainedWeightsError, check_trained_weights
from ..evaluation.results import instances_to_keypoint_results
from .files import SubmissionError, validate_submission, write_submission

__all__ = [
    "EXPECTED_ERRORS",
    "KeypointResultsCollector",
    "SubmissionSummary",
    "make_submission",
    "predict",
    "run_submission",
    "submission_dataset",
]

logger = logging.getLogger("inspose.submission")
EXPECTED_ERRORS = (
    SubmissionError, ImageReadError, KeypointCountError, ConfigError, FileNotFoundError, UntrainedWeightsError
)  # fmt: skip


@dataclass
class SubmissionSummary:
    json_path: str
    zip_path: str
    num_results: int
    num_images: int
    images_without_detections: int


class KeypointResultsCollector(DatasetEvaluator):
    """Collects COCO keypoint results; ``evaluate()`` returns ``{"results", "image_ids"}``.

    ``results`` is the list of records of every process and ``image_ids`` the ids of every image
    that was predicted on, on the main process; other processes get ``{}``.
    """

    def __init__(self, category_id: int = 1):
        self.category_id = category_id
        self.reset()

    def reset(self) -> None:
        self._results: List[dict] = []
        self._image_ids: List[int] = []

    def process(self, inputs, outputs) -> None:
        for item, output in zip(inputs, outputs):
            self._image_ids.append(item["image_id"])
            instances = output["instances"].to("cpu")
            self._results.extend(instances_to_keypoint_results(instances, item["image_id"], self.category_id))

    def evaluate(self) -> Dict[str, list]:
        if comm.get_world_size() > 1:
            comm.synchronize()
            results = list(itertools.chain(*comm.gather(self._results, dst=0)))
            image_ids = list(itertools.chain(*comm.gather(self._image_ids, dst=0)))
        else:
            results, image_ids = self._results, self._image_ids
        if not comm.is_main_process():
            return {}
        return {"results": results, "image_ids": image_ids}


def _keypoint_spec(cfg):
    """The keypoint metadata of the model's training data (COCO person when it has none)."""
    for name in cfg.DATASETS.TRAIN:
        metadata = MetadataCatalog.get(name)
        if hasattr(metadata, "keypoint_names") and hasattr(metadata, "keypoint_oks_sigmas"):
            return spec_from_metadata(metadata)
    return COCO_PERSON


def submission_dataset(cfg, image_info: Optional[str], image_root: Optional[str]) -> str:
    """The dataset to predict on: test-dev, or the image list registered under a fresh name."""
    if image_info is None:
        return COCO_TEST_DEV
    key = f"{os.path.abspath(image_info)}|{os.path.abspath(image_root)}"
    base = "submission_images_" + hashlib.sha1(key.encode()).hexdigest()[:10]
    name, index = base, 1
    while name in DatasetCatalog.list():
        index += 1
        name = f"{base}_{index}"
    register_image_list(name, image_info, image_root, _keypoint_spec(cfg))
    return name


def _load_model(cfg):
    """The model with trained weights (``check_trained_weights``: a submission never runs untrained)."""
    check_trained_weights(cfg.MODEL.WEIGHTS, flag=None)
    return build_model_with_weights(cfg)


def predict(cfg, dataset_name: str) -> Tuple[List[dict], List[int]]:
    """(results records, ids of the images predicted on), complete on the main process."""
    model = _load_model(cfg)
    loader = Trainer.build_test_loader(cfg, dataset_name)
    output = inference_on_dataset(model, loader, KeypointResultsCollector())
    return output.get("results", []), output.get("image_ids", [])


def _check_every_image_predicted(listed: List[int], predicted: List[int]) -> None:
    missed = set(listed) - set(predicted)
    if missed:
        raise SubmissionError(f"{len(missed)} listed images were not predicted on, e.g. {sorted(missed)[:5]}")


def make_submission(args) -> Optional[SubmissionSummary]:
    """Predict, validate, write (on the main process, which returns the summary).

    Args:
        args: the tool's arguments: ``config_file``, ``opts`` (KEY VALUE overrides), ``output``
            (folder), ``name``, and ``image_info`` / ``image_root`` (None for COCO test-dev).
    """
    cfg = setup_cfg(args, default_setup_fn=None)
    setup_loggers()
    dataset = submission_dataset(cfg, args.image_info, args.image_root)
    check_datasets_match_config(cfg, [dataset])
    listed = [record["image_id"] for record in DatasetCatalog.get(dataset)]
    results, predicted = predict(cfg, dataset)
    if not comm.is_main_process():
        return None
    _check_every_image_predicted(listed, predicted)
    validate_submission(results, listed, cfg.MODEL.INSPOSE.NUM_KEYPOINTS)
    json_path, zip_path = write_submission(results, args.output, args.name)
    without = len(set(listed) - {r["image_id"] for r in results})
    summary = SubmissionSummary(json_path, zip_path, len(results), len(listed), without)
    logger.info(
        "wrote %s and %s: %d results on %d images; %d listed images have no detection",
        json_path, zip_path, len(results), len(listed), without,
    )  # fmt: skip
    if not results:
        logger.warning("the submission holds no results: is MODEL.INSPOSE.SCORE_THRESH_TEST too high?")
    return summary


def run_submission(args) -> int:
    """``make_submission`` in ``args.num_gpus`` processes; 0 when the submission was written, 1
    with an error message on stderr for a known failure."""
    try:
        if args.num_gpus > 1:
            launch(make_submission, args.num_gpus, dist_url="auto", args=(args,))
        else:
            make_submission(args)
    except EXPECTED_ERRORS as error:
        print(f"make_submission: error: {error}", file=sys.stderr)
        return 1
    return 0
