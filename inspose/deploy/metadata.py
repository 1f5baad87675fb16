"""The metadata an exported InsPose carries (pure Python: the runtime reads it without torch).

``export_metadata`` (``export.py``) writes it; ``check_metadata`` reads it back and says what is
wrong with a file that is not an InsPose export or was made for another K or input format.
"""
import json
from typing import Dict, Optional

__all__ = ["FORMAT_VERSION", "METADATA_KEY", "TORCH_EXPORT_EXTRA_FILE", "MetadataError", "check_metadata"]

FORMAT_VERSION = 1
METADATA_KEY = "inspose"  # the ONNX metadata_props entry
TORCH_EXPORT_EXTRA_FILE = "inspose.json"  # the torch.export archive's extra file
REQUIRED = ("num_keypoints", "keypoint_names", "input_format", "min_size_test", "max_size_test")


class MetadataError(ValueError):
    """An exported file without InsPose metadata, or made for another K or input format."""


def check_metadata(
    text: Optional[str],
    source: str,
    num_keypoints: Optional[int] = None,
    input_format: Optional[str] = None,
) -> Dict:
    """The parsed metadata of ``source``, checked against what the caller expects.

    Args:
        text: the stored JSON, or None when the file has none.
        num_keypoints, input_format: what the caller's dataset / images need (None: anything).
    """
    if not text:
        raise MetadataError(f"{source} has no '{METADATA_KEY}' metadata: not made by tools/export_model.py")
    metadata = json.loads(text)
    missing = [key for key in REQUIRED if key not in metadata]
    if missing:
        raise MetadataError(f"{source}: its InsPose metadata lacks {missing}")
    if metadata.get("format_version", 0) > FORMAT_VERSION:
        raise MetadataError(f"{source} was exported by a newer InsPose (metadata version {metadata['format_version']})")
    if num_keypoints is not None and metadata["num_keypoints"] != num_keypoints:
        raise MetadataError(
            f"{source} predicts {metadata['num_keypoints']} keypoints per person, but "
            f"{num_keypoints} are expected here (a model exported for another dataset?)"
        )
    if input_format is not None and metadata["input_format"] != input_format:
        raise MetadataError(
            f"{source} takes {metadata['input_format']} images, but {input_format} was asked for"
        )
    return metadata
