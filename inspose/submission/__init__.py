"""COCO keypoint submissions (``tools/make_submission.py``).

``validate`` checks results records, ``collector`` gathers them during inference, ``writer`` writes
the json and zip, ``make`` ties them to the model and the image list.
"""
from .collector import KeypointResultsCollector
from .validate import RESULT_FIELDS, SubmissionError, validate_submission
from .writer import results_file_name, write_submission

__all__ = [
    "KeypointResultsCollector",
    "RESULT_FIELDS",
    "SubmissionError",
    "results_file_name",
    "validate_submission",
    "write_submission",
]
