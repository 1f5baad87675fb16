"""The release's data treatment through existing keys, on real coco_kp_mini images.

The release trains on every image with any person annotation (detectron2:
DATALOADER.FILTER_EMPTY_ANNOTATIONS True with MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE 0),
makes persons without labelled keypoints weak positives on their annotated box
(NO_KEYPOINT_PERSONS "positive": target VARIFOCAL_WEAK_TARGET under the Varifocal loss) and crowd
regions negatives (IGNORE_CROWD False). A small COCO json in tmp holds two real images: one whose
persons all have num_keypoints 0 (image 256353 without its labelled persons) and one with a crowd
region beside labelled persons (image 433998). Expected values are computed here from the
annotations (boxes, crowd regions, the varifocal formula), not read from the code under test.
"""
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from detectron2.data import DatasetCatalog
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage

from inspose.checkpoint.checkpointer import TORCHVISION_INPUT_KEYS, TORCHVISION_RESNET_KEYS
from inspose.data import InsPoseDatasetMapper
from inspose.data.description import load_description
from inspose.data.description_registry import register_description, unregister
from inspose.engine import Trainer
from inspose.modeling.level_maps import flatten_levels

from .conftest import REPO_ROOT, register_once
from .model_utils import tiny_cfg

P = "MODEL.INSPOSE."
NO_KEYPOINTS_IMAGE = 256353  # 11 persons, 7 of them with num_keypoints 0: only those are kept
CROWD_IMAGE = 433998  # 13 persons and a crowd region
RELEASE_CONFIG = REPO_ROOT / "configs/release/InsPose_R_50_3x_release.yaml"
# The release's data treatment (the release config's lines) and a small input.
RELEASE_DATA = [
    "DATALOADER.FILTER_EMPTY_ANNOTATIONS", True, "MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE", 0,
    P + "NO_KEYPOINT_PERSONS", "positive", P + "IGNORE_CROWD", False, P + "CLS_LOSS", "varifocal",
]  # fmt: skip
SMALL = ["INPUT.MIN_SIZE_TRAIN", "(160,)", "INPUT.MIN_SIZE_TRAIN_SAMPLING", "choice", "INPUT.MAX_SIZE_TRAIN",
         224, "INPUT.RANDOM_FLIP", "none", "DATALOADER.ASPECT_RATIO_GROUPING", False]  # fmt: skip


def _two_image_json(coco_kp_mini: Path, folder: Path) -> Path:
    source = json.loads((coco_kp_mini / "annotations/person_keypoints_train2017.json").read_text())
    keep = {NO_KEYPOINTS_IMAGE, CROWD_IMAGE}
    subset = dict(source)
    subset["images"] = [i for i in source["images"] if i["id"] in keep]
    subset["annotations"] = [
        a for a in source["annotations"]
        if a["image_id"] == CROWD_IMAGE or (a["image_id"] == NO_KEYPOINTS_IMAGE and a["num_keypoints"] == 0)
    ]  # fmt: skip
    path = folder / "release_data.json"
    path.write_text(json.dumps(subset))
    return path


@pytest.fixture(scope="module")
def dataset(coco_kp_mini, tmp_path_factory) -> str:
    json_file = _two_image_json(coco_kp_mini, tmp_path_factory.mktemp("release_data"))
    return register_once("test_release_data_2", json_file, coco_kp_mini / "train2017")


def _cfg(dataset: str, *opts):
    return tiny_cfg("DATASETS.TRAIN", f"('{dataset}',)", "DATASETS.TEST", f"('{dataset}',)",
                    *RELEASE_DATA, *SMALL, *opts)  # fmt: skip


def _image_id(record: dict) -> int:
    return int(Path(record["file_name"]).stem)


def test_release_config_sets_this_data_treatment():
    """The release config's own lines (read as YAML: its other keys are checked where it is built)."""
    data = yaml.safe_load(RELEASE_CONFIG.read_text())
    c = data["MODEL"]["INSPOSE"]
    assert data["DATALOADER"]["FILTER_EMPTY_ANNOTATIONS"] is True
    assert data["MODEL"]["ROI_KEYPOINT_HEAD"]["MIN_KEYPOINTS_PER_IMAGE"] == 0
    assert (c["NO_KEYPOINT_PERSONS"], c["IGNORE_CROWD"], c["CLS_LOSS"]) == ("positive", False, "varifocal")
    assert c["VARIFOCAL_WEAK_TARGET"] == 0.1
    # trained on InsPose's registration of COCO train, which keeps the annotations' areas
    description = yaml.safe_load((RELEASE_CONFIG.parent / data["DATASETS"]["DESCRIPTIONS"][0]).read_text())
    assert [s["name"] for s in description["splits"]] == re.findall(r'"([^"]+)"', data["DATASETS"]["TRAIN"])
    resnets = data["MODEL"]["RESNETS"]
    assert (resnets["NORM"], data["MODEL"]["BACKBONE"]["FREEZE_AT"]) == ("BN", 2)
    assert data["SOLVER"]["WEIGHT_DECAY_NORM"] == 1e-4
    assert data["SOLVER"]["CLIP_GRADIENTS"]["CLIP_VALUE"] == 35.0
    # what the checkpointer expects of a torchvision ResNet
    settings = {"INPUT.FORMAT": data["INPUT"]["FORMAT"], "MODEL.PIXEL_MEAN": data["MODEL"]["PIXEL_MEAN"],
                "MODEL.PIXEL_STD": data["MODEL"]["PIXEL_STD"],
                "MODEL.RESNETS.STRIDE_IN_1X1": resnets["STRIDE_IN_1X1"]}  # fmt: skip
    assert settings == {**TORCHVISION_INPUT_KEYS, **TORCHVISION_RESNET_KEYS}


