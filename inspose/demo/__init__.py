"""The logic of ``tools/demo.py``: InsPose on pictures, a video or a webcam, skeletons drawn.

``inputs`` expands the pictures and names the outputs, ``predictor`` runs the model on one picture
and draws it (``inspose.visualization``), ``sources`` loops over pictures, video frames or the
webcam.
"""
from .inputs import expand_inputs, image_id_of, picture_outputs
from .predictor import PosePredictor, annotate, pose_style
from .sources import check_display, run_pictures, run_video, run_webcam

__all__ = [
    "PosePredictor",
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
