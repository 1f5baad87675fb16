"""InsPose's configuration keys, added to a detectron2 config, and their validation.

``add_inspose_config(cfg)`` adds every key under ``MODEL.INSPOSE`` (a comment on each) without
touching detectron2's global defaults. ``get_inspose_cfg()`` returns a fresh detectron2 config with
them; ``load_config(path, opts)`` merges a YAML file and ``KEY VALUE`` overrides and names the close
matches of any key that does not exist. ``validate_inspose_config(cfg)`` checks values when the
model is built.

Where the paper leaves a choice open, the default is documented beside the key and in README.md.
"""
import difflib
import os
from typing import Iterable, List, Optional, Sequence

import yaml
from detectron2.config import CfgNode as CN
from detectron2.config import get_cfg

from .modeling.backbone.hrnet_config import add_hrnet_config

__all__ = [
    "add_inspose_config",
    "get_inspose_cfg",
    "load_config",
    "validate_inspose_config",
    "ConfigError",
]

VALID_OUTPUT_STRIDES = (2, 4, 8, 16)
NO_KEYPOINT_PERSON_MODES = ("ignore", "positive")
KEYPOINT_SCORE_MODES = ("peak_mass", "peak_prob", "instance")


class ConfigError(ValueError):
    """A config key that does not exist or a value InsPose cannot use."""


