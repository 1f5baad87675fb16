"""Registering COCO-format keypoint datasets with detectron2, validated and repaired.

``register_keypoint_dataset`` registers any COCO-format keypoint dataset lazily: the first time it
is loaded, its annotation file is validated (``validation/``). When repairs were needed, the
repaired annotations are written once to a cache file (``$INSPOSE_CACHE``, default
``~/.cache/inspose``) named by their content, and both loading (detectron2's ``load_coco_json``)
and evaluation (``metadata.json_file``) read that file, so they see the same annotations.
"""
import hashlib
import json
import logging
import os
from typing import Optional, Sequence, Tuple, Union

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json

from ..io_utils import write_bytes_atomically
from .keypoint_spec import KeypointSpec
from .validation import load_and_validate

__all__ = [
    "register_keypoint_dataset",
    "register_image_list",
    "validated_json_file",
    "evaluation_json_file",
    "load_image_list",
    "cache_dir",
]

logger = logging.getLogger(__name__)
_VALIDATED = {}  # (json_file, K) -> path of the file that loading and evaluation read


def cache_dir() -> str:
    """Folder for repaired annotation files."""
    return os.path.expanduser(os.environ.get("INSPOSE_CACHE", "~/.cache/inspose"))


def _write_once(coco: dict, stem: str) -> str:
    """Write ``coco`` to the cache under a name derived from its content; return the path."""
    text = json.dumps(coco, separators=(",", ":")).encode()
    digest = hashlib.sha1(text).hexdigest()[:16]
    folder = os.path.join(cache_dir(), "annotations")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{stem}-repaired-{digest}.json")
    if not os.path.exists(path):
        write_bytes_atomically(path, text)  # concurrent processes write identical bytes
    return path


def validated_json_file(json_file: str, num_keypoints: int) -> str:
    """The annotation file to load and evaluate with: ``json_file`` itself or its repaired copy.

    Raises:
        AnnotationError: naming the file and record when a problem cannot be repaired.
    """
    key = (os.path.abspath(json_file), num_keypoints)
    if key not in _VALIDATED:
        coco, report = load_and_validate(json_file, num_keypoints)
        path = json_file
        if report.changed:
            stem = os.path.splitext(os.path.basename(json_file))[0]
            path = _write_once(coco, stem)
            logger.warning("%s: repaired annotations written to %s", json_file, path)
        _VALIDATED[key] = path
    return _VALIDATED[key]


def _check_image_root(name: str, image_root: str) -> None:
    if not os.path.isdir(image_root):
        raise FileNotFoundError(f"dataset {name!r}: image folder {image_root} does not exist")


def _load_validated(name: str, json_file: str, image_root: str, num_keypoints: int):
    path = validated_json_file(json_file, num_keypoints)
    _check_image_root(name, image_root)
    metadata = MetadataCatalog.get(name)
    if not hasattr(metadata, "json_file"):
        metadata.set(json_file=path)
    return load_coco_json(path, image_root, name, extra_annotation_keys=["area", "num_keypoints"])


def register_keypoint_dataset(
    name: str,
    json_file: str,
    image_root: str,
    spec: Union[KeypointSpec, Sequence[str], None] = None,
    flip_pairs: Optional[Sequence[Tuple[int, int]]] = None,
    skeleton: Optional[Sequence[Tuple[int, int]]] = None,
    oks_sigmas: Optional[Sequence[float]] = None,
    *,
    keypoint_names: Optional[Sequence[str]] = None,
) -> None:
    """Register a COCO-format keypoint dataset under ``name``.

        register_keypoint_dataset(name, json_file, image_root, spec)
        register_keypoint_dataset(name, json_file, image_root, names, flip_pairs, skeleton, sigmas)

    Args:
        json_file, image_root: the annotation file and the folder its ``file_name``s are relative to.
        spec: the dataset's ``KeypointSpec``. The older form gives its four parts instead (by
            position, or as ``keypoint_names=``, ``flip_pairs=``, ``skeleton=``, ``oks_sigmas=``):
            the K names in the file's order, 0-based index pairs swapped by a horizontal flip,
            0-based index pairs joined when drawing, and the K OKS sigmas evaluation uses.
    """
    spec = _spec_of(spec, keypoint_names, flip_pairs, skeleton, oks_sigmas)
    k = spec.num_keypoints
    DatasetCatalog.register(name, lambda: _load_validated(name, json_file, image_root, k))
    MetadataCatalog.get(name).set(
        image_root=image_root,
        evaluator_type="coco",
        source_json_file=json_file,
        **spec.to_metadata(),
    )


def _spec_of(spec, keypoint_names, flip_pairs, skeleton, oks_sigmas) -> KeypointSpec:
    """The ``KeypointSpec`` of either calling form of ``register_keypoint_dataset``."""
    parts = (flip_pairs, skeleton, oks_sigmas)
    if isinstance(spec, KeypointSpec):
        if keypoint_names is not None or any(p is not None for p in parts):
            raise TypeError("register_keypoint_dataset: give a KeypointSpec or its parts, not both")
        return spec
    if spec is not None and keypoint_names is not None:
        raise TypeError("register_keypoint_dataset: keypoint names given twice")
    names = keypoint_names if keypoint_names is not None else spec
    if names is None or any(p is None for p in parts):
        raise TypeError(
            "register_keypoint_dataset needs a KeypointSpec, or keypoint_names, flip_pairs, "
            "skeleton and oks_sigmas"
        )
    return KeypointSpec.from_parts(names, flip_pairs, skeleton, oks_sigmas)


def evaluation_json_file(name: str) -> str:
    """The annotation file evaluation must use for dataset ``name`` (validated when inspose registered it)."""
    metadata = MetadataCatalog.get(name)
    if hasattr(metadata, "source_json_file"):
        path = validated_json_file(metadata.source_json_file, len(metadata.keypoint_names))
        if not hasattr(metadata, "json_file"):
            metadata.set(json_file=path)
        return path
    if not hasattr(metadata, "json_file"):
        raise KeyError(f"dataset {name!r} has no json_file in its metadata to evaluate against")
    return metadata.json_file


def load_image_list(json_file: str, image_root: str):
    """Records of an image-info file (no annotations), e.g. COCO's image_info_test-dev2017.json.

    Returns:
        [{"file_name", "height", "width", "image_id"}] in file order.
    """
    with open(json_file) as f:
        info = json.load(f)
    if not isinstance(info, dict) or not isinstance(info.get("images"), list):
        raise ValueError(f"{json_file}: an image-info file needs an 'images' list")
    records = []
    for image in info["images"]:
        missing = [k for k in ("id", "file_name", "height", "width") if k not in image]
        if missing:
            raise ValueError(f"{json_file}: image record {image.get('id', '?')} lacks {missing}")
        records.append(
            {
                "file_name": os.path.join(image_root, image["file_name"]),
                "height": image["height"],
                "width": image["width"],
                "image_id": image["id"],
            }
        )
    return records


def register_image_list(name: str, json_file: str, image_root: str, spec: KeypointSpec) -> None:
    """Register an image-info file (images to predict on, no annotations) under ``name``."""

    def load():
        if not os.path.isfile(json_file):
            raise FileNotFoundError(f"dataset {name!r}: image-info file {json_file} does not exist")
        _check_image_root(name, image_root)
        return load_image_list(json_file, image_root)

    DatasetCatalog.register(name, load)
    MetadataCatalog.get(name).set(image_root=image_root, image_info_file=json_file, **spec.to_metadata())
