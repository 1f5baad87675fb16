"""Test-time augmentation: equality with the plain model, flips, scales, and the evaluation path."""
import importlib.util
import uuid
from argparse import Namespace

import cv2
import numpy as np
import pytest
import torch
from detectron2.data import MetadataCatalog
from detectron2.data import transforms as T

from inspose.data import COCO_PERSON, KeypointSpec, register_keypoint_dataset
from inspose.data.synthetic import GeneratorSettings, generate_dataset
from inspose.engine import Trainer
from inspose.evaluation import KEYPOINT_METRICS
from inspose.modeling.inference import Candidates
from inspose.modeling.tta import InsPoseWithTTA, flip_candidates, rescale_candidates

from .conftest import REPO_ROOT
from .model_utils import tiny_cfg

CROWDPOSE_NAMES = (
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "head", "neck",
)  # fmt: skip
CROWDPOSE_FLIPS = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11))
FAST = ("MODEL.INSPOSE.SCORE_THRESH_TEST", 0.0, "MODEL.INSPOSE.PRE_NMS_TOPK_TEST", 30)


def _spec(names, flips):
    return KeypointSpec(names, flips, (), (0.05,) * len(names))


def _setup(*opts, seed=0):
    """(cfg, tiny model in eval mode) with every location a candidate (30 per image)."""
    cfg = tiny_cfg(*FAST, "INPUT.MIN_SIZE_TEST", 96, "INPUT.MAX_SIZE_TEST", 160, *opts)
    torch.manual_seed(seed)
    model = Trainer.build_model(cfg).eval()
    return cfg, model


def _test_input(original: np.ndarray, cfg, **extra) -> dict:
    """What the test mapper gives: the image resized to MIN_SIZE_TEST plus the original size."""
    resize = T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, "choice")
    image = resize.get_transform(original).apply_image(original)
    tensor = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
    return {"image": tensor, "height": original.shape[0], "width": original.shape[1], **extra}


def _random_image(height=75, width=110, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _random_candidates(n, k, width=100.0, height=80.0, seed=0) -> Candidates:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, k, 2, generator=g) * torch.tensor([width, height])
    keypoints = torch.cat([xy, torch.rand(n, k, 1, generator=g)], dim=2)
    boxes = torch.cat([xy.amin(1), xy.amax(1)], dim=1)
    return Candidates(keypoints, torch.rand(n, generator=g), boxes)


def _sorted(instances):
    order = instances.scores.argsort(descending=True)
    return instances.pred_keypoints[order], instances.scores[order], instances.pred_boxes.tensor[order]


# (a) one scale at the test size, no flip: exactly the plain model


@pytest.mark.parametrize("box_head", [False, True], ids=["keypoint_boxes", "box_head"])
def test_single_scale_without_flip_equals_the_model(box_head):
    cfg, model = _setup(
        "TEST.AUG.MIN_SIZES", (96,), "TEST.AUG.MAX_SIZE", 160, "TEST.AUG.FLIP", False,
        "MODEL.INSPOSE.BOX_HEAD_ON", box_head,
    )  # fmt: skip
    if box_head:  # boxes reaching past the image: both must clip them after NMS
        torch.nn.init.constant_(model.head.box_pred.bias, 4.0)
    inputs = _test_input(_random_image(), cfg)
    with torch.no_grad():
        plain = model([inputs])[0]["instances"]
    augmented = InsPoseWithTTA(cfg, model)([inputs])[0]["instances"]
    assert len(plain) > 0 and augmented.image_size == plain.image_size == (75, 110)
    for ours, theirs in zip(_sorted(augmented), _sorted(plain)):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-3)


# (b) flips


@pytest.mark.parametrize("spec", [COCO_PERSON, _spec(CROWDPOSE_NAMES, CROWDPOSE_FLIPS)], ids=["k17", "k14"])
def test_flipping_twice_is_the_identity(spec):
    candidates = _random_candidates(6, spec.num_keypoints)
    flips = torch.as_tensor(spec.flip_indices())
    back = flip_candidates(flip_candidates(candidates, 100.0, flips), 100.0, flips)
    torch.testing.assert_close(back.keypoints, candidates.keypoints)
    torch.testing.assert_close(back.boxes, candidates.boxes)


