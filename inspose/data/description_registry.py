"""Registering the splits of dataset descriptions, with a record of which description registered what.

``register_description(description)`` registers every split with ``register_keypoint_dataset``. A
name that is already registered is left as it is when it has the same annotation file, image folder,
keypoint names, flip pairs and OKS sigmas (and, when a description registered it, the same
skeleton); otherwise it is a ``DatasetConflictError`` naming both sources. Names registered outside
descriptions (detectron2's and InsPose's built-in datasets, ``register_keypoint_dataset`` in Python)
are compared through their metadata; their skeleton is not compared, because detectron2's built-in
COCO metadata draws its own set of links.
"""
import os
from typing import Dict, Optional, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog

from .description import DatasetDescription, DescriptionError, SplitDescription, description_metadata
from .description import check_split_files, load_description
from .keypoint_spec import KeypointSpec
from .register import register_keypoint_dataset

__all__ = [
    "DatasetConflictError",
    "register_description",
    "register_description_files",
    "registered_by",
    "unregister",
]

_SIGMA_TOLERANCE = 1e-6
# name -> (description file, split field, split, spec) of every split registered from a description
_RECORD: Dict[str, tuple] = {}


class DatasetConflictError(DescriptionError):
    """A description registers a name already registered with other files or metadata."""


def registered_by(name: str) -> Optional[str]:
    """'<description file> (<field>)' that registered ``name``, or None."""
    if name not in _RECORD:
        return None
    path, field = _RECORD[name][:2]
    return f"{path} ({field})"


def _same_spec(a: KeypointSpec, b: KeypointSpec, *, skeleton: bool) -> bool:
    def pairs(spec, indices):
        return {frozenset((spec.names[i], spec.names[j])) for i, j in indices}

    return (
        tuple(a.names) == tuple(b.names)
        and pairs(a, a.flip_pairs) == pairs(b, b.flip_pairs)
        and len(a.oks_sigmas) == len(b.oks_sigmas)
        and all(abs(x - y) <= _SIGMA_TOLERANCE for x, y in zip(a.oks_sigmas, b.oks_sigmas))
        and (not skeleton or pairs(a, a.skeleton) == pairs(b, b.skeleton))
    )


def _existing(name: str):
    """(json_file, image_root, KeypointSpec or None) of a name registered outside descriptions."""
    from .keypoint_spec import spec_from_metadata

    metadata = MetadataCatalog.get(name)
    json_file = getattr(metadata, "source_json_file", None) or getattr(metadata, "json_file", None)
    image_root = getattr(metadata, "image_root", None)
    try:
        spec = spec_from_metadata(metadata)
    except (KeyError, ValueError):
        spec = None
    absolute = lambda p: os.path.abspath(os.path.expanduser(p)) if p else p  # noqa: E731
    return absolute(json_file), absolute(image_root), spec


def _conflict(description: DatasetDescription, split: SplitDescription) -> Optional[str]:
    """Why ``split`` differs from the registered dataset of the same name ('' when identical)."""
    here = f"{description.path} ({split.field})"
    if split.name in _RECORD:
        path, field, old, spec = _RECORD[split.name]
        there = f"{path} ({field})"
        files = (old.json_file, old.image_root)
        same_spec = _same_spec(spec, description.spec, skeleton=True)
    else:
        json_file, image_root, spec = _existing(split.name)
        there = f"an earlier registration (built in, or register_keypoint_dataset) with json_file {json_file}"
        files = (json_file, image_root)
        same_spec = spec is not None and _same_spec(spec, description.spec, skeleton=False)
    if files == (split.json_file, split.image_root) and same_spec:
        return ""
    if files != (split.json_file, split.image_root):
        what = f"files ({split.json_file}, {split.image_root} against {files[0]}, {files[1]})"
    else:
        what = "keypoint metadata (names, flip pairs, OKS sigmas or skeleton)"
    return (
        f"dataset {split.name!r} of {here} is already registered by {there}, with other {what}: "
        "give the split another name, or use one of the two"
    )


def _checked_loader(description: DatasetDescription, split: SplitDescription):
    """The catalog's loader of ``split``, first checking that its files exist (naming the field)."""
    load = DatasetCatalog[split.name]

    def checked():
        check_split_files(description, [split.name])
        return load()

    return checked


def register_description(description: DatasetDescription) -> None:
    """Register every split of ``description`` (a no-op for a split registered identically).

    Nothing is read but the description: a split's files are looked for when it is first loaded
    (a ``DescriptionError`` naming the description file and the field when one is missing), so a
    config loads, and a model builds, without the data.

    Raises:
        DatasetConflictError: a name registered with other files or metadata, naming both sources.
    """
    for split in description.splits:
        if split.name in DatasetCatalog.list():
            message = _conflict(description, split)
            if message:
                raise DatasetConflictError(message)
            continue
        register_keypoint_dataset(split.name, split.json_file, split.image_root, description.spec)
        loader = _checked_loader(description, split)
        DatasetCatalog.remove(split.name)
        DatasetCatalog.register(split.name, loader)
        MetadataCatalog.get(split.name).set(**description_metadata(description))
        _RECORD[split.name] = (description.path, split.field, split, description.spec)


def register_description_files(paths: Sequence[str]) -> None:
    """``register_description(load_description(p))`` for every path of ``paths``."""
    for path in paths:
        register_description(load_description(path))


def unregister(name: str) -> None:
    """Remove ``name`` from detectron2's catalogs and from the record (for tests)."""
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
    if name in MetadataCatalog.list():
        MetadataCatalog.remove(name)
    _RECORD.pop(name, None)
