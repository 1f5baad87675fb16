"""``tools/make_submission.py``: predict on COCO test-dev (or any image list) and write the
results json + zip for the evaluation server.

    python tools/make_submission.py --config-file configs/InsPose_R_50_36ep.yaml \
        --output submissions/ [--name NAME] [--num-gpus 8] MODEL.WEIGHTS output/model_final.pth
    python tools/make_submission.py --config-file CFG --output DIR \
        --image-info image_info.json --image-root images/ MODEL.WEIGHTS model.pth

Default images: ``keypoints_coco_2017_test-dev`` ($DETECTRON2_DATASETS/coco/annotations/
image_info_test-dev2017.json and coco/test2017/). ``--image-info/--image-root`` register another
image list (a json with an ``images`` list) under a fresh name. NAME defaults to the config file's
stem. The results are validated before anything is written; a missing or corrupt image stops the
run with its path (exit code 1) and writes nothing.
"""
import argparse
import hashlib
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import inspose  # noqa: F401  (first: compat shim, registrations)
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import inference_on_dataset
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from ..checkpoint import InsPoseCheckpointer
from ..config import ConfigError, load_config
from ..data import COCO_PERSON, ImageReadError, KeypointCountError, register_image_list, spec_from_metadata
from ..data.builtin import COCO_TEST_DEV
from ..data.checks import check_datasets_match_config
from ..engine import Trainer
from ..engine.launch import launch
from ..engine.setup import resolve_device
from .collector import KeypointResultsCollector
from .validate import SubmissionError, validate_submission
from .writer import write_submission

__all__ = ["SubmissionSummary", "make_submission", "main", "parse_args"]

logger = logging.getLogger("inspose.submission")
EXPECTED_ERRORS = (SubmissionError, ImageReadError, KeypointCountError, ConfigError, FileNotFoundError)


@dataclass
class SubmissionSummary:
    json_path: str
    zip_path: str
    num_results: int
    num_images: int
    images_without_detections: int


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--output", required=True, metavar="DIR", help="folder of the json and zip")
    parser.add_argument("--name", help="algorithm name in the file name (default: the config's stem)")
    parser.add_argument("--image-info", metavar="JSON", help="image list to predict on instead of test-dev")
    parser.add_argument("--image-root", metavar="DIR", help="folder the image list's file_names are in")
    parser.add_argument("--num-gpus", type=int, default=1, help="processes, one per GPU")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = parser.parse_args(argv)
    if (args.image_info is None) != (args.image_root is None):
        parser.error("--image-info and --image-root go together")
    args.name = args.name or Path(args.config_file).stem
    return args


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
    weights = cfg.MODEL.WEIGHTS
    if not weights:
        raise SubmissionError("MODEL.WEIGHTS is empty: a submission needs trained weights")
    if "://" not in weights and not os.path.isfile(weights):
        raise SubmissionError(f"MODEL.WEIGHTS {weights} does not exist")
    model = Trainer.build_model(cfg)
    InsPoseCheckpointer(model, cfg=cfg).resume_or_load(weights, resume=False)
    return model


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
    """Predict, validate, write (on the main process, which returns the summary)."""
    cfg = load_config(args.config_file, args.opts)
    resolve_device(cfg)
    cfg.freeze()
    for name in ("detectron2", "fvcore", "inspose"):
        setup_logger(distributed_rank=comm.get_rank(), name=name)
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


def main(argv=None) -> int:
    """0 when the submission was written; 1 with an error message on a known failure."""
    args = parse_args(argv)
    try:
        if args.num_gpus > 1:
            launch(make_submission, args.num_gpus, dist_url="auto", args=(args,))
        else:
            make_submission(args)
    except EXPECTED_ERRORS as error:
        print(f"make_submission: error: {error}", file=sys.stderr)
        return 1
    return 0
