"""The logic of ``tools/demo.py``: InsPose on pictures, a video or a webcam, skeletons drawn.

``inputs`` expands the pictures and names the outputs, ``poses`` keeps the persons above the
confidence threshold (by the final score) from either backend, ``predictor`` runs the model on one
picture and draws it (``inspose.visualization``), ``sources`` loops over pictures, video frames or the
webcam.
"""
from .inputs import expand_inputs, image_id_of, picture_outputs
from .poses import ConfidentPoses, as_poses, keep_confident, pose_records
from .predictor import PosePredictor, annotate, export_style, pose_style
from .sources import check_display, run_pictures, run_video, run_webcam

__all__ = [
    "ConfidentPoses",
    "PosePredictor",
    "as_poses",
    "export_style",
    "keep_confident",
    "pose_records",
    "annotate",
    "check_display",
    "expand_inputs",
    "image_id_of",
    "picture_outputs",
    "pose_style",
    "run_pictures",
    "run_video",
    "run_webcam",
]
