"""Dataset description files: a COCO-format keypoint dataset described in YAML, parsed and checked.

A description names the dataset's splits (a registered name, an annotation JSON, an image folder)
and its keypoints (names, flip pairs and skeleton by name, OKS sigmas)::

    root: ${DETECTRON2_DATASETS}/crowdpose     # optional; default: the description's folder
    keypoint_names: [left_shoulder, right_shoulder, ..., head, neck]
    flip_pairs: [[left_shoulder, right_shoulder], ...]      # required; [] when none
    skeleton: [[head, neck], [neck, left_shoulder], ...]    # optional (drawing only)
    oks_sigmas: [0.079, 0.079, ...]                         # optional: 0.07 each, with a warning
    evaluation: crowdpose                                   # optional: "coco" (default) or "crowdpose"
    splits:
      - {name: crowdpose_trainval, json_file: json/crowdpose_trainval.json, image_root: images}

Paths: ``root`` is relative to the description's folder; ``json_file`` and ``image_root`` are
relative to ``root``. ``${NAME}`` expands an environment variable (``${DETECTRON2_DATASETS}``
defaults to ``datasets``, as in detectron2); a path that starts with a variable whose value is
relative is relative to the working directory, as ``$DETECTRON2_DATASETS`` always is.

``load_description(path)`` returns a ``DatasetDescription``; every problem is a
``DescriptionError`` naming the file and the field. Parsing reads nothing but the description:
``check_split_files`` checks that a split's files exist.
"""
import difflib
import logging
import os
import re
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import yaml

from ..config.errors import ConfigError
from .keypoint_spec import KeypointSpec

__all__ = [
    "DEFAULT_OKS_SIGMA",
    "DatasetDescription",
    "DescriptionError",
    "EVALUATION_PROTOCOLS",
    "SplitDescription",
    "check_split_files",
    "load_description",
]

logger = logging.getLogger(__name__)

# OKS sigma of every keypoint when a description gives none: about the mean of COCO's 17 (0.067),
# between its face (0.025-0.035) and its body joints (0.062-0.107). Set real ones for real AP.
DEFAULT_OKS_SIGMA = 0.07
EVALUATION_PROTOCOLS = ("coco", "crowdpose")
FIELDS = ("root", "keypoint_names", "flip_pairs", "skeleton", "oks_sigmas", "evaluation", "splits")
SPLIT_FIELDS = ("name", "json_file", "image_root")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_VARIABLE_DEFAULTS = {"DETECTRON2_DATASETS": "datasets"}


