"""Evaluation (COCO OKS AP / AR) and COCO results files."""
from .keypoint_evaluator import KEYPOINT_METRICS, KeypointEvaluator, oks_sigmas_of
from .results import instances_to_keypoint_results

__all__ = ["KeypointEvaluator", "KEYPOINT_METRICS", "oks_sigmas_of", "instances_to_keypoint_results"]
