"""Fixing how many persons reach each model's keypoint stage, and checking it.

Untrained weights give no confident detections, so both models are set to pass exactly P persons
to their keypoint stage whatever the scores:

- InsPose: every location passes the score threshold (-1 < sigmoid), the top-P by score are the
  candidates (PRE_NMS_TOPK_TEST = P, PRE_NMS_TOPK_PER_LEVEL off), NMS keeps everything (IoU
  threshold 1.0: IoU > 1 never happens) and TEST.DETECTIONS_PER_IMAGE = P, so P KP-Nets run and P
  instances come out. With N > P candidates (``candidates``) the top N pass to NMS and P come
  out: N KP-Nets run before NMS, P after it (KPNETS_AFTER_NMS).
- Keypoint R-CNN: the box predictor's test score threshold -1, NMS threshold 1.0 and
  DETECTIONS_PER_IMAGE = P, so P of the RPN's proposals (up to 1000 at test time) become the
  boxes the keypoint head runs on. This needs at least P proposals; ``check_count`` says so when
  there are fewer.

The counters record, per forward, how many instances the KP-Nets / the keypoint head saw.
"""
from contextlib import contextmanager
from typing import Iterator, List, Optional

from torch import nn

from .timing import replace_method

__all__ = [
    "force_inspose_persons",
    "kpnets_run",
    "force_keypoint_rcnn_persons",
    "count_inspose_kpnets",
    "count_keypoint_head_boxes",
    "check_count",
    "ForcedCountError",
]


class ForcedCountError(RuntimeError):
    """The keypoint stage did not see the forced number of persons."""


def force_inspose_persons(model: nn.Module, persons: int, candidates: Optional[int] = None) -> None:
    """Make ``model.predictor`` (InsPosePredictor) pass exactly ``candidates`` (default:
    ``persons``) candidates to NMS and return ``persons`` of them, the best scores.

    KP-Nets before NMS (the paper's order) then run on the ``candidates``; KP-Nets after NMS
    (KPNETS_AFTER_NMS) on the ``persons`` survivors only (``kpnets_run``).
    """
    candidates = persons if candidates is None else candidates
    if candidates < persons:
        raise ValueError(f"candidates ({candidates}) must be >= persons ({persons})")
    predictor = model.predictor
    predictor.score_thresh = -1.0
    predictor.pre_nms_topk = candidates
    predictor.pre_nms_topk_per_level = 0  # PRE_NMS_TOPK_PER_LEVEL would pass k per level
    predictor.nms_thresh = 1.0
    predictor.soft_nms_min_score = -1.0  # soft-NMS keeps every (decayed) candidate too
    predictor.max_detections = persons


def kpnets_run(model: nn.Module, persons: int, candidates: Optional[int] = None) -> int:
    """How many KP-Nets ``model`` runs per image under ``force_inspose_persons``."""
    if candidates is None or model.predictor.kpnets_after_nms:
        return persons
    return candidates


def force_keypoint_rcnn_persons(model: nn.Module, persons: int) -> None:
    """Make a GeneralizedRCNN's ROI heads keep exactly ``persons`` boxes for the keypoint head."""
    box_predictor = model.roi_heads.box_predictor
    box_predictor.test_score_thresh = -1.0
    box_predictor.test_nms_thresh = 1.0
    box_predictor.test_topk_per_image = persons


@contextmanager
def count_inspose_kpnets(model: nn.Module) -> Iterator[List[int]]:
    """Yields a list that gets, per image, the number of KP-Nets ``run_kpnets`` ran."""
    seen: List[int] = []

    def make(run_kpnets):
        def counting(features, params, *args, **kwargs):
            seen.append(int(params.shape[0]))
            return run_kpnets(features, params, *args, **kwargs)

        return counting

    with replace_method(model.predictor, "run_kpnets", make):
        yield seen


@contextmanager
def count_keypoint_head_boxes(model: nn.Module) -> Iterator[List[int]]:
    """Yields a list that gets, per forward, the number of boxes the keypoint head received.

    The head's input is the pooled (R, C, 14, 14) features of all R boxes of the batch.
    """
    seen: List[int] = []
    handle = model.roi_heads.keypoint_head.register_forward_pre_hook(
        lambda module, args: seen.append(int(args[0].shape[0]))
    )
    try:
        yield seen
    finally:
        handle.remove()


def check_count(seen: List[int], persons: int, what: str) -> int:
    """Raise ForcedCountError unless the last recorded count equals ``persons``; return it."""
    if not seen or seen[-1] != persons:
        got = seen[-1] if seen else "nothing"
        hint = ""
        if "Keypoint R-CNN" in what:
            hint = " (fewer RPN proposals than persons? use a larger --size or fewer --persons)"
        raise ForcedCountError(f"{what}: expected {persons} instances, got {got}{hint}")
    return seen[-1]
