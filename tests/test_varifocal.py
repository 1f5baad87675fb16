"""The varifocal classification loss (CLS_LOSS "varifocal") and its targets (quality_targets.py).

Hand-made cases use a K = 3 model piece by piece: a depth-1 KP-Net whose feature weights are the
identity, on keypoint features that are 0 except one bump per keypoint, so map k peaks at a known
cell; expected values are computed in the tests from the formulas, independently of the code.
"""
import math

import numpy as np
import pytest
import torch
from detectron2.structures import Boxes, Instances, Keypoints
from detectron2.utils.events import EventStorage

from inspose.config import ConfigError, get_inspose_cfg, validate_inspose_config
from inspose.modeling.codec import InsPoseCodec
from inspose.modeling.criterion import InsPoseCriterion
from inspose.modeling.head_outputs import HeadOutputs
from inspose.modeling.kpnet import KPNetLayout, kpnet_reference
from inspose.modeling.level_maps import flatten_levels, gather_locations
from inspose.modeling.losses import varifocal_loss_sum
from inspose.modeling.oks import dataset_oks_sigmas
from inspose.modeling.quality_targets import VarifocalTargets

from .model_utils import batch_item, tiny_cfg, tiny_model

K = 3
SIGMAS = (0.1, 0.2, 0.3)
LAYOUT = KPNetLayout(in_channels=K, channels=8, num_keypoints=K, depth=1)
IMAGE = (64, 80)  # P3 and the (stride 8) keypoint maps: 8 x 10
PEAKS = [(2, 3), (5, 1), (7, 6)]  # (col, row) of the argmax of keypoint map k
# person 0: keypoint 0 in the peak's cell, keypoint 1 two columns left and one row below its
# peak's cell, keypoint 2 unlabelled; person 1: no labelled keypoint (a weak positive)
PERSON = [[21.0, 27.5, 2.0], [30.2, 20.0, 2.0], [50.0, 40.0, 0.0]]
AREA = 400.0


# ---------------------------------------------------------------- the hand-made pieces


def _codec(**overrides) -> InsPoseCodec:
    cfg = get_inspose_cfg()
    cfg.MODEL.INSPOSE.NUM_KEYPOINTS = K
    cfg.MODEL.INSPOSE.NO_KEYPOINT_PERSONS = "positive"
    for key, value in overrides.items():
        cfg.MODEL.INSPOSE[key] = value
    return InsPoseCodec.from_config(cfg)


def _instances() -> Instances:
    inst = Instances(IMAGE)
    weak = [[0.0, 0.0, 0.0]] * K
    inst.gt_keypoints = Keypoints(torch.tensor([PERSON, weak]))
    inst.gt_boxes = Boxes(torch.tensor([[20.0, 19.0, 31.0, 28.0], [50.0, 36.0, 78.0, 62.0]]))
    inst.gt_areas = torch.tensor([AREA, 500.0])
    return inst


def _identity_kpnet() -> torch.Tensor:
    """(C_f,) parameters of the depth-1 KP-Net: logits_k = F_k (coordinates weighted 0, bias 0)."""
    weight = torch.cat([torch.eye(K), torch.zeros(K, 2)], dim=1)
    return torch.cat([weight.reshape(-1), torch.zeros(K)])


def _outputs(codec, offsets=None, seed=0) -> HeadOutputs:
    """Head outputs of one image: random logits, the identity KP-Net at every location."""
    g = torch.Generator().manual_seed(seed)
    sizes = [(math.ceil(IMAGE[0] / s), math.ceil(IMAGE[1] / s)) for s in codec.fpn_strides]
    params = _identity_kpnet()
    features = torch.zeros(1, K, *sizes[0])
    for k, (col, row) in enumerate(PEAKS):
        features[0, k, row, col] = 5.0
    return HeadOutputs(
        logits=[torch.randn(1, 1, h, w, generator=g) for h, w in sizes],
        params=[params.view(1, -1, 1, 1).expand(1, -1, h, w).clone() for h, w in sizes],
        boxes=None,
        kp_features=features,
        offsets=offsets,
        heatmaps=None,
        level_sizes=sizes,
    )


