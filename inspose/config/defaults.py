"""InsPose's configuration keys, added to a detectron2 config.

``add_inspose_config(cfg)`` adds every key under ``MODEL.INSPOSE`` (a comment on each), the
``MODEL.HRNET`` keys, ``DATASETS.DESCRIPTIONS``, ``SOLVER.OPTIMIZER`` and
``TEST.BEST_CHECKPOINT_METRIC``; it changes no key
detectron2 already has. ``configs/Base-InsPose.yaml`` sets detectron2's keys the way InsPose uses
them (``META_ARCHITECTURE "InsPose"``, the backbone, ``KEYPOINT_ON``), so a config for a model
starts from that file (``load_config``), not from ``get_inspose_cfg()`` alone.

Where the paper leaves a choice open, the default is documented beside the key and in README.md.
"""
from detectron2.config import CfgNode as CN
from detectron2.config import get_cfg

from .hrnet import add_hrnet_config

__all__ = ["add_inspose_config", "get_inspose_cfg"]


def add_inspose_config(cfg: CN) -> CN:
    """Add InsPose's keys to ``cfg`` in place (and return it).

    Only new keys: detectron2's own (the meta-architecture, backbone, FPN features, KEYPOINT_ON)
    keep their defaults here and are set by ``configs/Base-InsPose.yaml``.
    """
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
    # The KP-Net loss runs on chunks of this many trained instances, each under activation
    # checkpointing (its maps are recomputed in the backward pass), so the loss's own memory is one
    # chunk's maps whatever the budget (8: about 45 MB at 800 x 1333, stride 8). Same losses and
    # gradients; <= 0 computes all instances at once and keeps their maps for the backward pass.
    _C.KPNET_LOSS_CHUNK = 8
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

    # Dataset description files (YAML; datasets/README.md, "Your own dataset"), registered by
    # load_config before anything is built. A path written in a config file is relative to that
    # file (the file of the _BASE_ chain that sets this key), one given on the command line to the
    # working directory; load_config stores them back as absolute paths.
    cfg.DATASETS.DESCRIPTIONS = []

    # "SGD" (detectron2's, the paper's) or "AdamW" (same parameter groups, lr and weight decay).
    cfg.SOLVER.OPTIMIZER = "SGD"
    add_hrnet_config(cfg)
    # Metric by which periodic evaluation (TEST.EVAL_PERIOD > 0) keeps model_best.pth.
    cfg.TEST.BEST_CHECKPOINT_METRIC = "keypoints/AP"
    # Pictures of the predictions (persons scoring >= 0.3) on the first images of every evaluated
    # dataset: OUTPUT_DIR/inference/<dataset>/examples/ and TensorBoard (0: none).
    cfg.TEST.EXAMPLE_PICTURES = 4
    # Training progress lines (losses, ETA; also metrics.json and TensorBoard): every LOG.PERIOD
    # iterations, and LOG.PERIOD_SECONDS after the previous line when that comes first (0: by
    # iteration only), so a slow CPU run shows its first ETA within the first minute.
    cfg.LOG = CN()
    cfg.LOG.PERIOD = 20
    cfg.LOG.PERIOD_SECONDS = 30.0
    return cfg


def get_inspose_cfg() -> CN:
    """A fresh detectron2 config with InsPose's keys."""
    return add_inspose_config(get_cfg())
