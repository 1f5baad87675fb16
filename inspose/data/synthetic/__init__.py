"""A deterministic synthetic COCO-format person-keypoint dataset (figures drawn with OpenCV).

Modules: ``skeleton`` (the articulated figure and its pose sampling), ``render`` (drawing figures,
backgrounds, occluders), ``scene`` (one image and its annotations), ``generator`` (settings and the
dataset writer), ``preview`` (drawing ground truth for pictures).
"""

from .generator import GeneratorSettings, generate_dataset, render_image  # noqa: F401
from .preview import draw_ground_truth  # noqa: F401

__all__ = ["GeneratorSettings", "generate_dataset", "render_image", "draw_ground_truth"]