def _criterion(codec, mode="release", weak_target=0.1, **kwargs) -> InsPoseCriterion:
    targets = VarifocalTargets(codec=codec, layout=LAYOUT, mode=mode, weak_target=weak_target, sigmas=SIGMAS)
    weights = {n: 1.0 for n in ("loss_cls", "loss_kpnet", "loss_offset", "loss_heatmap", "loss_box")}
    return InsPoseCriterion(codec=codec, layout=LAYOUT, loss_weights=weights, varifocal=targets, **kwargs)


def _quality(codec, criterion, outputs, crowd=None):
    """(targets, (Q,) varifocal targets) of the hand-made image."""
    locs = codec.locations(outputs.level_sizes, torch.device("cpu"))
    targets = codec.encode(locs, [_instances()], [crowd])
    _, trained_cells = criterion.kpnet_loss(outputs, locs, targets)
    return targets, criterion.varifocal(outputs, locs, targets, trained_cells)


def _of_person(targets, person):
    return targets.pos_instance == person


# ---------------------------------------------------------------- the loss


def _varifocal_reference(logits, quality, positive, alpha, gamma):
    """The varifocal loss written out in float64 numpy."""
    x = np.asarray(logits, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    p = 1 / (1 + np.exp(-x))
    pos = -q * (q * np.log(p) + (1 - q) * np.log(1 - p))
    neg = -alpha * p**gamma * np.log(1 - p)
    return float(np.where(positive, pos, neg).sum())


def test_varifocal_loss_matches_its_formula():
    logits = torch.tensor([2.0, -1.0, 0.3, 4.0, -3.0, 0.0, 1.5, -0.5])
    quality = torch.tensor([0.9, 0.3, 1.0, 0.05, 0.7, 0.0, 0.0, 0.0])  # read at positives only
    positive = torch.tensor([True, True, True, True, False, False, False, False])
    for alpha, gamma in ((0.75, 2.0), (0.5, 1.0), (1.0, 0.0)):
        got = varifocal_loss_sum(logits, quality, positive, alpha, gamma)
        expected = _varifocal_reference(logits, quality, positive, alpha, gamma)
        assert got.item() == pytest.approx(expected, rel=1e-5)
    # a positive with q = 0 costs nothing; a negative's quality is not read
    zero = varifocal_loss_sum(torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([True]), 0.75, 2.0)
    assert zero.item() == 0.0
    ignored = varifocal_loss_sum(logits, torch.rand(8), torch.zeros(8, dtype=torch.bool), 0.75, 2.0)
    assert ignored.item() == pytest.approx(_varifocal_reference(logits, 0 * quality, [False] * 8, 0.75, 2.0))


def test_criterion_varifocal_loss_skips_ignored_locations_and_divides_by_positives_plus_images():
    codec = _codec()
    criterion = _criterion(codec, varifocal_alpha=0.6, varifocal_gamma=1.5)
    outputs = _outputs(codec, seed=3)
    crowd = torch.tensor([[0.0, 40.0, 40.0, 64.0]])  # an ignore region
    locs = codec.locations(outputs.level_sizes, torch.device("cpu"))
    targets = codec.encode(locs, [_instances()], [crowd])
    num_pos = targets.pos_location.numel()
    quality = torch.linspace(0.05, 0.95, num_pos)  # various q
    loss = criterion.classification_loss(outputs, targets, quality)

    logits = flatten_levels(outputs.logits)[0, :, 0].numpy()
    q_map = np.zeros(logits.shape[0])
    q_map[targets.pos_location.numpy()] = quality.numpy()
    positive, valid = targets.labels[0].numpy() > 0, targets.valid[0].numpy()
    assert (~valid).sum() > 0 and positive.sum() == num_pos > 0
    expected = _varifocal_reference(logits[valid], q_map[valid], positive[valid], 0.6, 1.5) / (num_pos + 1)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


# ---------------------------------------------------------------- the targets


def _release_expected():
    """Keypoint 0: the argmax cell is floor(gt / 8), d = 0; keypoint 1: cells (5, 1) and
    (floor(30.2 / 8), floor(20 / 8)) = (3, 2), d^2 = 5 cells^2; keypoint 2 unlabelled."""
    d2 = 5.0
    e = d2 / (2 * SIGMAS[1]) ** 2 / (AREA + 1e-4) / 2
    return (math.exp(0.0) + math.exp(-e)) / 2


def test_release_target_of_a_hand_made_kpnet_map():
    codec = _codec()
    targets, quality = _quality(codec, _criterion(codec, "release"), _outputs(codec))
    person = _of_person(targets, 0)
    assert person.sum() > 1 and targets.pos_trained[person].all()
    assert torch.allclose(quality[person], torch.tensor(_release_expected()), rtol=1e-6)


def _pycocotools_oks(pred_xy, gt, area, sigmas):
    """COCOeval.computeOks for one (prediction, ground truth) pair, in numpy."""
    variances = (np.asarray(sigmas) * 2) ** 2
    gt = np.asarray(gt, dtype=np.float64)
    dx, dy = pred_xy[:, 0] - gt[:, 0], pred_xy[:, 1] - gt[:, 1]
    e = (dx**2 + dy**2) / variances / (area + np.spacing(1)) / 2
    e = e[gt[:, 2] > 0]
    return np.sum(np.exp(-e)) / e.shape[0]


def test_oks_target_is_cocos_oks_of_the_decoded_keypoints():
    codec = _codec()
    offsets = torch.zeros(1, 2 * K, 8, 10)
    offsets[0, 0::2], offsets[0, 1::2] = 0.25, 0.75  # dx, dy of every keypoint, in cells
    targets, quality = _quality(codec, _criterion(codec, "oks"), _outputs(codec, offsets))
    decoded = np.array([[(col + 0.25) * 8, (row + 0.75) * 8] for col, row in PEAKS])
    expected = _pycocotools_oks(decoded, PERSON, AREA, SIGMAS)
    person = _of_person(targets, 0)
    assert 0.01 < expected < 0.99
    assert torch.allclose(quality[person], torch.tensor(expected, dtype=torch.float32), rtol=1e-5)


def test_oks_target_without_disk_offsets_decodes_cell_centres():
    codec = _codec(DISK_OFFSET_ON=False)
    targets, quality = _quality(codec, _criterion(codec, "oks"), _outputs(codec))
    decoded = np.array([[(col + 0.5) * 8, (row + 0.5) * 8] for col, row in PEAKS])
    expected = _pycocotools_oks(decoded, PERSON, AREA, SIGMAS)
    expected = torch.tensor(expected, dtype=torch.float32)
    assert torch.allclose(quality[_of_person(targets, 0)], expected, rtol=1e-5)


@pytest.mark.parametrize("weak_target", [0.1, 0.3])
def test_keypoint_less_persons_get_the_weak_target(weak_target):
    codec = _codec()
    targets, quality = _quality(codec, _criterion(codec, weak_target=weak_target), _outputs(codec))
    weak = _of_person(targets, 1)
    assert weak.sum() > 0 and not targets.pos_trained[weak].any()
    assert torch.equal(quality[weak], torch.full((int(weak.sum()),), weak_target))


def test_positives_beyond_the_budget_get_the_same_target_from_the_no_grad_pass():
    codec = _codec(MAX_KPNET_POSITIVES_PER_IMAGE=1)
    targets, quality = _quality(codec, _criterion(codec), _outputs(codec))
    person = _of_person(targets, 0)
    assert int(targets.pos_trained.sum()) == 1 and person.sum() > 1
    assert torch.allclose(quality[person], torch.tensor(_release_expected()), rtol=1e-6)


@pytest.mark.parametrize("mode", ["release", "oks"])
def test_untrained_positives_of_a_real_model_match_trained_kpnets(mode):
    """Tiny model, random weights (every location's KP-Net differs): the cells and targets of
    positives left out by a budget of 2 equal those of the same positives trained (no budget),
    which equal the argmax of the per-instance reference KP-Nets."""
    model = tiny_model("MODEL.INSPOSE.CLS_LOSS", "varifocal", "MODEL.INSPOSE.VARIFOCAL_TARGET", mode)
    batch = [batch_item(128, 160, 3, seed=1), batch_item(128, 160, 2, seed=2)]
    criterion, codec = model.criterion, model.codec
    results = []
    with torch.no_grad():
        outputs = model.predict_maps(model.preprocess_image(batch))
        locs = codec.locations(outputs.level_sizes, model.device)
        for budget in (0, 2):
            codec.kpnet_positive_budget = budget
            targets = codec.encode(locs, [b["instances"] for b in batch], [None, None])
            _, trained = criterion.kpnet_loss(outputs, locs, targets)
            cells = criterion.varifocal.peak_cells(outputs, locs, targets, trained)
            results.append((targets, cells, criterion.varifocal(outputs, locs, targets, trained)))
    (all_trained, cells_all, q_all), (budgeted, cells_budget, q_budget) = results
    assert all_trained.pos_trained.all() and int(budgeted.pos_trained.sum()) == 4
    assert torch.equal(all_trained.pos_location, budgeted.pos_location)
    assert torch.equal(cells_budget, cells_all)
    assert torch.allclose(q_budget, q_all) and (q_all > 0).any()
    params = gather_locations(outputs.params, all_trained.pos_image, all_trained.pos_location)
    rel_x, rel_y = codec.relative_coordinates(locs, all_trained.pos_location, outputs.map_size)
    image = all_trained.pos_image
    reference = kpnet_reference(outputs.kp_features, image, params, criterion.layout, rel_x, rel_y)
    assert torch.equal(cells_all, reference.argmax(dim=2))


# ---------------------------------------------------------------- the codec's fields


def test_encode_gives_every_positive_its_person_keypoints_area_and_kpnet():
    codec = _codec(MAX_KPNET_POSITIVES_PER_IMAGE=2)
    outputs = _outputs(codec)
    locs = codec.locations(outputs.level_sizes, torch.device("cpu"))
    with_areas, without = _instances(), _instances()
    without.remove("gt_areas")
    targets = codec.encode(locs, [with_areas, without], [None, None])
    areas = (with_areas.gt_areas, without.gt_boxes.area())  # the annotation's, else the box's
    for b, inst in enumerate((with_areas, without)):
        owner = codec.assign(locs, inst.gt_keypoints.tensor, inst.gt_boxes.tensor).owner
        rows = targets.pos_image == b
        person = targets.pos_instance[rows]
        assert torch.equal(person, owner[targets.pos_location[rows]])
        assert torch.equal(targets.pos_keypoints[rows], inst.gt_keypoints.tensor[person])
        assert torch.equal(targets.pos_areas[rows], areas[b][person])
    # the kp rows are the trained positives, in order
    assert torch.equal(targets.kp_image, targets.pos_image[targets.pos_trained])
    assert torch.equal(targets.kp_location, targets.pos_location[targets.pos_trained])
    assert int(targets.pos_trained.sum()) == 4  # 2 per image, all of the labelled person


def test_mapper_keeps_the_annotation_area_scaled_with_the_image(coco_kp_mini_dataset):
    from detectron2.data import DatasetCatalog

    from inspose.data import InsPoseDatasetMapper

    records = DatasetCatalog.get(coco_kp_mini_dataset)
    record = next(r for r in records if any(not a.get("iscrowd") for a in r["annotations"]))
    mapper = InsPoseDatasetMapper(tiny_cfg("DATASETS.TRAIN", f"('{coco_kp_mini_dataset}',)"), is_train=True)
    out = mapper(record)
    height, width = out["image"].shape[1:]
    scale = (height / record["height"]) * (width / record["width"])
    areas = [a["area"] for a in record["annotations"] if not a.get("iscrowd")]
    assert scale < 1  # the tiny config shrinks COCO images
    assert torch.allclose(out["instances"].gt_areas, torch.tensor(areas) * scale, rtol=1e-5)


# ---------------------------------------------------------------- the model


def test_targets_do_not_pass_gradients_to_the_kpnets():
    model = tiny_model("MODEL.INSPOSE.CLS_LOSS", "varifocal", "MODEL.INSPOSE.VARIFOCAL_TARGET", "oks")
    model.train()
    with EventStorage():
        losses = model([batch_item(128, 160, 2)])
    losses["loss_cls"].backward()
    assert model.head.cls_logits.weight.grad.abs().sum() > 0
    for module in (model.head.controller, model.keypoint_branch.project, model.offset_branch.predict):
        assert module.weight.grad is None, module


def _independent_default_losses(model, batch):
    """loss_cls and loss_kpnet of the paper's model, recomputed from the heads' outputs: focal
    loss / positives, and per-instance mean cross-entropy of the reference KP-Nets / instances."""
    with torch.no_grad():
        outputs = model.predict_maps(model.preprocess_image(batch))
        locs = model.codec.locations(outputs.level_sizes, model.device)
        targets = model.codec.encode(locs, [b["instances"] for b in batch], [None] * len(batch))
        got = model.criterion(outputs, locs, targets)
        x = flatten_levels(outputs.logits)[..., 0][targets.valid].double()
        y = targets.labels[targets.valid].double()
        p = torch.sigmoid(x)
        focal = -(0.25 * y * (1 - p) ** 2 * torch.log(p) + 0.75 * (1 - y) * p**2 * torch.log(1 - p))
        params = gather_locations(outputs.params, targets.kp_image, targets.kp_location)
        rel_x, rel_y = model.codec.relative_coordinates(locs, targets.kp_location, outputs.map_size)
        layout = model.criterion.layout
        logits = kpnet_reference(outputs.kp_features, targets.kp_image, params, layout, rel_x, rel_y)
        log_prob = torch.log_softmax(logits.double(), 2).gather(2, targets.kp_cells[..., None]).squeeze(2)
        labelled = targets.kp_labelled
        per_instance = -(log_prob * labelled).sum(1) / labelled.sum(1)
    return got, focal.sum() / targets.labels.sum(), per_instance.mean()


def test_default_losses_are_the_papers_and_equal_explicit_defaults():
    batch = [batch_item(128, 160, 3, seed=1), batch_item(128, 160, 1, seed=2)]
    batch[0]["instances"].gt_keypoints.tensor[1, :6, 2] = 0
    explicit = (
        "MODEL.INSPOSE.CLS_LOSS", "focal", "MODEL.INSPOSE.KPNET_LOSS_NORMALIZER", "instance",
        "MODEL.INSPOSE.VARIFOCAL_TARGET", "oks", "MODEL.INSPOSE.VARIFOCAL_ALPHA", 0.5,
    )  # fmt: skip
    default_model, explicit_model = tiny_model(seed=0), tiny_model(*explicit, seed=0)
    got, cls_reference, kpnet_reference_loss = _independent_default_losses(default_model, batch)
    assert default_model.criterion.varifocal is None
    assert got["loss_cls"].item() == pytest.approx(cls_reference.item(), rel=1e-5)
    assert got["loss_kpnet"].item() == pytest.approx(kpnet_reference_loss.item(), rel=1e-5)
    for model in (default_model, explicit_model):
        model.train()
    torch.manual_seed(3)
    with EventStorage():
        default_losses = default_model(batch)
    torch.manual_seed(3)
    with EventStorage():
        explicit_losses = explicit_model(batch)
    assert default_losses.keys() == explicit_losses.keys()
    for name, value in default_losses.items():
        assert torch.equal(value, explicit_losses[name]), name


@pytest.mark.parametrize("mode", ["release", "oks"])
def test_two_training_iterations_with_varifocal_give_finite_losses(mode):
    model = tiny_model(
        "MODEL.INSPOSE.CLS_LOSS", "varifocal", "MODEL.INSPOSE.VARIFOCAL_TARGET", mode,
        "MODEL.INSPOSE.NO_KEYPOINT_PERSONS", "positive", "MODEL.INSPOSE.MAX_KPNET_POSITIVES_PER_IMAGE", 4,
        "MODEL.INSPOSE.KPNET_LOSS_NORMALIZER", "keypoint",
    )  # fmt: skip
    batch = [batch_item(96, 128, 2, seed=1), batch_item(96, 128, 1, seed=2)]
    batch[1]["instances"].gt_keypoints.tensor[0, :, 2] = 0  # a weak positive
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    for _ in range(2):
        with EventStorage():
            losses = model(batch)
        assert all(torch.isfinite(v) for v in losses.values()), losses
        assert losses["loss_cls"] > 0
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())