def add_inspose_config(cfg: CN) -> CN:
    """Add InsPose's keys to ``cfg`` in place (and return it)."""
    cfg.MODEL.META_ARCHITECTURE = "InsPose"
    cfg.MODEL.BACKBONE.NAME = "build_inspose_resnet_fpn_backbone"
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res3", "res4", "res5"]
    cfg.MODEL.FPN.IN_FEATURES = ["res3", "res4", "res5"]
    cfg.MODEL.KEYPOINT_ON = True  # lets detectron2 utilities know keypoints are used

    _C = cfg.MODEL.INSPOSE = CN()
    # ---------------------------------------------------------------- dataset-dependent
    # Number of keypoints K per person. Must equal len(metadata.keypoint_names) of every dataset used
    # (checked when training or evaluation starts).
    _C.NUM_KEYPOINTS = 17

    # ---------------------------------------------------------------- FPN levels and assignment
    # FPN features the shared heads run on, and their strides (P3..P7 as in FCOS).
    _C.IN_FEATURES = ["p3", "p4", "p5", "p6", "p7"]
    _C.FPN_STRIDES = [8, 16, 32, 64, 128]
    # FCOS level ranges: a location on level i may be positive for a person only if
    # max(l, t, r, b) from the location to the pseudo-box lies in
    # [SIZES_OF_INTEREST[i-1], SIZES_OF_INTEREST[i]] (0 and infinity at the ends).
    _C.SIZES_OF_INTEREST = [64, 128, 256, 512]
    # Centre sampling radius r (in units of the level's stride), 1.5 as in the paper / FCOS.
    _C.CENTER_SAMPLE_RADIUS = 1.5
    # Pseudo-boxes (min enclosing rectangle of the labelled keypoints) smaller than this many
    # pixels on a side are grown to it around their centre, so a person with one labelled keypoint
    # or collinear keypoints is trained, not dropped (paper silent; 16 px gives a P3 person at
    # least 2 x 2 candidate locations). A person still without a positive location then gets the
    # location nearest its centre on its level.
    _C.PSEUDO_BOX_MIN_SIZE = 16.0
    # Persons annotated with num_keypoints == 0 (COCOeval ignores them): "ignore" makes their box
    # an ignore region of the classification loss (default: never punished, never a keypoint
    # loss); "positive" trains them as classification positives from their box (no keypoint loss).
    _C.NO_KEYPOINT_PERSONS = "ignore"
    # Crowd regions (iscrowd = 1) are ignore regions for the classification loss.
    _C.IGNORE_CROWD = True

    # ---------------------------------------------------------------- shared heads
    # Classification and controller towers: NUM_TOWER_CONVS 3x3 convs of TOWER_CHANNELS each.
    _C.NUM_TOWER_CONVS = 4
    _C.TOWER_CHANNELS = 256
    # Normalisation in the towers and branches: "GN", "BN", "SyncBN" or "" (none).
    _C.NORM = "GN"
    # Prior probability for the classification bias initialisation (RetinaNet).
    _C.PRIOR_PROB = 0.01
    # Sigmoid focal loss of the classification head.
    _C.FOCAL_LOSS_ALPHA = 0.25
    _C.FOCAL_LOSS_GAMMA = 2.0

    # ---------------------------------------------------------------- KP-Nets
    # Number of 1x1 convolutions in a dynamic KP-Net (Table 2: 1-4; 3 in the paper).
    _C.KPNET_DEPTH = 3
    # Width of the hidden KP-Net layers (8 in the paper).
    _C.KPNET_CHANNELS = 8
    # Initial KP-Nets (paper: new layers as in RetinaNet, which leaves generated weights ~0.01).
    # "he": the controller's bias holds a He-initialised KP-Net, so KP-Nets learn from the first
    # iteration (default); "retinanet": bias 0.
    _C.KPNET_INIT = "he"
    # Keypoint feature branch on P3: convs of KP_FEATURE_CHANNELS, then a conv down to C_kp.
    _C.KP_FEATURE_CONVS = 4
    _C.KP_FEATURE_CHANNELS = 128
    _C.KP_FEATURE_OUT_CHANNELS = 8  # C_kp
    # Relative coordinates fed to a KP-Net are (position - location) / REL_COORD_NORMS[level] for
    # an instance on FPN level P3..P7 (paper silent; a per-level size, as FCPose does, keeps them
    # near [-1, 1] for the persons each level is responsible for).
    _C.REL_COORD_NORMS = [64.0, 128.0, 256.0, 512.0, 1024.0]
    # Stride of the keypoint maps and disk offsets: 2, 4, 8 (P3) or 16 (Table 3). Other than 8, the
    # keypoint features and the offset map are bilinearly resampled from P3.
    _C.OUTPUT_STRIDE = 8
    # Positive budget: at most this many positive locations per image train the KP-Nets (memory
    # grows with positives x K x H x W), taken round-robin across persons so every person is
    # trained. The classification loss always uses every positive. <= 0 disables the budget.
    _C.MAX_KPNET_POSITIVES_PER_IMAGE = 64
    # Inference runs the KP-Nets band by band over the map, reducing each band to running argmaxes
    # and softmax normalisers; one band's activations hold at most this many values (bounds memory
    # at any stride, e.g. stride 2 with 500 candidates, and keeps a band in cache on the CPU).
    _C.KPNET_CHUNK_ELEMENTS = 1 << 25
    # Keep convolution weights (and so activations) in channels-last (NHWC) memory format. Same
    # results; faster for oneDNN convolutions on the CPU (the demo config turns it on). Off by
    # default: on CUDA it pays off mainly with mixed precision.
    _C.CHANNELS_LAST = False

    # ---------------------------------------------------------------- disk offsets
    _C.DISK_OFFSET_ON = True
    # 3x3 convs in the offset branch, the last giving 2K channels (three in the paper).
    _C.OFFSET_CONVS = 3
    _C.OFFSET_CHANNELS = 128
    # Radius R of the supervised disk around each keypoint, in output-stride cells (paper silent:
    # 2 cells covers the argmax cell and its neighbours at every stride). Offsets are in cells.
    _C.DISK_RADIUS = 2.0

    # ---------------------------------------------------------------- auxiliary heatmaps
    _C.HEATMAP_ON = True
    # Hidden 3x3 convs of HEATMAP_CHANNELS before the 3x3 conv to K channels (two of 256).
    _C.HEATMAP_CONVS = 2
    _C.HEATMAP_CHANNELS = 256
    # Gaussian sigma of the heatmap targets, in P3 cells (stride 8).
    _C.HEATMAP_SIGMA = 1.0
    # CornerNet focal loss exponents.
    _C.HEATMAP_FOCAL_ALPHA = 2.0
    _C.HEATMAP_FOCAL_BETA = 4.0

    # ---------------------------------------------------------------- optional box head (Table 4)
    # A box regression head on the controller tower (GIoU loss). When on, locations are assigned
    # with the annotated person boxes instead of the pseudo-boxes and NMS uses predicted boxes.
    _C.BOX_HEAD_ON = False

    # ---------------------------------------------------------------- loss weights
    # L = w_cls L_cls + w_kpf L_kpf + w_do L_do + w_hm L_hm (+ w_box L_box).
    _C.LOSS_WEIGHT_CLS = 1.0
    _C.LOSS_WEIGHT_KPNET = 1.0
    _C.LOSS_WEIGHT_OFFSET = 1.0
    _C.LOSS_WEIGHT_HEATMAP = 1.0
    _C.LOSS_WEIGHT_BOX = 1.0

    # ---------------------------------------------------------------- inference
    _C.SCORE_THRESH_TEST = 0.1
    _C.PRE_NMS_TOPK_TEST = 500
    # IoU threshold of NMS on the keypoints' enclosing boxes (paper silent; 0.6 as FCOS).
    _C.NMS_THRESH_TEST = 0.6
    # The third column of pred_keypoints (paper silent). "peak_mass": softmax probability mass of
    # the keypoint map in the 3x3 cells around the argmax (default: a localisation confidence in
    # [0, 1] that rises quickly in training); "peak_prob": softmax probability of the argmax cell;
    # "instance": the instance's classification score.
    _C.KEYPOINT_SCORE = "peak_mass"
    # The score of a detection, which NMS and AP rank by (paper silent; candidates are always
    # selected by the classification score p, threshold then top N). "cls_x_keypoints": p times
    # the mean keypoint confidence (default: ranks well-localised poses first; +3.3 AP on the
    # synthetic demo model); "cls": p alone.
    _C.INSTANCE_SCORE = "cls_x_keypoints"

    cfg.TEST.DETECTIONS_PER_IMAGE = 100
    # "SGD" (detectron2's, the paper's) or "AdamW" (same parameter groups, lr and weight decay).
    cfg.SOLVER.OPTIMIZER = "SGD"
    add_hrnet_config(cfg)
    # Metric by which periodic evaluation (TEST.EVAL_PERIOD > 0) keeps model_best.pth.
    cfg.TEST.BEST_CHECKPOINT_METRIC = "keypoints/AP"
    return cfg


