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
    # Crowd regions (iscrowd = 1) are ignore regions for the classification loss and the heatmap
    # negatives (default: they hold unannotated people). False (the release): negatives of both.
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
    # The classification loss. "focal" (default, the paper's): the sigmoid focal loss above, target
    # 1 at positives, / positive locations. "varifocal" (the authors' release, VarifocalNet's loss):
    # a positive's target is its localisation quality q (VARIFOCAL_TARGET), its loss
    # -q (q log p + (1 - q) log(1 - p)); a negative's -VARIFOCAL_ALPHA p^VARIFOCAL_GAMMA log(1 - p);
    # / (positive locations + images), as the release. Ignore regions stay ignored. Needs the OKS
    # sigmas (keypoint_oks_sigmas, NUM_KEYPOINTS of them) of DATASETS.TRAIN's metadata, looked up
    # at the first training step. The release's alpha 0.75 and gamma 2.
    _C.CLS_LOSS = "focal"
    _C.VARIFOCAL_ALPHA = 0.75
    _C.VARIFOCAL_GAMMA = 2.0
    # q of a positive location, a mean over its person's labelled keypoints of
    # exp(-d^2 / (2 area (2 sigma)^2)) with the detached argmax of its KP-Net's maps (a positive the
    # positive budget leaves untrained gets a no-grad KP-Net pass). "release" (default, the
    # release's computation): d between the argmax cell (no offset) and floor(gt / OUTPUT_STRIDE),
    # in cells (lenient: about OKS with distances / the stride). "oks": COCO's OKS of the decoded
    # keypoints (argmax + disk offset; cell centres with DISK_OFFSET_ON off), in pixels. area: the
    # annotation's area scaled with the image, else the box's (inspose/modeling/quality_targets.py).
    _C.VARIFOCAL_TARGET = "release"
    # q of a positive whose person has no labelled keypoint (NO_KEYPOINT_PERSONS "positive"; the
    # release's 0.1: a person, but nothing to localise).
    _C.VARIFOCAL_WEAK_TARGET = 0.1

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
    # The conv down to C_kp: "linear_1x1", a 1x1 conv with bias and no activation (default: the
    # paper is silent, a linear projection keeps F_kp signed); "conv3x3_gn_relu", a 3x3 conv,
    # GroupNorm of 2 groups and ReLU, as the authors' release (needs an even C_kp).
    _C.KP_FEATURE_LAST_CONV = "linear_1x1"
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
    # Normaliser of the KP-Net loss. "instance" (default, eq. 4): each trained instance's mean over
    # its labelled keypoints, then / instances. "keypoint" (the authors' release): summed over all
    # (trained instance, labelled keypoint) pairs of the batch / their number, so persons with more
    # labelled keypoints weigh more. Both averaged over processes, both work with KPNET_LOSS_CHUNK.
    _C.KPNET_LOSS_NORMALIZER = "instance"
    # Inference runs the KP-Nets band by band over the map, reducing each band to running argmaxes
    # and softmax normalisers; one band's activations hold at most this many values (bounds memory
    # at any stride, e.g. stride 2 with 500 candidates, and keeps a band in cache on the CPU).
    _C.KPNET_CHUNK_ELEMENTS = 1 << 25
    # KP-Net logits upsampled by this integer factor f before the argmax (inference only; the loss
    # stays on the OUTPUT_STRIDE map). 1 (default, the paper's model): argmax on the OUTPUT_STRIDE
    # map. 2 with "bicubic" (align_corners False): the authors' release (stride-8 maps decoded at
    # stride 4). Keypoints sit at (fine col + dx, fine row + dy) * OUTPUT_STRIDE / f, so offsets
    # must be at that stride (HEATMAP_OFFSETS_ON with HEATMAP_STRIDE = OUTPUT_STRIDE / f), else
    # DISK_OFFSET_ON False (fine cell centres); f must divide OUTPUT_STRIDE. The banded inference
    # keeps its KPNET_CHUNK_ELEMENTS bound (a halo of 2 coarse rows per band, same result as
    # upsampling whole maps). The keypoint confidence (KEYPOINT_SCORE) stays on the KP-Net's own
    # map, at the coarse cell holding the fine argmax: the loss trains that softmax, the
    # interpolated map is not a trained distribution (inspose/modeling/kpnet_upsample.py).
    # With VARIFOCAL_TARGET "oks" the targets decode the same way.
    _C.KPNET_UPSAMPLE_FACTOR = 1
    # "bicubic" (default, the release's) or "bilinear".
    _C.KPNET_UPSAMPLE_MODE = "bicubic"
    # Where the argmax of the upsampled maps is taken (with KPNET_UPSAMPLE_FACTOR > 1): "global"
    # (default, the release's): over the whole upsampled map. "coarse_cell": among the f x f fine
    # cells of the coarse map's argmax cell, which only refines the coarse argmax. The global
    # argmax is not peak-preserving: a sharp coarse peak is averaged down with its neighbours (no
    # fine cell samples a coarse centre at f = 2), so a broader, slightly lower bump elsewhere can
    # win although the coarse softmax puts nearly all its mass on the peak; on the overfitted
    # release model 7 of 64 keypoints jumped 16-120 px (OKS AP 78.2 global, 94.9 coarse_cell).
    # The confidence is the same in both (the coarse map's).
    _C.KPNET_UPSAMPLE_ARGMAX = "global"
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
    # Gaussian sigma of the heatmap targets, in heatmap cells (HEATMAP_STRIDE; P3's 8 by default).
    _C.HEATMAP_SIGMA = 1.0
    # CornerNet focal loss exponents.
    _C.HEATMAP_FOCAL_ALPHA = 2.0
    _C.HEATMAP_FOCAL_BETA = 4.0
    # The release's heatmap branch (inspose/modeling/heads/fine_keypoint_branch.py,
    # inspose/modeling/codec/adaptive_targets.py); the defaults are the paper's branch above.
    # Stride of the heatmaps: 8 (default: on P3) or 4 (the release: HEATMAP_CONVS convs on P3,
    # bilinear x2, HEATMAP_UPSAMPLED_CONVS convs, then the heads; the release has 2 x 512, x2,
    # 1 x 512, so HEATMAP_CHANNELS 512).
    _C.HEATMAP_STRIDE = 8
    _C.HEATMAP_UPSAMPLED_CONVS = 1
    # Heatmap Gaussians: "fixed" (default: HEATMAP_SIGMA for everyone) or "adaptive" (the
    # release): radius r = clamp(floor(gaussian_radius(person box in HEATMAP_STRIDE cells,
    # HEATMAP_MIN_OVERLAP)), HEATMAP_MIN_RADIUS, HEATMAP_MAX_RADIUS) cells, sigma = (2r + 1) / 6,
    # on the (2r + 1)^2 square around the keypoint's cell; the box is the one the person is
    # assigned with (grown keypoint pseudo-box, or the annotated box with BOX_HEAD_ON).
    _C.HEATMAP_RADIUS_MODE = "fixed"
    _C.HEATMAP_MIN_RADIUS = 0
    _C.HEATMAP_MAX_RADIUS = 3
    _C.HEATMAP_MIN_OVERLAP = 0.9
    # gaussian_radius: "exact" (default: the largest r keeping IoU >= HEATMAP_MIN_OVERLAP in
    # CornerNet's three cases, derived and tested) or "cornernet" (the formula of CornerNet's code
    # that CenterNet and the release use: radii about 3.8x larger at 0.9; the release's radii
    # need it).
    _C.HEATMAP_RADIUS_FORMULA = "exact"
    # The heatmap branch also predicts 2K offsets at HEATMAP_STRIDE, which replace the disk-offset
    # branch for decoding (so the branch then runs at inference, its offsets only; DiskOffsetBranch
    # is not built). Needs HEATMAP_ON, DISK_OFFSET_ON (offsets decoded) and OUTPUT_STRIDE /
    # KPNET_UPSAMPLE_FACTOR == HEATMAP_STRIDE. Supervised on the square of the adaptive radius
    # (a disk of DISK_RADIUS heatmap cells in "fixed" mode), nearest keypoint wins, L1 / supervised
    # values (loss_heatmap_offset). Off by default (the paper's P3 disk-offset branch).
    _C.HEATMAP_OFFSETS_ON = False
    # Associative-embedding tags (K channels at HEATMAP_STRIDE, training only) with pull / push
    # losses (loss_ae_pull, loss_ae_push; inspose/modeling/ae_loss.py); needs HEATMAP_ON. Off by
    # default (not in the paper; the release has them at weight 1).
    _C.AE_TAGS_ON = False

    # ---------------------------------------------------------------- optional box head (Table 4)
    # A box regression head on the controller tower (GIoU loss). When on, locations are assigned
    # with the annotated person boxes instead of the pseudo-boxes and NMS uses predicted boxes.
    _C.BOX_HEAD_ON = False

    # ---------------------------------------------------------------- components of the release
    # Not in the paper; the authors' release (65.2 AP, R-50 3x) has them. All off by default.
    # Keypoint-regression branch: at every location of every FPN level a tower of
    # KEYPOINT_REGRESSION_CONVS 3x3 convs of KEYPOINT_REGRESSION_CHANNELS (norm NORM; the release's
    # 4 x 512, GN), then a 3x3 conv to 2K: each keypoint relative to the location, in units of the
    # level's stride. Trained on every positive location by L1 on its person's labelled keypoints
    # (loss_keypoint_regression, / labelled coordinates of the batch, as the release). Needed by
    # STAR_DEFORM_ON and NMS_BOXES "regression"; at test time it runs only for those.
    _C.KEYPOINT_REGRESSION_ON = False
    _C.KEYPOINT_REGRESSION_CONVS = 4
    _C.KEYPOINT_REGRESSION_CHANNELS = 512
    # Star deformable convs (needs KEYPOINT_REGRESSION_ON): the 9 regressed keypoints named in
    # STAR_KEYPOINTS are the 9 taps (row-major) of a 3x3 deformable conv (+ NORM + ReLU) on the
    # classification tower and on the controller tower; each tower's output and its star conv's
    # are concatenated before the classifier / controller conv (2x their input channels). The
    # names are looked up in the datasets' metadata (keypoint_names) when the model is built; the
    # default is COCO's choice of the release. CrowdPose (no nose) needs its own 9, e.g.
    # ["head", "left_shoulder", "right_shoulder", "left_wrist", "right_wrist", "left_hip",
    # "right_hip", "left_ankle", "right_ankle"].
    _C.STAR_DEFORM_ON = False
    _C.STAR_KEYPOINTS = [
        "nose", "left_shoulder", "right_shoulder", "left_wrist", "right_wrist",
        "left_hip", "right_hip", "left_ankle", "right_ankle",
    ]  # fmt: skip
    # The offsets of the star convs pass this fraction of their gradient to the regression branch
    # ((1 - m) * detached + m * live; the release's 0.1: the regression is trained by its own loss).
    _C.STAR_GRAD_MULT = 0.1

    # ---------------------------------------------------------------- loss weights
    # L = w_cls L_cls + w_kpf L_kpf + w_do L_do + w_hm L_hm (+ w_box L_box).
    _C.LOSS_WEIGHT_CLS = 1.0
    _C.LOSS_WEIGHT_KPNET = 1.0
    _C.LOSS_WEIGHT_OFFSET = 1.0
    _C.LOSS_WEIGHT_HEATMAP = 1.0
    _C.LOSS_WEIGHT_BOX = 1.0
    _C.LOSS_WEIGHT_KEYPOINT_REGRESSION = 1.0  # with KEYPOINT_REGRESSION_ON (the release's 1)
    _C.LOSS_WEIGHT_HEATMAP_OFFSET = 1.0  # with HEATMAP_OFFSETS_ON (the release's 1)
    # With AE_TAGS_ON (the release's 1 each; its push is half our mean over pairs: 0.5 matches it).
    _C.LOSS_WEIGHT_AE_PULL = 1.0
    _C.LOSS_WEIGHT_AE_PUSH = 1.0

    # ---------------------------------------------------------------- inference
    _C.SCORE_THRESH_TEST = 0.1
    _C.PRE_NMS_TOPK_TEST = 500
    # > 0: the top k locations of each FPN level by classification score, then those over
    # SCORE_THRESH_TEST, replace the global top PRE_NMS_TOPK_TEST (the release: 1000, meant with
    # KPNETS_AFTER_NMS, as it lets thousands of candidates through). 0 (default, the paper's model):
    # the global top PRE_NMS_TOPK_TEST over the threshold.
    _C.PRE_NMS_TOPK_PER_LEVEL = 0
    # IoU threshold of NMS on the keypoints' enclosing boxes (paper silent; 0.6 as FCOS). With
    # NMS_TYPE "soft_linear", the IoU from which a score decays (the release: 0.3).
    _C.NMS_THRESH_TEST = 0.6
    # The NMS of the detections. "hard" (default, the paper's model): torchvision's NMS on the
    # boxes at NMS_THRESH_TEST. "soft_linear" / "soft_gaussian": soft-NMS (Bodla et al.), after each
    # pick the others' scores are multiplied by 1 - IoU where IoU >= NMS_THRESH_TEST / by
    # exp(-IoU^2 / SOFT_NMS_SIGMA), and the detection's score is its decayed score (the release:
    # "soft_linear" with NMS_THRESH_TEST 0.3). "oks": a detection whose OKS with a kept one is
    # > OKS_NMS_THRESH is dropped (OKS with the dataset's keypoint_oks_sigmas and the kept
    # detection's box area; needs a dataset of DATASETS.TEST or TRAIN with those sigmas).
    # The exported graph (tools/export_model.py) has "hard" only.
    _C.NMS_TYPE = "hard"
    # Gaussian soft-NMS's sigma in exp(-IoU^2 / sigma) (0.5: the soft-NMS paper's and mmcv's).
    _C.SOFT_NMS_SIGMA = 0.5
    # Soft-NMS drops a candidate whose score is, or decays, below this (0.001: mmcv's default,
    # which the release uses).
    _C.SOFT_NMS_MIN_SCORE = 0.001
    # OKS-NMS's threshold (0.9: the value of top-down pose estimators' OKS-NMS, e.g. HRNet's and
    # SimpleBaseline's; only near-duplicate poses are dropped).
    _C.OKS_NMS_THRESH = 0.9
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
    # The boxes NMS compares (and pred_boxes): "auto" (default, the paper's model): the box head's
    # with BOX_HEAD_ON, else "kpnet"; "kpnet": the enclosing box of the decoded KP-Net keypoints;
    # "regression": the enclosing box of the regressed keypoints (needs KEYPOINT_REGRESSION_ON; the
    # release); "box_head": the box head's (needs BOX_HEAD_ON).
    _C.NMS_BOXES = "auto"
    # Run the KP-Nets after NMS, only on its <= TEST.DETECTIONS_PER_IMAGE survivors (the release's
    # order; much less KP-Net work) instead of on every candidate before it. The NMS boxes must
    # then exist without the KP-Nets (NMS_BOXES "regression" or "box_head") and so must the score
    # (INSTANCE_SCORE "cls").
    _C.KPNETS_AFTER_NMS = False

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