# ---------------------------------------------------------------- configuration


def test_oks_sigmas_come_from_the_training_datasets():
    assert dataset_oks_sigmas(["synthetic_keypoints_train"], 17)[0] == pytest.approx(0.026)
    message = "CLS_LOSS.*'synthetic_keypoints_train' has 17 keypoint_oks_sigmas.*NUM_KEYPOINTS is 14"
    with pytest.raises(ConfigError, match=message):
        dataset_oks_sigmas(["synthetic_keypoints_train"], 14)
    with pytest.raises(ConfigError, match="CLS_LOSS.*'no_such_set_for_varifocal' has no keypoint_oks_sigmas"):
        dataset_oks_sigmas(["no_such_set_for_varifocal"], 17)
    with pytest.raises(ConfigError, match="CLS_LOSS.*DATASETS.TRAIN, which is empty"):
        dataset_oks_sigmas([], 17)


def test_a_model_with_other_keypoints_than_its_sigmas_fails_at_the_first_step():
    model = tiny_model("MODEL.INSPOSE.CLS_LOSS", "varifocal", "MODEL.INSPOSE.NUM_KEYPOINTS", 14)
    model.train()
    with pytest.raises(ConfigError, match="'synthetic_keypoints_train' has 17 keypoint_oks_sigmas"):
        with EventStorage():
            model([batch_item(96, 128, 1, num_keypoints=14)])