@pytest.fixture
def coco_with_areas(tmp_path, monkeypatch, coco_kp_mini) -> str:
    """The release configs' training set (datasets/descriptions/coco_with_areas.yaml) laid out as
    COCO with coco_kp_mini as train2017; unregistered before and after."""
    description_file = RELEASE_CONFIG.parent / yaml.safe_load(RELEASE_CONFIG.read_text())["DATASETS"]["DESCRIPTIONS"][0]
    (tmp_path / "coco/annotations").mkdir(parents=True)
    (tmp_path / "coco/annotations/person_keypoints_train2017.json").symlink_to(
        coco_kp_mini / "annotations/person_keypoints_train2017.json"
    )
    (tmp_path / "coco/train2017").symlink_to(coco_kp_mini / "train2017")
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    description = load_description(str(description_file))
    (name,) = [s.name for s in description.splits]
    unregister(name)
    register_description(description)
    yield name
    unregister(name)


def test_release_training_set_keeps_the_annotation_areas(coco_with_areas):
    """detectron2's built-in keypoints_coco_2017_train drops ``area``; the release configs' set keeps
    it, so the mapper gives gt_areas (the Varifocal targets' areas) = the annotations' areas."""
    records = DatasetCatalog.get(coco_with_areas)
    assert len(records) == 28 and all("area" in a for r in records for a in r["annotations"])
    cfg = tiny_cfg("DATASETS.TRAIN", f"('{coco_with_areas}',)", *SMALL)
    record = next(r for r in records if _image_id(r) == CROWD_IMAGE)
    mapped = InsPoseDatasetMapper(cfg, is_train=True)(record)
    scale = (mapped["image"].shape[1] / record["height"]) * (mapped["image"].shape[2] / record["width"])
    persons = [a for a in record["annotations"] if not a["iscrowd"]]
    expected = torch.tensor([a["area"] for a in persons]) * scale
    assert torch.allclose(mapped["instances"].gt_areas, expected, rtol=2e-2)


def test_loader_keeps_an_image_whose_persons_have_no_keypoints(dataset):
    """With batch = number of images, the first batch is one permutation of the kept images."""
    records = DatasetCatalog.get(dataset)
    no_keypoints = next(r for r in records if _image_id(r) == NO_KEYPOINTS_IMAGE)
    assert no_keypoints["annotations"] and all(
        not any(v > 0 for v in a["keypoints"][2::3]) for a in no_keypoints["annotations"]
    )
    release = _cfg(dataset, "SOLVER.IMS_PER_BATCH", 2)
    batch = next(iter(Trainer.build_train_loader(release)))
    assert {_image_id(d) for d in batch} == {NO_KEYPOINTS_IMAGE, CROWD_IMAGE}
    weak = next(d for d in batch if _image_id(d) == NO_KEYPOINTS_IMAGE)["instances"]
    assert len(weak) == len(no_keypoints["annotations"]) and (weak.gt_keypoints.tensor[..., 2] == 0).all()
    # detectron2's default (one labelled keypoint per image), the paper configs' setting, drops it
    paper = _cfg(dataset, "SOLVER.IMS_PER_BATCH", 2, "MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE", 1)
    assert {_image_id(d) for d in next(iter(Trainer.build_train_loader(paper)))} == {CROWD_IMAGE}


def _mapped(cfg, dataset: str):
    mapper = InsPoseDatasetMapper(cfg, is_train=True)
    records = sorted(DatasetCatalog.get(dataset), key=_image_id, reverse=True)  # 433998 first
    return [mapper(r) for r in records]


def _encode(model, batch):
    outputs = model.predict_maps(model.preprocess_image(batch))
    locs = model.codec.locations(outputs.level_sizes, model.device)
    instances = [d["instances"] for d in batch]
    targets = model.codec.encode(locs, instances, [d["crowd_boxes"].tensor for d in batch])
    return outputs, locs, targets


def _inside(points: np.ndarray, box) -> np.ndarray:
    x0, y0, x1, y1 = box
    return (points[:, 0] >= x0) & (points[:, 0] <= x1) & (points[:, 1] >= y0) & (points[:, 1] <= y1)


def _varifocal_reference(logits, quality, positive, alpha, gamma):
    x, q = np.asarray(logits, np.float64), np.asarray(quality, np.float64)
    p = 1 / (1 + np.exp(-x))
    pos = -q * (q * np.log(p) + (1 - q) * np.log(1 - p))
    neg = -alpha * p**gamma * np.log(1 - p)
    return float(np.where(positive, pos, neg).sum())


