"""Checking an InsPose config's values when the model is built.

``validate_inspose_config(cfg)`` raises ``ConfigError("<KEY> = <value> is invalid: <requirement>")``
for the first value InsPose cannot use: numbers out of range (``BOUNDS``), enumerated keys with a
value outside their choices (``CHOICES``), FPN level lists that do not fit together, and optional
components that need another key (``_check_release_options``: the message names both keys).
"""
from typing import Callable, Dict, Sequence, Tuple

from detectron2.config import CfgNode as CN

from .errors import ConfigError

__all__ = [
    "CHOICES",
    "CLS_LOSSES",
    "KPNET_LOSS_NORMALIZERS",
    "VARIFOCAL_TARGET_MODES",
    "INSTANCE_SCORE_MODES",
    "KEYPOINT_SCORE_MODES",
    "NMS_TYPES",
    "NMS_BOX_SOURCES",
    "NO_KEYPOINT_PERSON_MODES",
    "VALID_OUTPUT_STRIDES",
    "nms_box_source",
    "validate_inspose_config",
]

VALID_OUTPUT_STRIDES = (2, 4, 8, 16)
NO_KEYPOINT_PERSON_MODES = ("ignore", "positive")
KEYPOINT_SCORE_MODES = ("peak_mass", "peak_prob", "instance")
INSTANCE_SCORE_MODES = ("cls_x_keypoints", "cls")
CLS_LOSSES = ("focal", "varifocal")
# VARIFOCAL_TARGET "oks" without DISK_OFFSET_ON decodes at cell centres: allowed (still an OKS).
VARIFOCAL_TARGET_MODES = ("release", "oks")
KPNET_LOSS_NORMALIZERS = ("instance", "keypoint")
NMS_BOX_SOURCES = ("auto", "kpnet", "regression", "box_head")
NMS_TYPES = ("hard", "soft_linear", "soft_gaussian", "oks")