def get_inspose_cfg() -> CN:
    """A fresh detectron2 config with InsPose's keys."""
    return add_inspose_config(get_cfg())


def _all_keys(node: CN, prefix: str = "") -> List[str]:
    keys = []
    for name, value in node.items():
        full = f"{prefix}{name}"
        keys.append(full)
        if isinstance(value, CN):
            keys.extend(_all_keys(value, full + "."))
    return keys


_UNKNOWN_KEY_MARKERS = ("Non-existent config key: ", "Non-existent key: ")  # YAML, overrides
_TYPE_MISMATCH_MARKER = "for config key: "


def _named_key(text: str, markers: Sequence[str]) -> Optional[str]:
    """The key after the first of ``markers`` found in an error text, or None."""
    for marker in markers:
        if marker in text:
            return text.split(marker, 1)[1].strip().strip("'\"")
    return None


def _base_files(config_file: str, data: dict) -> List[str]:
    """The ``_BASE_`` files of ``config_file`` (whose parsed YAML is ``data``), as paths."""
    bases = data.get("_BASE_") or []
    bases = [bases] if isinstance(bases, str) else list(bases)
    folder = os.path.dirname(config_file)
    paths = [os.path.expanduser(b) for b in bases]
    absolute = ("/", "http://", "https://")
    return [p if p.startswith(absolute) else os.path.join(folder, p) for p in paths]