@pytest.fixture(scope="module")
def encoded(dataset):
    torch.manual_seed(0)
    cfg = _cfg(dataset)
    model = build_model(cfg).train()
    batch = _mapped(cfg, dataset)
    with torch.no_grad():
        outputs, locs, targets = _encode(model, batch)
        _, trained_cells = model.criterion.kpnet_loss(outputs, locs, targets)
        quality = model.criterion.varifocal(outputs, locs, targets, trained_cells)
    return cfg, model, batch, outputs, locs, targets, quality


def test_keypoint_less_persons_are_positives_with_the_weak_target(encoded):
    cfg, model, batch, outputs, locs, targets, quality = encoded
    weak_image = 1
    persons = batch[weak_image]["instances"]
    rows = targets.pos_image == weak_image
    # positives on locations inside their person's annotated box (some of the image's persons are
    # a few pixels wide and nested in others: their one fallback location may be taken)
    assert len(set(targets.pos_instance[rows].tolist())) >= len(persons) // 2
    points = locs.points[targets.pos_location[rows]].numpy()
    boxes = persons.gt_boxes.tensor[targets.pos_instance[rows]].numpy()
    assert all(_inside(p[None], b)[0] for p, b in zip(points, boxes))
    assert torch.equal(quality[rows], torch.full((int(rows.sum()),), cfg.MODEL.INSPOSE.VARIFOCAL_WEAK_TARGET))
    assert not (targets.kp_image == weak_image).any()  # no KP-Net: nothing to localise
    # contrast: with "ignore" (the paper configs' default) the image has no positive, and the
    # persons' boxes are ignore regions
    ignoring = build_model(_cfg(cfg.DATASETS.TRAIN[0], P + "NO_KEYPOINT_PERSONS", "ignore")).train()
    with torch.no_grad():
        _, _, ignored = _encode(ignoring, batch)
    assert ignored.labels[weak_image].sum() == 0
    in_a_box = np.zeros(len(locs.points), dtype=bool)
    for box in persons.gt_boxes.tensor.numpy():
        in_a_box |= _inside(locs.points.numpy(), box)
    assert np.array_equal(~ignored.valid[weak_image].numpy(), in_a_box)
    # the labelled persons of the other image get OKS-like targets from their KP-Nets instead
    labelled = (targets.pos_image == 0) & (targets.pos_keypoints[..., 2] > 0).any(dim=1)
    assert labelled.any() and targets.pos_trained[labelled].all()


def test_crowd_regions_are_negatives_not_ignored(encoded, dataset):
    cfg, model, batch, outputs, locs, targets, quality = encoded
    crowd = batch[0]["crowd_boxes"].tensor.numpy()
    assert len(crowd) == 1
    in_crowd = _inside(locs.points.numpy(), crowd[0])
    negatives_in_crowd = in_crowd & (targets.labels[0].numpy() == 0)
    assert negatives_in_crowd.sum() > 0
    # nothing is ignored: no unassigned person, crowd regions off
    assert targets.valid.all()
    # contrast: with IGNORE_CROWD True exactly those locations are ignored in that image
    ignoring = build_model(_cfg(dataset, P + "IGNORE_CROWD", True)).train()
    with torch.no_grad():
        _, _, ignored = _encode(ignoring, batch)
    assert np.array_equal(~ignored.valid[0].numpy(), negatives_in_crowd)
    # the heatmap negatives too: every heatmap cell counts without, cells in the crowd box do not with
    assert torch.equal(targets.heatmap_weight, torch.ones_like(targets.heatmap_weight))
    stride = ignoring.codec.heatmap_stride
    height, width = ignored.heatmap_weight.shape[-2:]
    ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    centres = np.stack([(xs.ravel() + 0.5) * stride, (ys.ravel() + 0.5) * stride], axis=1)
    assert np.array_equal(ignored.heatmap_weight[0, 0].numpy().ravel() == 0, _inside(centres, crowd[0]))
    assert ignored.heatmap_weight[1].min() == 1  # the other image has no crowd region


def test_varifocal_loss_counts_crowd_and_weak_positives(encoded):
    """The criterion's loss equals the formula over every location of both images: positives with
    their targets (0.1 for the weak ones), every other location a negative, / (positives + 2)."""
    cfg, model, batch, outputs, locs, targets, quality = encoded
    with torch.no_grad(), EventStorage():
        loss = model.criterion.classification_loss(outputs, targets, quality)
    logits = flatten_levels(outputs.logits).squeeze(2).numpy()
    q_map = np.zeros_like(logits)
    q_map[targets.pos_image.numpy(), targets.pos_location.numpy()] = quality.numpy()
    positive = targets.labels.numpy() > 0
    c = cfg.MODEL.INSPOSE
    expected = _varifocal_reference(logits, q_map, positive, c.VARIFOCAL_ALPHA, c.VARIFOCAL_GAMMA)
    assert loss.item() == pytest.approx(expected / (positive.sum() + len(batch)), rel=1e-5)
