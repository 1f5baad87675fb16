"""Checking an InsPose config's values when the model is built.

``validate_inspose_config(cfg)`` raises ``ConfigError("<KEY> = <value> is invalid: <requirement>")``
for the first value InsPose cannot use: numbers out of range (``BOUNDS``), enumerated keys with a
value outside their choices (``CHOICES``), and FPN level lists that do not fit together.
"""
from typing import Callable, Dict, Sequence, Tuple

from detectron2.config import CfgNode as CN

from .errors import ConfigError

__all__ = [
    "CHOICES",
    "INSTANCE_SCORE_MODES",
    "KEYPOINT_SCORE_MODES",
    "NO_KEYPOINT_PERSON_MODES",
    "VALID_OUTPUT_STRIDES",
    "validate_inspose_config",
]

VALID_OUTPUT_STRIDES = (2, 4, 8, 16)
NO_KEYPOINT_PERSON_MODES = ("ignore", "positive")
KEYPOINT_SCORE_MODES = ("peak_mass", "peak_prob", "instance")
INSTANCE_SCORE_MODES = ("cls_x_keypoints", "cls")

P = "MODEL.INSPOSE."
# Enumerated keys: {key: allowed values}.
CHOICES: Dict[str, Tuple] = {
    P + "OUTPUT_STRIDE": VALID_OUTPUT_STRIDES,
    P + "NO_KEYPOINT_PERSONS": NO_KEYPOINT_PERSON_MODES,
    P + "KPNET_INIT": ("he", "retinanet"),
    P + "KEYPOINT_SCORE": KEYPOINT_SCORE_MODES,
    P + "INSTANCE_SCORE": INSTANCE_SCORE_MODES,
}
_AT_LEAST_1 = (lambda v: v >= 1, "must be >= 1")
_AT_LEAST_0 = (lambda v: v >= 0, "must be >= 0")
_POSITIVE = (lambda v: v > 0, "must be > 0")
_UNIT_INTERVAL = (lambda v: 0.0 <= v <= 1.0, "must lie in [0, 1]")
# Numeric keys: (key, predicate, requirement), checked in this order.
BOUNDS: Sequence[Tuple[str, Callable, str]] = (
    (P + "NUM_KEYPOINTS", *_AT_LEAST_1),
    (P + "KPNET_DEPTH", lambda v: 1 <= v <= 4, "must be 1, 2, 3 or 4"),
    (P + "KPNET_CHANNELS", *_AT_LEAST_1),
    (P + "SCORE_THRESH_TEST", *_UNIT_INTERVAL),
    (P + "NMS_THRESH_TEST", *_UNIT_INTERVAL),
    (P + "PRE_NMS_TOPK_TEST", *_AT_LEAST_1),
    ("TEST.DETECTIONS_PER_IMAGE", *_AT_LEAST_1),
    (P + "CENTER_SAMPLE_RADIUS", *_POSITIVE),
    (P + "PSEUDO_BOX_MIN_SIZE", *_AT_LEAST_0),
    (P + "DISK_RADIUS", *_POSITIVE),
    (P + "HEATMAP_SIGMA", *_POSITIVE),
    (P + "KPNET_CHUNK_ELEMENTS", *_AT_LEAST_1),
    (P + "OFFSET_CONVS", *_AT_LEAST_1),
    (P + "NUM_TOWER_CONVS", *_AT_LEAST_0),
    *((P + "LOSS_WEIGHT_" + name, *_AT_LEAST_0) for name in ("CLS", "KPNET", "OFFSET", "HEATMAP", "BOX")),
)


def _check(condition: bool, key: str, value, requirement: str) -> None:
    if not condition:
        raise ConfigError(f"{key} = {value!r} is invalid: {requirement}")


def _value(cfg: CN, key: str):
    node = cfg
    for name in key.split("."):
        node = node[name]
    return node


def _check_levels(c: CN) -> None:
    """The per-level lists: one entry per FPN level, increasing level ranges, P3 first."""
    lengths = (len(c.IN_FEATURES), len(c.FPN_STRIDES), len(c.REL_COORD_NORMS))
    _check(
        len(set(lengths)) == 1,
        P + "IN_FEATURES / FPN_STRIDES / REL_COORD_NORMS",
        lengths,
        "must have one entry per FPN level",
    )
    sizes = list(c.SIZES_OF_INTEREST)
    fewer = "must have one entry fewer than FPN_STRIDES"
    _check(len(sizes) == len(c.FPN_STRIDES) - 1, P + "SIZES_OF_INTEREST", sizes, fewer)
    _check(sizes == sorted(sizes), P + "SIZES_OF_INTEREST", sizes, "must be increasing")
    _check(c.FPN_STRIDES[0] == 8, P + "FPN_STRIDES", list(c.FPN_STRIDES), "must start at 8 (P3)")
    norms = list(c.REL_COORD_NORMS)
    _check(all(v > 0 for v in norms), P + "REL_COORD_NORMS", norms, "must be > 0")


def validate_inspose_config(cfg: CN) -> None:
    """Raise ``ConfigError`` naming the first ``MODEL.INSPOSE`` value InsPose cannot use."""
    for key, predicate, requirement in BOUNDS:
        value = _value(cfg, key)
        _check(predicate(value), key, value, requirement)
    for key, allowed in CHOICES.items():
        value = _value(cfg, key)
        _check(value in allowed, key, value, f"must be one of {allowed}")
    _check_levels(cfg.MODEL.INSPOSE)
