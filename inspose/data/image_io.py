"""Reading dataset images with errors that name the file, and the skip policy of training.

Training skips an unreadable image with a logged warning and a running count (a 100-epoch run must
not die on one truncated JPEG); evaluation and submission raise ``ImageReadError`` naming the path.
"""
import logging
import threading

import numpy as np
from detectron2.data import detection_utils as utils

__all__ = ["ImageReadError", "read_dataset_image", "SkippedImages"]

logger = logging.getLogger(__name__)


class ImageReadError(OSError):
    """An image that is missing, corrupt, truncated or of another size than its record says."""


def read_dataset_image(record: dict, image_format: str) -> np.ndarray:
    """Read ``record["file_name"]`` as (H, W, C) in ``image_format`` and check its size.

    Raises:
        ImageReadError: naming the file and the image id.
    """
    path = record.get("file_name", "<no file_name>")
    where = f"image {path} (image_id {record.get('image_id', '?')})"
    try:
        image = utils.read_image(path, format=image_format)
    except FileNotFoundError:
        raise ImageReadError(f"{where} does not exist") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise ImageReadError(f"{where} cannot be decoded ({error})") from None
    expected = (record.get("height"), record.get("width"))
    if None not in expected and tuple(image.shape[:2]) != expected:
        raise ImageReadError(
            f"{where} is {image.shape[1]}x{image.shape[0]} (WxH) but its record says "
            f"{expected[1]}x{expected[0]}"
        )
    return image


class SkippedImages:
    """A process-wide count of the images training skipped, logged with every skip."""

    _lock = threading.Lock()
    count = 0

    @classmethod
    def skip(cls, error: Exception) -> None:
        with cls._lock:
            cls.count += 1
            total = cls.count
        logger.warning("Skipping an unreadable training image (%d so far): %s", total, error)
