"""CrowdPose's own evaluation protocol, through the extended COCO API ``xtcocotools`` (optional).

CrowdPose's published numbers are not pycocotools' COCO AP: they use ``xtcocotools``' COCOeval
with ``iouType="keypoints_crowd"`` and ``use_area=False`` (no area ranges; up to 20 detections per
image) and add AP easy / medium / hard over the images whose ``crowdIndex`` is below 0.2, in
[0.2, 0.8), and from 0.8. ``crowdpose_metrics`` computes them for a dataset whose description says
``evaluation: crowdpose``; without xtcocotools, ``available()`` is False and the evaluator warns.

Install: ``pip install --no-binary xtcocotools xtcocotools`` (its binary wheel is built against
numpy 1 and does not import with numpy 2; the source build, with Cython, takes about 25 s).
"""
import contextlib
import io
import logging
from importlib.util import find_spec
from typing import Dict, List, Sequence

__all__ = ["CROWDPOSE_METRICS", "INSTALL", "available", "crowdpose_metrics"]

logger = logging.getLogger(__name__)
# The 9 statistics of xtcocotools' keypoints_crowd summary, in its order, as result keys.
CROWDPOSE_METRICS = ["AP", "AP50", "AP75", "AR", "AR50", "AR75", "APeasy", "APmedium", "APhard"]
INSTALL = "pip install --no-binary xtcocotools xtcocotools"


def available() -> bool:
    """Whether xtcocotools can be imported."""
    return find_spec("xtcocotools") is not None


def crowdpose_metrics(json_file: str, results: List[dict], sigmas: Sequence[float]) -> Dict[str, float]:
    """CrowdPose's AP / AR (x100) of COCO keypoint ``results`` against ``json_file``.

    Returns:
        {"crowdpose_<metric>": value} for each of ``CROWDPOSE_METRICS``.
    """
    import numpy as np
    from xtcocotools.coco import COCO
    from xtcocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()) as printed:  # its prints, into the log
        ground_truth = COCO(json_file)
        detections = ground_truth.loadRes(results)
        evaluation = COCOeval(ground_truth, detections, "keypoints_crowd", np.array(sigmas), use_area=False)
        evaluation.params.useSegm = None
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    logger.info("CrowdPose evaluation (xtcocotools):\n%s", printed.getvalue().strip())
    return {
        f"crowdpose_{m}": float(v * 100) if v >= 0 else float("nan")
        for m, v in zip(CROWDPOSE_METRICS, evaluation.stats)
    }
