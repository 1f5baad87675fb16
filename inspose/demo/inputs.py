"""What the demo reads and where it writes: pictures named by files, globs and folders, their
output paths, their COCO image ids, and the video's output path."""
import glob
import logging
import os
from typing import List, Optional

import cv2
import numpy as np
from detectron2.data import detection_utils as utils
from PIL import Image

__all__ = [
    "IMAGE_EXTENSIONS",
    "expand_inputs",
    "image_id_of",
    "is_picture",
    "picture_outputs",
    "read_picture",
    "video_output",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
logger = logging.getLogger("inspose.demo")


def is_picture(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def expand_inputs(patterns: List[str]) -> List[str]:
    """Files named, matched by globs, or inside folders (pictures only), in order, without repeats."""
    found = []
    for pattern in patterns:
        if os.path.isdir(pattern):
            names = sorted(os.listdir(pattern))
            found += [os.path.join(pattern, n) for n in names if is_picture(n)]
        elif any(c in pattern for c in "*?["):
            found += sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
        elif os.path.isfile(pattern):
            found.append(pattern)
        else:
            raise SystemExit(f"--input {pattern}: no such file, folder or matching glob")
    unique = list(dict.fromkeys(found))
    if not unique:
        raise SystemExit(f"--input {' '.join(patterns)}: no pictures found")
    return unique


def picture_outputs(paths: List[str], output: str) -> List[str]:
    """Where each picture goes: ``output`` itself for one input named like a picture, else
    ``output``/<name> (a repeated name gets its position appended)."""
    if len(paths) == 1 and is_picture(output) and not os.path.isdir(output):
        return [output]
    targets, used = [], set()
    for index, path in enumerate(paths):
        name = os.path.basename(path)
        if name in used:
            stem, ext = os.path.splitext(name)
            name = f"{stem}_{index}{ext}"
        used.add(name)
        targets.append(os.path.join(output, name))
    return targets


def image_id_of(path: str, index: int) -> int:
    """The COCO ``image_id`` of a picture: its file stem when numeric, else its position."""
    stem = os.path.splitext(os.path.basename(path))[0]
    return int(stem) if stem.isdigit() else index


def _is_deep_grey(path: str) -> bool:
    """Whether Pillow opens ``path`` as a 16 / 32-bit greyscale picture (which its RGB conversion
    would saturate to white)."""
    with Image.open(path) as image:
        return image.mode.startswith("I")


def _read_deep_grey(path: str) -> np.ndarray:
    """A 16-bit (or 32-bit) greyscale picture as (H, W, 3) uint8 BGR, its range scaled to 8 bits."""
    pixels = cv2.imread(path, cv2.IMREAD_UNCHANGED).astype(np.float64)
    scale = 255.0 / 65535.0 if pixels.max() <= 65535 else 255.0 / max(1.0, pixels.max())
    grey = np.clip(pixels * scale + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


def read_picture(path: str) -> Optional[np.ndarray]:
    """(H, W, 3) uint8 BGR picture (EXIF rotation applied; greyscale, RGBA and 16-bit converted),
    or None (logged) when it cannot be read."""
    try:
        if _is_deep_grey(path):
            return _read_deep_grey(path)
        return utils.read_image(path, format="BGR")
    except (OSError, ValueError, SyntaxError, AttributeError, cv2.error) as error:
        logger.warning("skipping %s: cannot read it (%s)", path, error)
        return None


def video_output(video_input: str, output: Optional[str]) -> Optional[str]:
    """The annotated video's path: ``output``, or ``output``/<stem>.mp4 for a folder; None to show."""
    if not output:
        return None
    if os.path.isdir(output):
        stem = os.path.splitext(os.path.basename(video_input))[0]
        return os.path.join(output, f"{stem}.mp4")
    return output
