"""COCO OKS evaluation of keypoints with sigmas from the dataset's metadata, AP and AR.

A thin subclass of detectron2's ``COCOEvaluator`` (pycocotools' COCOeval underneath): it evaluates
the keypoint task only, takes ``keypoint_oks_sigmas`` from the dataset's metadata (nothing assumes
17 keypoints), evaluates against the validated / repaired annotation file, uses the exact
(non-"fast") implementation when detectron2's compiled ops are absent, and reports the five AR
numbers beside the five AP numbers (detectron2 v0.6 reports AP only). A dataset whose description
says ``evaluation: crowdpose`` also gets CrowdPose's protocol (``crowdpose.py``: ``crowdpose_AP``,
``crowdpose_APeasy``, ...) when xtcocotools is installed.
"""
import itertools
import logging

from detectron2.data import MetadataCatalog
from detectron2.evaluation import COCOEvaluator
from detectron2.utils.logger import create_small_table

from ..compat import HAS_COMPILED_OPS
from ..data.register import evaluation_json_file
from . import crowdpose

__all__ = ["KeypointEvaluator", "KEYPOINT_METRICS"]

KEYPOINT_METRICS = ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]
logger = logging.getLogger(__name__)


def oks_sigmas_of(dataset_name: str):
    """The dataset's per-keypoint OKS sigmas (K floats), checked against its keypoint names."""
    metadata = MetadataCatalog.get(dataset_name)
    sigmas = getattr(metadata, "keypoint_oks_sigmas", None)
    if sigmas is None:
        raise KeyError(f"dataset {dataset_name!r}: metadata has no 'keypoint_oks_sigmas'")
    names = getattr(metadata, "keypoint_names", None)
    if names is not None and len(names) != len(sigmas):
        raise ValueError(
            f"dataset {dataset_name!r}: {len(sigmas)} OKS sigmas for {len(names)} keypoint names"
        )
    return list(sigmas)


class KeypointEvaluator(COCOEvaluator):
    """OKS AP / AR of ``pred_keypoints`` on a COCO-format keypoint dataset."""

    def __init__(self, dataset_name: str, output_dir=None, distributed: bool = True):
        evaluation_json_file(dataset_name)  # validates / repairs and sets metadata.json_file
        super().__init__(
            dataset_name,
            tasks=("keypoints",),
            distributed=distributed,
            output_dir=output_dir,
            use_fast_impl=HAS_COMPILED_OPS,
            kpt_oks_sigmas=oks_sigmas_of(dataset_name),
        )

    def _eval_predictions(self, predictions, img_ids=None):
        """COCO's evaluation, then CrowdPose's for a dataset that asks for it."""
        super()._eval_predictions(predictions, img_ids=img_ids)
        if getattr(self._metadata, "keypoint_evaluation", "coco") != "crowdpose":
            return
        if not crowdpose.available():
            logger.warning(
                "%s: CrowdPose's protocol (AP easy / medium / hard) needs xtcocotools (%s); the AP "
                "above is pycocotools' COCO AP, not comparable with published CrowdPose tables",
                self._metadata.name, crowdpose.INSTALL,
            )  # fmt: skip
            return
        results = list(itertools.chain(*[x["instances"] for x in predictions]))  # dataset ids now
        if results and "keypoints" in self._results:
            metrics = crowdpose.crowdpose_metrics(
                self._metadata.json_file, results, self._kpt_oks_sigmas
            )
            self._results["keypoints"].update(metrics)
            self._logger.info("CrowdPose protocol:\n" + create_small_table(metrics))

    def _derive_coco_results(self, coco_eval, iou_type, class_names=None):
        results = super()._derive_coco_results(coco_eval, iou_type, class_names=None)
        if iou_type != "keypoints" or coco_eval is None:
            if iou_type == "keypoints":
                results.update({m: float("nan") for m in KEYPOINT_METRICS[5:]})
            return results
        for index, metric in enumerate(KEYPOINT_METRICS[5:], start=5):
            value = coco_eval.stats[index]
            results[metric] = float(value * 100) if value >= 0 else float("nan")
        self._logger.info(
            "Keypoint recall:\n" + create_small_table({m: results[m] for m in KEYPOINT_METRICS[5:]})
        )
        return results
