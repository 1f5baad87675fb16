"""COCO keypoint submissions (``tools/make_submission.py``).

``files`` checks results records and writes the json and zip; ``make`` collects the records during
inference on the image list and ties them to the model.
"""
from .files import RESULT_FIELDS, SubmissionError, results_file_name, validate_submission, write_submission
from .make import KeypointResultsCollector, make_submission, run_submission

__all__ = [
    "KeypointResultsCollector",
    "RESULT_FIELDS",
    "SubmissionError",
    "make_submission",
    "results_file_name",
    "run_submission",
    "validate_submission",
    "write_submission",
]