@pytest.mark.parametrize("spec", [COCO_PERSON, _spec(CROWDPOSE_NAMES, CROWDPOSE_FLIPS)], ids=["k17", "k14"])
def test_flip_mirrors_x_and_swaps_left_and_right(spec):
    width = 100.0
    candidates = _random_candidates(3, spec.num_keypoints, width)
    flipped = flip_candidates(candidates, width, torch.as_tensor(spec.flip_indices()))
    paired = {a: b for pair in spec.flip_pairs for a, b in (pair, pair[::-1])}
    for k in range(spec.num_keypoints):
        source = paired.get(k, k)  # what the network called "left" on the mirror is the right side
        torch.testing.assert_close(flipped.keypoints[:, k, 0], width - candidates.keypoints[:, source, 0])
        torch.testing.assert_close(flipped.keypoints[:, k, 1:], candidates.keypoints[:, source, 1:])
    x1, y1, x2, y2 = candidates.boxes.unbind(1)
    torch.testing.assert_close(flipped.boxes, torch.stack([width - x2, y1, width - x1, y2], 1))
    assert (flipped.boxes[:, 2] >= flipped.boxes[:, 0]).all()


def test_flip_indices_come_from_the_dataset_metadata():
    name = f"tta_crowdpose_like_{uuid.uuid4().hex[:8]}"
    MetadataCatalog.get(name).set(**_spec(CROWDPOSE_NAMES, CROWDPOSE_FLIPS).to_metadata())
    cfg, model = _setup("MODEL.INSPOSE.NUM_KEYPOINTS", 14)
    tta = InsPoseWithTTA(cfg, model, name)
    assert tta.flip_indices.tolist() == [1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 12, 13]
    with pytest.raises(ValueError, match="permutation of 14"):
        InsPoseWithTTA(cfg, model, list(COCO_PERSON.flip_indices()))


