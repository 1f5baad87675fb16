"""Running an exported InsPose with ONNX Runtime: numpy, Pillow and onnxruntime only.

    from inspose.deploy.runtime import OnnxPosePredictor
    predictor = OnnxPosePredictor("inspose.onnx")
    poses = predictor(cv2.imread("people.jpg"))   # BGR (H, W, 3) uint8
    poses.keypoints  # (n, K, 3) x, y, confidence in the image's pixels; poses.scores, poses.boxes

The image is resized as detectron2's test mapper does (``ResizeShortestEdge`` with the exported
``INPUT.MIN_SIZE_TEST`` / ``MAX_SIZE_TEST``, Pillow's bilinear resampling of uint8 pixels), so the
results equal the PyTorch model's on the same picture. Keypoints are in detectron2's continuous
frame (pixel index + 0.5), as the PyTorch model's ``pred_keypoints``.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
from PIL import Image

from .metadata import METADATA_KEY, check_metadata

__all__ = ["OnnxPosePredictor", "Poses", "resized_shape", "resize_like_detectron2"]


@dataclass
class Poses:
    """One image's detections: keypoints (n, K, 3), scores (n,), boxes (n, 4) xyxy, best first."""

    keypoints: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray


def resized_shape(height: int, width: int, short_edge: int, max_size: int) -> Tuple[int, int]:
    """(h, w) after scaling the shorter side to ``short_edge`` and the longer to <= ``max_size``,
    each rounded to the nearest integer (detectron2's ``ResizeShortestEdge`` rule)."""
    scale = short_edge / min(height, width)
    new_h, new_w = height * scale, width * scale
    longer = max(new_h, new_w)
    if longer > max_size:
        new_h, new_w = new_h * max_size / longer, new_w * max_size / longer
    return int(new_h + 0.5), int(new_w + 0.5)


def resize_like_detectron2(image: np.ndarray, short_edge: int, max_size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (h, w, 3) uint8 with Pillow's bilinear filter, as detectron2 resizes."""
    height, width = resized_shape(image.shape[0], image.shape[1], short_edge, max_size)
    return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))


def _as_model_input(bgr: np.ndarray, input_format: str) -> np.ndarray:
    """A BGR (H, W, 3) uint8 image in the model's channel order."""
    if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
        raise ValueError(f"expected a BGR image of shape (H, W, 3) and dtype uint8, got {bgr.shape} {bgr.dtype}")
    if input_format == "BGR":
        return bgr
    if input_format == "RGB":
        return bgr[:, :, ::-1]
    raise ValueError(f"the exported model takes {input_format} images; this runtime converts BGR to BGR or RGB")


class OnnxPosePredictor:
    """Predicts poses with an ONNX file from ``tools/export_model.py`` (CPU by default).

    Args:
        path: the .onnx file.
        num_keypoints, input_format: when given, the file must have been exported for them
            (a clear error otherwise).
        providers: ONNX Runtime execution providers.
        threads: intra-op threads (0: ONNX Runtime's default).
    """

    def __init__(
        self,
        path: str,
        num_keypoints: Optional[int] = None,
        input_format: Optional[str] = None,
        providers=("CPUExecutionProvider",),
        threads: int = 0,
    ):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: not its notes on nodes it cannot fold
        if threads > 0:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(path, options, providers=list(providers))
        stored = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        self.metadata = check_metadata(stored, path, num_keypoints, input_format)
        self.path = path

    @property
    def num_keypoints(self) -> int:
        return self.metadata["num_keypoints"]

    def __call__(self, bgr: np.ndarray) -> Poses:
        """Poses in the (H, W, 3) uint8 BGR image, in its pixel coordinates."""
        m = self.metadata
        pixels = _as_model_input(bgr, m["input_format"])
        resized = resize_like_detectron2(np.ascontiguousarray(pixels), m["min_size_test"], m["max_size_test"])
        return self.run_resized(resized, bgr.shape[:2])

    def _check_input_size(self, size) -> None:
        """A clear error for an input size the exported graph cannot take."""
        m, (height, width) = self.metadata, size
        if m.get("dynamic"):
            low, high = m["dynamic_side_range"]
            if not (low <= height <= high and low <= width <= high):
                raise ValueError(
                    f"{self.path} takes inputs with sides from {low} to {high} px; this image "
                    f"resizes to {height} x {width}"
                )
        elif [height, width] != list(m["input_size"]):
            raise ValueError(
                f"{self.path} was exported for {m['input_size'][0]} x {m['input_size'][1]} inputs, "
                f"this image resizes to {height} x {width}: export with --dynamic, or with "
                "--size H,W of the resized images"
            )

    def run_resized(self, resized: np.ndarray, original_size: Tuple[int, int]) -> Poses:
        """Poses from an image already resized and in the model's format, mapped to ``original_size``."""
        self._check_input_size(resized.shape[:2])
        feeds = {
            "image": np.ascontiguousarray(resized.transpose(2, 0, 1), dtype=np.float32),
            "original_size": np.asarray(original_size, dtype=np.float32),
        }
        keypoints, scores, boxes, count = self.session.run(None, feeds)
        n = int(count)
        return Poses(keypoints[:n], scores[:n], boxes[:n])