@pytest.mark.parametrize(
    "key, value",
    [("CLS_LOSS", "bce"), ("VARIFOCAL_TARGET", "iou"), ("KPNET_LOSS_NORMALIZER", "person"),
     ("VARIFOCAL_ALPHA", 1.5), ("VARIFOCAL_ALPHA", -0.1), ("VARIFOCAL_GAMMA", -1.0),
     ("VARIFOCAL_WEAK_TARGET", 1.2)],
)  # fmt: skip
def test_invalid_values_are_config_errors(key, value):
    cfg = get_inspose_cfg()
    cfg.MODEL.INSPOSE[key] = value
    with pytest.raises(ConfigError, match=f"MODEL.INSPOSE.{key} = "):
        validate_inspose_config(cfg)


def test_valid_combinations():
    cfg = get_inspose_cfg()
    values = {
        "CLS_LOSS": "varifocal", "VARIFOCAL_TARGET": "oks", "DISK_OFFSET_ON": False,
        "VARIFOCAL_GAMMA": 0.0, "VARIFOCAL_WEAK_TARGET": 0.0, "NO_KEYPOINT_PERSONS": "positive",
    }  # fmt: skip
    for key, value in values.items():
        cfg.MODEL.INSPOSE[key] = value
    validate_inspose_config(cfg)
    cfg.MODEL.INSPOSE.CLS_LOSS = "focal"  # keypoint-less positives with the focal loss, as before
    validate_inspose_config(cfg)