P = "MODEL.INSPOSE."
# Enumerated keys: {key: allowed values}.
CHOICES: Dict[str, Tuple] = {
    P + "OUTPUT_STRIDE": VALID_OUTPUT_STRIDES,
    P + "NO_KEYPOINT_PERSONS": NO_KEYPOINT_PERSON_MODES,
    P + "KPNET_INIT": ("he", "retinanet"),
    P + "KEYPOINT_SCORE": KEYPOINT_SCORE_MODES,
    P + "INSTANCE_SCORE": INSTANCE_SCORE_MODES,
    P + "CLS_LOSS": CLS_LOSSES,
    P + "VARIFOCAL_TARGET": VARIFOCAL_TARGET_MODES,
    P + "KPNET_LOSS_NORMALIZER": KPNET_LOSS_NORMALIZERS,
    P + "NMS_BOXES": NMS_BOX_SOURCES,
    P + "KP_FEATURE_LAST_CONV": ("linear_1x1", "conv3x3_gn_relu"),
    P + "NMS_TYPE": NMS_TYPES,
    P + "KPNET_UPSAMPLE_MODE": ("bicubic", "bilinear"),
    P + "KPNET_UPSAMPLE_ARGMAX": ("global", "coarse_cell"),
    P + "HEATMAP_STRIDE": (4, 8),
    P + "HEATMAP_RADIUS_MODE": ("fixed", "adaptive"),
    P + "HEATMAP_RADIUS_FORMULA": ("exact", "cornernet"),
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
    (P + "VARIFOCAL_ALPHA", *_UNIT_INTERVAL),
    (P + "VARIFOCAL_GAMMA", *_AT_LEAST_0),
    (P + "VARIFOCAL_WEAK_TARGET", *_UNIT_INTERVAL),
    (P + "PRE_NMS_TOPK_PER_LEVEL", *_AT_LEAST_0),
    (P + "SOFT_NMS_SIGMA", *_POSITIVE),
    (P + "SOFT_NMS_MIN_SCORE", *_UNIT_INTERVAL),
    (P + "OKS_NMS_THRESH", *_UNIT_INTERVAL),
    ("TEST.DETECTIONS_PER_IMAGE", *_AT_LEAST_1),
    (P + "CENTER_SAMPLE_RADIUS", *_POSITIVE),
    (P + "PSEUDO_BOX_MIN_SIZE", *_AT_LEAST_0),
    (P + "DISK_RADIUS", *_POSITIVE),
    (P + "HEATMAP_SIGMA", *_POSITIVE),
    (P + "KPNET_CHUNK_ELEMENTS", *_AT_LEAST_1),
    (P + "KPNET_UPSAMPLE_FACTOR", *_AT_LEAST_1),
    (P + "OFFSET_CONVS", *_AT_LEAST_1),
    (P + "NUM_TOWER_CONVS", *_AT_LEAST_0),
    (P + "KEYPOINT_REGRESSION_CONVS", *_AT_LEAST_0),
    (P + "KEYPOINT_REGRESSION_CHANNELS", *_AT_LEAST_1),
    (P + "STAR_GRAD_MULT", *_UNIT_INTERVAL),
    (P + "LOSS_WEIGHT_KEYPOINT_REGRESSION", *_AT_LEAST_0),
    (P + "HEATMAP_UPSAMPLED_CONVS", *_AT_LEAST_0),
    (P + "HEATMAP_MIN_RADIUS", *_AT_LEAST_0),
    (P + "HEATMAP_MIN_OVERLAP", lambda v: 0.0 < v < 1.0, "must lie in (0, 1)"),
    *((P + "LOSS_WEIGHT_" + name, *_AT_LEAST_0) for name in ("HEATMAP_OFFSET", "AE_PULL", "AE_PUSH")),
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


def nms_box_source(c: CN) -> str:
    """MODEL.INSPOSE.NMS_BOXES with "auto" resolved: "box_head" with BOX_HEAD_ON, else "kpnet"."""
    if c.NMS_BOXES == "auto":
        return "box_head" if c.BOX_HEAD_ON else "kpnet"
    return c.NMS_BOXES


def _requires(condition: bool, key: str, value, other: str, why: str) -> None:
    """A ConfigError naming ``key`` and the ``other`` key it conflicts with, unless ``condition``."""
    _check(condition, P + key, value, f"with {P}{other}: {why}")


def _check_release_options(c: CN) -> None:
    """The optional components of the authors' release and the keys they depend on."""
    regression = c.KEYPOINT_REGRESSION_ON
    _requires(not c.STAR_DEFORM_ON or regression, "STAR_DEFORM_ON", True, "KEYPOINT_REGRESSION_ON False",
              "the star convs are placed by the regressed keypoints; set KEYPOINT_REGRESSION_ON True")
    _requires(c.NMS_BOXES != "regression" or regression, "NMS_BOXES", c.NMS_BOXES, "KEYPOINT_REGRESSION_ON False",
              "needs the keypoint-regression branch; set KEYPOINT_REGRESSION_ON True")
    _requires(c.NMS_BOXES != "box_head" or c.BOX_HEAD_ON, "NMS_BOXES", c.NMS_BOXES, "BOX_HEAD_ON False",
              "needs the box head; set BOX_HEAD_ON True")
    if c.KPNETS_AFTER_NMS:
        _requires(nms_box_source(c) != "kpnet", "KPNETS_AFTER_NMS", True, f"NMS_BOXES {c.NMS_BOXES!r}",
                  "those boxes come from the KP-Nets, which would run after NMS; set NMS_BOXES "
                  "'regression' or 'box_head'")
        _requires(c.INSTANCE_SCORE != "cls_x_keypoints", "KPNETS_AFTER_NMS", True,
                  "INSTANCE_SCORE 'cls_x_keypoints'", "NMS would rank by keypoint confidences that "
                  "do not exist before the KP-Nets; set INSTANCE_SCORE 'cls'")
        _requires(c.get("NMS_TYPE") != "oks" or regression, "KPNETS_AFTER_NMS", True, "NMS_TYPE 'oks'",
                  "OKS-NMS before the KP-Nets compares the regressed keypoints; set "
                  "KEYPOINT_REGRESSION_ON True")
    if c.KP_FEATURE_LAST_CONV == "conv3x3_gn_relu":
        _requires(c.KP_FEATURE_OUT_CHANNELS % 2 == 0, "KP_FEATURE_LAST_CONV", c.KP_FEATURE_LAST_CONV,
                  f"KP_FEATURE_OUT_CHANNELS {c.KP_FEATURE_OUT_CHANNELS}", "its GroupNorm of 2 groups "
                  "needs an even KP_FEATURE_OUT_CHANNELS")


def _check_heatmap_options(c: CN) -> None:
    """The release's heatmap-branch options (stride 4, adaptive radii, offsets, tags)."""
    _requires(c.HEATMAP_MAX_RADIUS >= c.HEATMAP_MIN_RADIUS, "HEATMAP_MAX_RADIUS", c.HEATMAP_MAX_RADIUS,
              f"HEATMAP_MIN_RADIUS {c.HEATMAP_MIN_RADIUS}", "the radius range is empty")
    for key in ("HEATMAP_OFFSETS_ON", "AE_TAGS_ON"):
        _requires(not c[key] or c.HEATMAP_ON, key, True, "HEATMAP_ON False",
                  "these maps are heads of the heatmap branch; set HEATMAP_ON True")
    if not c.HEATMAP_OFFSETS_ON:
        return
    _requires(c.DISK_OFFSET_ON, "HEATMAP_OFFSETS_ON", True, "DISK_OFFSET_ON False",
              "the heatmap branch's offsets are the disk offsets keypoints are decoded with; set "
              "DISK_OFFSET_ON True (the P3 disk-offset branch is then not built)")
    factor = c.get("KPNET_UPSAMPLE_FACTOR", 1)
    _requires(c.OUTPUT_STRIDE == factor * c.HEATMAP_STRIDE, "HEATMAP_OFFSETS_ON", True,
              f"HEATMAP_STRIDE {c.HEATMAP_STRIDE}, {P}OUTPUT_STRIDE {c.OUTPUT_STRIDE} and "
              f"{P}KPNET_UPSAMPLE_FACTOR {factor}", "keypoints are decoded at OUTPUT_STRIDE / "
              "KPNET_UPSAMPLE_FACTOR, which must equal HEATMAP_STRIDE, the offsets' stride")


def _check_kpnet_upsampling(c: CN) -> None:
    """KPNET_UPSAMPLE_FACTOR f > 1: a decode stride OUTPUT_STRIDE / f, and offsets at it or none."""
    factor = c.KPNET_UPSAMPLE_FACTOR
    if factor == 1:
        return
    _requires(c.OUTPUT_STRIDE % factor == 0, "KPNET_UPSAMPLE_FACTOR", factor, f"OUTPUT_STRIDE {c.OUTPUT_STRIDE}",
              "keypoints are decoded at OUTPUT_STRIDE / KPNET_UPSAMPLE_FACTOR, which must be an integer")
    decode_stride = c.OUTPUT_STRIDE // factor
    if c.get("HEATMAP_OFFSETS_ON", False):
        heatmap_stride = c.get("HEATMAP_STRIDE", 8)
        _requires(heatmap_stride == decode_stride, "KPNET_UPSAMPLE_FACTOR", factor,
                  f"HEATMAP_STRIDE {heatmap_stride}", f"the offsets are read on the upsampled maps, "
                  f"at stride OUTPUT_STRIDE / KPNET_UPSAMPLE_FACTOR = {decode_stride}; set HEATMAP_STRIDE "
                  f"{decode_stride}")
        return
    _requires(not c.DISK_OFFSET_ON, "KPNET_UPSAMPLE_FACTOR", factor, "DISK_OFFSET_ON True",
              f"the disk-offset branch's offsets are at OUTPUT_STRIDE {c.OUTPUT_STRIDE}, not at the "
              f"upsampled maps' stride {decode_stride}; set HEATMAP_OFFSETS_ON True with HEATMAP_STRIDE "
              f"{decode_stride}, or DISK_OFFSET_ON False (fine cell centres)")


def validate_inspose_config(cfg: CN) -> None:
    """Raise ``ConfigError`` naming the first ``MODEL.INSPOSE`` value InsPose cannot use."""
    for key, predicate, requirement in BOUNDS:
        value = _value(cfg, key)
        _check(predicate(value), key, value, requirement)
    for key, allowed in CHOICES.items():
        value = _value(cfg, key)
        _check(value in allowed, key, value, f"must be one of {allowed}")
    _check_levels(cfg.MODEL.INSPOSE)
    _check_release_options(cfg.MODEL.INSPOSE)
    _check_kpnet_upsampling(cfg.MODEL.INSPOSE)
    _check_heatmap_options(cfg.MODEL.INSPOSE)