class DescriptionError(ConfigError):
    """A dataset description that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class SplitDescription:
    """One split: its registered ``name`` and absolute ``json_file`` / ``image_root``."""

    name: str
    json_file: str
    image_root: str
    field: str  # where it is written, e.g. "splits[1]"


@dataclass(frozen=True)
class DatasetDescription:
    """A parsed description: its absolute ``path``, ``spec``, ``evaluation`` and ``splits``."""

    path: str
    spec: KeypointSpec
    evaluation: str
    splits: Tuple[SplitDescription, ...]

    def split(self, name: str) -> SplitDescription:
        return next(s for s in self.splits if s.name == name)


def _fail(path: str, field: str, message: str):
    raise DescriptionError(f"dataset description {path}: {field}: {message}")


def _read_yaml(path: str) -> dict:
    if not os.path.isfile(path):
        raise DescriptionError(f"dataset description {path} does not exist")
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as error:
        raise DescriptionError(f"dataset description {path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise DescriptionError(f"dataset description {path}: expected a mapping of fields, got {type(data).__name__}")
    return data


def _check_fields(path: str, data: dict, known: Sequence[str], where: str = "") -> None:
    for field in data:
        if field not in known:
            close = difflib.get_close_matches(str(field), known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else f" (fields: {', '.join(known)})"
            _fail(path, f"{where}{field}", f"unknown field{hint}")


def _required(path: str, data: dict, field: str, where: str = ""):
    if field not in data or data[field] is None:
        _fail(path, f"{where}{field}", "missing (required)")
    return data[field]


def _expand(path: str, field: str, text: str) -> Tuple[str, bool]:
    """``text`` with ``${NAME}`` expanded; and whether it started with a variable."""

    def value(match):
        name = match.group(1)
        found = os.environ.get(name) or _VARIABLE_DEFAULTS.get(name)
        if found is None:
            _fail(path, field, f"environment variable {name} (in {text!r}) is not set")
        return os.path.expanduser(found)

    return _VARIABLE.sub(value, text), text.startswith("${")


def _resolve(path: str, field: str, text, base: str) -> str:
    """The absolute path of ``text`` (a string) relative to ``base`` (or to the working directory
    when it starts with a variable)."""
    if not isinstance(text, str) or not text:
        _fail(path, field, f"expected a path, got {text!r}")
    expanded, from_variable = _expand(path, field, text)
    expanded = os.path.expanduser(expanded)
    if from_variable or os.path.isabs(expanded):
        return os.path.abspath(expanded)
    return os.path.abspath(os.path.join(base, expanded))


def _names(path: str, data: dict) -> Tuple[str, ...]:
    names = _required(path, data, "keypoint_names")
    if not isinstance(names, list) or not names:
        _fail(path, "keypoint_names", "expected a non-empty list of names")
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name:
            _fail(path, f"keypoint_names[{i}]", f"expected a name, got {name!r}")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        _fail(path, "keypoint_names", f"names must be unique: {', '.join(duplicates)} repeated")
    return tuple(names)


def _pairs(path: str, data: dict, field: str, names: Sequence[str]) -> Tuple[Tuple[int, int], ...]:
    """Index pairs of a list of [name, name] pairs."""
    pairs = data.get(field) or []
    if not isinstance(pairs, list):
        _fail(path, field, "expected a list of [name, name] pairs")
    index = {n: i for i, n in enumerate(names)}
    result = []
    for i, pair in enumerate(pairs):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            _fail(path, f"{field}[{i}]", f"expected a pair [name, name], got {pair!r}")
        for name in pair:
            if name not in index:
                close = difflib.get_close_matches(str(name), names, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                _fail(path, f"{field}[{i}]", f"{name!r} is not one of keypoint_names{hint}")
        if pair[0] == pair[1]:
            _fail(path, f"{field}[{i}]", f"pairs {pair[0]!r} with itself")
        result.append((index[pair[0]], index[pair[1]]))
    return tuple(result)


def _check_flips(path: str, flips: Sequence[Tuple[int, int]], names: Sequence[str]) -> None:
    seen = set()
    for i, (a, b) in enumerate(flips):
        for k in (a, b):
            if k in seen:
                _fail(path, f"flip_pairs[{i}]", f"{names[k]!r} is in more than one flip pair")
            seen.add(k)


def _sigmas(path: str, data: dict, k: int) -> Tuple[float, ...]:
    sigmas = data.get("oks_sigmas")
    if sigmas is None:
        logger.warning(
            "dataset description %s: no oks_sigmas, using %.2f for each of the %d keypoints "
            "(OKS AP is then not comparable with published numbers)", path, DEFAULT_OKS_SIGMA, k,
        )  # fmt: skip
        return (DEFAULT_OKS_SIGMA,) * k
    if not isinstance(sigmas, list):
        _fail(path, "oks_sigmas", f"expected a list of {k} numbers")
    if len(sigmas) != k:
        _fail(path, "oks_sigmas", f"{len(sigmas)} values for {k} keypoint_names")
    for i, s in enumerate(sigmas):
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not s > 0:
            _fail(path, f"oks_sigmas[{i}]", f"expected a positive number, got {s!r}")
    return tuple(float(s) for s in sigmas)


def _evaluation(path: str, data: dict) -> str:
    protocol = data.get("evaluation") or "coco"
    if protocol not in EVALUATION_PROTOCOLS:
        _fail(path, "evaluation", f"{protocol!r} is not one of {', '.join(EVALUATION_PROTOCOLS)}")
    return protocol


def _splits(path: str, data: dict, root: str) -> Tuple[SplitDescription, ...]:
    splits = _required(path, data, "splits")
    if not isinstance(splits, list) or not splits:
        _fail(path, "splits", "expected a non-empty list of {name, json_file, image_root}")
    result: List[SplitDescription] = []
    for i, split in enumerate(splits):
        where = f"splits[{i}]"
        if not isinstance(split, dict):
            _fail(path, where, "expected a mapping with name, json_file and image_root")
        _check_fields(path, split, SPLIT_FIELDS, f"{where}.")
        name = _required(path, split, "name", f"{where}.")
        if not isinstance(name, str) or not name:
            _fail(path, f"{where}.name", f"expected a dataset name, got {name!r}")
        if any(s.name == name for s in result):
            _fail(path, f"{where}.name", f"{name!r} is given twice")
        json_file = _resolve(path, f"{where}.json_file", _required(path, split, "json_file", f"{where}."), root)
        image_root = _resolve(path, f"{where}.image_root", _required(path, split, "image_root", f"{where}."), root)
        result.append(SplitDescription(name, json_file, image_root, where))
    return tuple(result)


def load_description(path: str) -> DatasetDescription:
    """Parse and check the description file ``path``.

    Raises:
        DescriptionError: naming the file and the field (a missing field, an unknown keypoint name
            in a pair, a sigma count that is not K, ...).
    """
    path = os.path.abspath(os.path.expanduser(path))
    data = _read_yaml(path)
    _check_fields(path, data, FIELDS)
    folder = os.path.dirname(path)
    root = _resolve(path, "root", data["root"], folder) if data.get("root") is not None else folder
    names = _names(path, data)
    if "flip_pairs" not in data:
        _fail(path, "flip_pairs", "missing (required; write [] for a dataset without left / right)")
    flips = _pairs(path, data, "flip_pairs", names)
    _check_flips(path, flips, names)
    skeleton = _pairs(path, data, "skeleton", names)
    spec = KeypointSpec(names, flips, skeleton, _sigmas(path, data, len(names)))
    return DatasetDescription(path, spec, _evaluation(path, data), _splits(path, data, root))


def check_split_files(description: DatasetDescription, names: Sequence[str]) -> None:
    """Raise ``DescriptionError`` when a split named in ``names`` lacks its JSON or image folder."""
    for split in description.splits:
        if split.name not in names:
            continue
        if not os.path.isfile(split.json_file):
            _fail(description.path, f"{split.field}.json_file", f"{split.json_file} does not exist")
        if not os.path.isdir(split.image_root):
            _fail(description.path, f"{split.field}.image_root", f"{split.image_root} is not a folder")


def description_metadata(description: DatasetDescription) -> Dict[str, object]:
    """Metadata keys a description adds beside the spec's."""
    return {"keypoint_evaluation": description.evaluation, "description_file": description.path}