def test_flip_of_the_mirror_image_mirrors_the_result():
    """TTA(mirror) merges the same candidates as TTA(image), mirrored: results must mirror too."""
    cfg, model = _setup("TEST.AUG.MIN_SIZES", (96,), "TEST.AUG.MAX_SIZE", 160, "TEST.AUG.FLIP", True)
    tta = InsPoseWithTTA(cfg, model, list(COCO_PERSON.flip_indices()))
    image = _random_image(seed=3)
    direct = tta([_test_input(image, cfg)])[0]["instances"]
    mirrored = tta([_test_input(np.ascontiguousarray(image[:, ::-1]), cfg)])[0]["instances"]
    assert len(direct) > 0 and len(direct) == len(mirrored)
    width = float(image.shape[1])
    flips = torch.as_tensor(COCO_PERSON.flip_indices())
    back = flip_candidates(
        Candidates(mirrored.pred_keypoints, mirrored.scores, mirrored.pred_boxes.tensor), width, flips
    )
    keypoints, scores, boxes = _sorted(direct)
    order = back.scores.argsort(descending=True)
    torch.testing.assert_close(back.scores[order], scores)
    torch.testing.assert_close(back.keypoints[order], keypoints, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(back.boxes[order], boxes, rtol=1e-4, atol=1e-3)


# (c) scales


def test_rescale_candidates_maps_to_the_target_size():
    candidates = _random_candidates(4, 17, width=240.0, height=160.0)
    scaled = rescale_candidates(candidates, (160, 240), (80, 60))
    torch.testing.assert_close(scaled.keypoints[..., 0], candidates.keypoints[..., 0] / 4)
    torch.testing.assert_close(scaled.keypoints[..., 1], candidates.keypoints[..., 1] / 2)
    torch.testing.assert_close(scaled.keypoints[..., 2], candidates.keypoints[..., 2])
    torch.testing.assert_close(scaled.boxes, candidates.boxes / torch.tensor([4.0, 2.0, 4.0, 2.0]))


def _spy(monkeypatch, obj, name, calls, results=None):
    """Record the arguments (and with ``results`` the return values) of ``obj.name``."""
    original = getattr(obj, name)

    def spy(*args, **kwargs):
        calls.append(args)
        out = original(*args, **kwargs)
        if results is not None:
            results.append(out)
        return out

    monkeypatch.setattr(obj, name, spy)


@pytest.mark.parametrize("flip", [False, True])
def test_scales_are_mapped_to_the_original_size_and_merged_before_one_nms(tmp_path, monkeypatch, flip):
    cfg, model = _setup("TEST.AUG.MIN_SIZES", (64, 128), "TEST.AUG.MAX_SIZE", 400, "TEST.AUG.FLIP", flip)
    original = _random_image(seed=1)
    path = tmp_path / "original.png"
    cv2.imwrite(str(path), original)  # read back in INPUT.FORMAT (BGR): the same pixels
    tta = InsPoseWithTTA(cfg, model, list(COCO_PERSON.flip_indices()))
    batches, selected, scales, per_scale = [], [], [], []
    _spy(monkeypatch, model, "predict_maps", batches)
    _spy(monkeypatch, model.predictor, "select", selected)
    _spy(monkeypatch, tta, "candidates_at_scale", scales, per_scale)
    result = tta([_test_input(original, cfg, file_name=str(path))])[0]["instances"]
    per_image = 2 if flip else 1
    assert [b[0].tensor.shape[0] for b in batches] == [per_image, per_image]
    assert [b[0].image_sizes[0] for b in batches] == [(64, 94), (128, 188)]
    assert [len(c.scores) for c in per_scale] == [30 * per_image] * 2
    for found in per_scale:
        x, y = found.keypoints[..., 0], found.keypoints[..., 1]
        assert x.min() >= 0 and x.max() <= 110 and y.min() >= 0 and y.max() <= 75
    (candidates, size), = selected
    assert len(candidates.scores) == sum(len(c.scores) for c in per_scale)
    assert size == (75, 110) and result.image_size == (75, 110)
    assert 0 < len(result) <= len(candidates.scores)


def test_other_scales_are_resized_from_the_original_file(tmp_path):
    cfg, model = _setup("TEST.AUG.MIN_SIZES", (64,), "TEST.AUG.FLIP", False)
    original = _random_image(seed=2)
    path = tmp_path / "original.png"
    cv2.imwrite(str(path), original)
    tta = InsPoseWithTTA(cfg, model)
    from_file = tta._source_image(_test_input(original, cfg, file_name=str(path)))
    np.testing.assert_array_equal(from_file, original)
    from_tensor = tta._source_image(_test_input(original, cfg))
    assert from_tensor.shape == (96, 141, 3)  # no file: the given (test-size) image


# (d) evaluation through Trainer.test_with_TTA and tools/train_net.py


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tta_synthetic")
    settings = GeneratorSettings(image_size=(64, 96), max_persons=2)
    summary = generate_dataset(str(folder), 0, 2, seed=5, settings=settings, workers=1)
    name = f"tta_synthetic_val_{uuid.uuid4().hex[:8]}"
    register_keypoint_dataset(name, summary["val_json"], str(folder / "val"), COCO_PERSON)
    return name


def _tta_opts(name, output_dir):
    return (
        "DATASETS.TEST", (name,), "INPUT.MIN_SIZE_TEST", 64, "INPUT.MAX_SIZE_TEST", 128,
        "TEST.AUG.ENABLED", True, "TEST.AUG.MIN_SIZES", (64, 96), "TEST.AUG.MAX_SIZE", 160,
        "TEST.AUG.FLIP", True, "OUTPUT_DIR", str(output_dir),
    )  # fmt: skip


@pytest.mark.slow
def test_trainer_test_with_tta_reports_the_ten_keypoint_metrics(tiny_dataset, tmp_path):
    cfg, model = _setup(*_tta_opts(tiny_dataset, tmp_path))
    results = Trainer.test_with_TTA(cfg, model)
    assert list(results) == ["keypoints_TTA"]
    assert set(results["keypoints_TTA"]) == set(KEYPOINT_METRICS)
    assert (tmp_path / "inference_TTA" / tiny_dataset / "coco_instances_results.json").is_file()


@pytest.mark.slow
def test_train_net_eval_only_merges_the_tta_results(tiny_dataset, tmp_path):
    spec = importlib.util.spec_from_file_location("train_net", REPO_ROOT / "tools" / "train_net.py")
    train_net = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_net)
    opts = [str(v) for v in (*FAST, *_tta_opts(tiny_dataset, tmp_path))]
    args = Namespace(
        config_file=str(REPO_ROOT / "configs/quick_schedules/InsPose_R_18_tiny_cpu.yaml"),
        opts=opts, eval_only=True, resume=False, num_gpus=1,
    )  # fmt: skip
    results = train_net.main(args)
    assert set(results) == {"keypoints", "keypoints_TTA"}
    assert set(results["keypoints_TTA"]) == set(KEYPOINT_METRICS)
