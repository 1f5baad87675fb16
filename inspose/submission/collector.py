"""``KeypointResultsCollector``: a detectron2 ``DatasetEvaluator`` that only collects results.

Given to ``inference_on_dataset``, it turns every image's ``pred_keypoints`` into COCO results
records (``instances_to_keypoint_results``: no ``bbox``, COCO's pixel-index frame) and, launched on
several processes, gathers them on the main process with ``comm.gather``.
"""
import itertools
from typing import Dict, List

from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm

from ..evaluation.results import instances_to_keypoint_results

__all__ = ["KeypointResultsCollector"]


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