def _sets_key(data: dict, key: str) -> bool:
    for name in key.split("."):
        if not isinstance(data, dict) or name not in data:
            return False
        data = data[name]
    return True


def _file_setting(config_file: str, key: str) -> Optional[str]:
    """The file of ``config_file``'s ``_BASE_`` chain that sets ``key`` (the file itself first)."""
    try:
        with open(config_file) as f:
            data = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(data, dict):
        return None
    if _sets_key(data, key):
        return config_file
    for base in reversed(_base_files(config_file, data)):
        found = _file_setting(base, key)
        if found:
            return found
    return None


def _source_of(config_file: str, key: str) -> str:
    """'<file>' or '<base file> (a _BASE_ of <file>)': where ``key`` is set."""
    origin = _file_setting(config_file, key)
    if origin is None or os.path.abspath(origin) == os.path.abspath(config_file):
        return config_file
    return f"{origin} (a _BASE_ of {config_file})"


def _merge_error(cfg: CN, error: Exception, source) -> Optional[ConfigError]:
    """A ``ConfigError`` for an unknown key or a wrong type, or None for another error.

    Args:
        source: function key -> where the key was given (a file name, "command-line override").
    """
    text = str(error.args[0] if error.args else error)
    key = _named_key(text, _UNKNOWN_KEY_MARKERS)
    if key is not None:
        close = difflib.get_close_matches(key, _all_keys(cfg), n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        return ConfigError(f"{source(key)}: config key {key} does not exist.{hint}")
    key = _named_key(text, [_TYPE_MISMATCH_MARKER])
    if isinstance(error, ValueError) and key is not None:
        return ConfigError(f"{source(key)}: {text}")
    return None


def load_config(config_file: Optional[str] = None, opts: Sequence[str] = ()) -> CN:
    """Build an InsPose config from a YAML file and ``KEY VALUE`` overrides.

    Raises:
        ConfigError: for a missing file; naming the unknown key (and the file of the ``_BASE_``
            chain or the override that sets it) with its close matches; for a value of the wrong
            type, naming the key.
    """
    cfg = get_inspose_cfg()
    if config_file:
        if not os.path.isfile(config_file):
            raise ConfigError(f"config file {config_file} does not exist")
        try:
            cfg.merge_from_file(config_file)
        except (KeyError, AssertionError, ValueError) as error:
            converted = _merge_error(cfg, error, lambda key: _source_of(config_file, key))
            if converted is None:
                raise
            raise converted from None
    if opts:
        try:
            cfg.merge_from_list(list(opts))
        except (KeyError, AssertionError, ValueError) as error:
            converted = _merge_error(cfg, error, lambda key: "command-line override")
            if converted is None:
                raise
            raise converted from None
    return cfg


def _check(condition: bool, key: str, value, requirement: str) -> None:
    if not condition:
        raise ConfigError(f"{key} = {value!r} is invalid: {requirement}")


def _check_all(values: Iterable, key: str, predicate, requirement: str) -> None:
    values = list(values)
    _check(all(predicate(v) for v in values), key, values, requirement)


def validate_inspose_config(cfg: CN) -> None:
    """Raise ``ConfigError`` naming the first ``MODEL.INSPOSE`` value InsPose cannot use."""
    c = cfg.MODEL.INSPOSE
    p = "MODEL.INSPOSE."
    _check(c.NUM_KEYPOINTS >= 1, p + "NUM_KEYPOINTS", c.NUM_KEYPOINTS, "must be >= 1")
    _check(1 <= c.KPNET_DEPTH <= 4, p + "KPNET_DEPTH", c.KPNET_DEPTH, "must be 1, 2, 3 or 4")
    _check(c.KPNET_CHANNELS >= 1, p + "KPNET_CHANNELS", c.KPNET_CHANNELS, "must be >= 1")
    _check(
        c.OUTPUT_STRIDE in VALID_OUTPUT_STRIDES,
        p + "OUTPUT_STRIDE",
        c.OUTPUT_STRIDE,
        f"must be one of {VALID_OUTPUT_STRIDES}",
    )
    _check(
        len(c.IN_FEATURES) == len(c.FPN_STRIDES) == len(c.REL_COORD_NORMS),
        p + "IN_FEATURES / FPN_STRIDES / REL_COORD_NORMS",
        (len(c.IN_FEATURES), len(c.FPN_STRIDES), len(c.REL_COORD_NORMS)),
        "must have one entry per FPN level",
    )
    _check(
        len(c.SIZES_OF_INTEREST) == len(c.FPN_STRIDES) - 1,
        p + "SIZES_OF_INTEREST",
        list(c.SIZES_OF_INTEREST),
        "must have one entry fewer than FPN_STRIDES",
    )
    _check(
        list(c.SIZES_OF_INTEREST) == sorted(c.SIZES_OF_INTEREST),
        p + "SIZES_OF_INTEREST",
        list(c.SIZES_OF_INTEREST),
        "must be increasing",
    )
    _check(c.FPN_STRIDES[0] == 8, p + "FPN_STRIDES", list(c.FPN_STRIDES), "must start at 8 (P3)")
    _check_all(c.REL_COORD_NORMS, p + "REL_COORD_NORMS", lambda v: v > 0, "must be > 0")
    for key in ("SCORE_THRESH_TEST", "NMS_THRESH_TEST"):
        value = c[key]
        _check(0.0 <= value <= 1.0, p + key, value, "must lie in [0, 1]")
    _check(c.PRE_NMS_TOPK_TEST >= 1, p + "PRE_NMS_TOPK_TEST", c.PRE_NMS_TOPK_TEST, "must be >= 1")
    _check(
        cfg.TEST.DETECTIONS_PER_IMAGE >= 1,
        "TEST.DETECTIONS_PER_IMAGE",
        cfg.TEST.DETECTIONS_PER_IMAGE,
        "must be >= 1",
    )
    radius, min_size = c.CENTER_SAMPLE_RADIUS, c.PSEUDO_BOX_MIN_SIZE
    _check(radius > 0, p + "CENTER_SAMPLE_RADIUS", radius, "must be > 0")
    _check(min_size >= 0, p + "PSEUDO_BOX_MIN_SIZE", min_size, "must be >= 0")
    _check(c.DISK_RADIUS > 0, p + "DISK_RADIUS", c.DISK_RADIUS, "must be > 0")
    _check(c.HEATMAP_SIGMA > 0, p + "HEATMAP_SIGMA", c.HEATMAP_SIGMA, "must be > 0")
    chunk = c.KPNET_CHUNK_ELEMENTS
    _check(chunk >= 1, p + "KPNET_CHUNK_ELEMENTS", chunk, "must be >= 1")
    _check(c.OFFSET_CONVS >= 1, p + "OFFSET_CONVS", c.OFFSET_CONVS, "must be >= 1")
    _check(c.NUM_TOWER_CONVS >= 0, p + "NUM_TOWER_CONVS", c.NUM_TOWER_CONVS, "must be >= 0")
    for key in ("CLS", "KPNET", "OFFSET", "HEATMAP", "BOX"):
        name = "LOSS_WEIGHT_" + key
        _check(c[name] >= 0, p + name, c[name], "must be >= 0")
    _check(
        c.NO_KEYPOINT_PERSONS in NO_KEYPOINT_PERSON_MODES,
        p + "NO_KEYPOINT_PERSONS",
        c.NO_KEYPOINT_PERSONS,
        f"must be one of {NO_KEYPOINT_PERSON_MODES}",
    )
    init = c.KPNET_INIT
    _check(init in ("he", "retinanet"), p + "KPNET_INIT", init, "must be 'he' or 'retinanet'")
    _check(
        c.KEYPOINT_SCORE in KEYPOINT_SCORE_MODES,
        p + "KEYPOINT_SCORE",
        c.KEYPOINT_SCORE,
        f"must be one of {KEYPOINT_SCORE_MODES}",
    )
