"""NMS options (``inspose.modeling.nms``, ``level_topk``) and the predictor's NMS_TYPE choices.

Soft-NMS and OKS-NMS are checked against references written as plain Python loops over floats
(the textbook algorithms, one candidate at a time) on random candidates: clusters of overlapping
boxes, tied scores, 0 and 1 candidates, K other than 17.
"""
import math

import pytest
import torch
from torchvision.ops import nms

from inspose.config import ConfigError, validate_inspose_config
from inspose.data import COCO_PERSON
from inspose.deploy.export import ExportError, check_exportable
from inspose.modeling.inference import Candidates, InsPosePredictor
from inspose.modeling.level_topk import level_topk
from inspose.modeling.nms import hard_nms, keypoint_similarity, oks_nms, soft_nms

from .model_utils import batch_item, tiny_cfg, tiny_model

SEEDS = range(6)
COUNTS = (0, 1, 2, 9, 40)


# ---------------------------------------------------------------------------------------- references


def _iou_py(a, b):
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _best_py(scores, alive):
    """Index of the highest alive score, the first on a tie; None when none is alive."""
    best = None
    for i, (score, live) in enumerate(zip(scores, alive)):
        if live and (best is None or score > scores[best]):
            best = i
    return best


def _soft_nms_py(boxes, scores, decay, iou_thresh, sigma, min_score, max_keep):
    scores = list(scores)
    alive = [s >= min_score for s in scores]
    keep, kept = [], []
    while len(keep) < max_keep:
        i = _best_py(scores, alive)
        if i is None:
            break
        keep.append(i)
        kept.append(scores[i])
        alive[i] = False
        for j in range(len(scores)):
            if not alive[j]:
                continue
            iou = _iou_py(boxes[i], boxes[j])
            if decay == "linear":
                scores[j] *= (1.0 - iou) if iou >= iou_thresh else 1.0
            else:
                scores[j] *= math.exp(-iou * iou / sigma)
            alive[j] = scores[j] >= min_score
    return keep, kept


def _oks_py(a, b, area, sigmas):
    total = 0.0
    for (xa, ya), (xb, yb), s in zip(a, b, sigmas):
        d2 = (xa - xb) ** 2 + (ya - yb) ** 2
        total += math.exp(-d2 / (2.0 * (2.0 * s) ** 2 * (area + 1e-6)))
    return total / len(sigmas)


def _oks_nms_py(keypoints, boxes, scores, sigmas, thresh, max_keep):
    alive = [True] * len(scores)
    keep = []
    while len(keep) < max_keep:
        i = _best_py(scores, alive)
        if i is None:
            break
        keep.append(i)
        alive[i] = False
        area = max(0.0, boxes[i][2] - boxes[i][0]) * max(0.0, boxes[i][3] - boxes[i][1])
        for j in range(len(scores)):
            if alive[j] and _oks_py(keypoints[i], keypoints[j], area, sigmas) > thresh:
                alive[j] = False
    return keep


# ---------------------------------------------------------------------------------------- inputs


def _candidates(n, seed, num_keypoints=17, ties=False):
    """Random poses in 3 clusters (overlaps), their enclosing boxes, scores (tied: 0.1 steps).

    Returns (keypoints (n, K, 3), boxes (n, 4), scores (n,)) float32."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(3, 2, generator=g) * 200
    centre = centres[torch.randint(0, 3, (n,), generator=g)][:, None, :]
    spread = 10 + 60 * torch.rand(n, 1, 1, generator=g)
    xy = centre + spread * (torch.rand(n, num_keypoints, 2, generator=g) - 0.5)
    keypoints = torch.cat([xy, torch.rand(n, num_keypoints, 1, generator=g)], dim=2)
    boxes = torch.cat([xy.amin(1), xy.amax(1)], dim=1)
    scores = torch.rand(n, generator=g)
    if ties:
        scores = (scores * 10).round() / 10
    return keypoints, boxes, scores


def _cases():
    for seed in SEEDS:
        for n in COUNTS:
            yield seed, n, seed % 2 == 1


# ---------------------------------------------------------------------------------------- functions


@pytest.mark.parametrize("decay", ["linear", "gaussian"])
def test_soft_nms_equals_a_python_reference(decay):
    for seed, n, ties in _cases():
        _, boxes, scores = _candidates(n, seed, ties=ties)
        for thresh, sigma, min_score, max_keep in ((0.3, 0.5, 0.001, 100), (0.5, 0.2, 0.2, 5)):
            keep, kept = soft_nms(boxes, scores, decay, thresh, sigma, min_score, max_keep)
            ref_keep, ref_kept = _soft_nms_py(
                boxes.tolist(), scores.tolist(), decay, thresh, sigma, min_score, max_keep
            )
            assert keep.tolist() == ref_keep, (seed, n, thresh)
            assert torch.allclose(kept, torch.tensor(ref_kept, dtype=torch.float32), atol=1e-6)
            assert (kept[:-1] >= kept[1:]).all()  # best first


def test_soft_nms_decays_overlaps_and_keeps_far_boxes():
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 5], [100, 100, 110, 110]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7])
    keep, kept = soft_nms(boxes, scores, "linear", 0.3, 0.5, 0.001, 10)
    assert keep.tolist() == [0, 2, 1]  # IoU 0.5: 0.8 -> 0.4, below the far box's 0.7
    assert torch.allclose(kept, torch.tensor([0.9, 0.7, 0.4]))
    keep, kept = soft_nms(boxes, scores, "gaussian", 0.3, 0.5, 0.001, 10)
    assert torch.allclose(kept[2], torch.tensor(0.8 * math.exp(-0.25 / 0.5)))


def test_oks_nms_equals_a_python_reference():
    for seed, n, ties in _cases():
        k = (17, 14, 5)[seed % 3]
        keypoints, boxes, scores = _candidates(n, seed, num_keypoints=k, ties=ties)
        sigmas = 0.02 + 0.1 * torch.rand(k, generator=torch.Generator().manual_seed(seed))
        for thresh, max_keep in ((0.9, 100), (0.3, 100), (0.5, 3)):
            keep = oks_nms(keypoints, boxes, scores, sigmas, thresh, max_keep)
            ref = _oks_nms_py(
                keypoints[..., :2].tolist(), boxes.tolist(), scores.tolist(), sigmas.tolist(), thresh, max_keep
            )
            assert keep.tolist() == ref, (seed, n, thresh)


def test_keypoint_similarity_is_cocos_formula():
    a = torch.tensor([[[0.0, 0.0], [3.0, 4.0]]])
    reference = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    sigmas = torch.tensor([0.1, 0.2])
    got = keypoint_similarity(a, reference, torch.tensor(100.0), sigmas)
    expected = (1.0 + math.exp(-25.0 / (2 * 100.0 * 0.4**2))) / 2  # d = 5 for the second keypoint
    assert got.item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="2 OKS sigmas for 3 keypoints"):
        oks_nms(torch.zeros(1, 3, 3), torch.zeros(1, 4), torch.ones(1), sigmas, 0.9, 10)


def test_hard_nms_is_torchvisions():
    for seed, n, ties in _cases():
        _, boxes, scores = _candidates(n, seed, ties=ties)
        for max_keep in (100, 2):
            expected = nms(boxes, scores, 0.6)[:max_keep]
            assert torch.equal(hard_nms(boxes, scores, 0.6, max_keep), expected)


@pytest.mark.parametrize("function", ["soft_linear", "soft_gaussian", "oks", "hard"])
def test_degenerate_boxes_stay_finite(function):
    """All keypoints at one point (an untrained model): zero-area boxes, no NaN."""
    keypoints = torch.zeros(4, 17, 3)
    keypoints[2:, :, :2] = 50.0
    boxes, scores = torch.zeros(4, 4), torch.tensor([0.9, 0.8, 0.7, 0.6])
    boxes[2:] = 50.0
    if function == "oks":
        keep = oks_nms(keypoints, boxes, scores, torch.full((17,), 0.05), 0.9, 10)
        assert keep.tolist() == [0, 2]  # identical poses are duplicates, OKS 1
        return
    if function == "hard":
        keep, kept = hard_nms(boxes, scores, 0.6, 10), scores
    else:
        keep, kept = soft_nms(boxes, scores, function[5:], 0.3, 0.5, 0.001, 10)
    assert keep.tolist() == [0, 1, 2, 3] and torch.isfinite(kept).all()


# ---------------------------------------------------------------------------------------- top-k per level


def test_level_topk_on_a_hand_made_layout():
    # Levels 2 x 3, 1 x 2, 1 x 1 (flat indices 0-5, 6-7, 8).
    scores = torch.tensor([0.9, 0.1, 0.8, 0.7, 0.05, 0.3, 0.6, 0.95, 0.02])
    got = level_topk(scores, [(2, 3), (1, 2), (1, 1)], k=2, score_thresh=0.05)
    assert got.tolist() == [7, 0, 2, 6]  # level 0: 0.9, 0.8; level 1: 0.95, 0.6; level 2: 0.02 < thresh
    assert level_topk(scores, [(2, 3), (1, 2), (1, 1)], k=10, score_thresh=0.0).tolist() == [
        7, 0, 2, 3, 6, 5, 1, 4, 8,
    ]  # fmt: skip
    assert level_topk(scores, [(2, 3), (1, 2), (1, 1)], k=1, score_thresh=0.99).numel() == 0


def test_level_topk_equals_a_python_reference():
    sizes = [(8, 10), (4, 5), (2, 3), (1, 2), (1, 1)]
    for seed in SEEDS:
        scores = torch.rand(sum(h * w for h, w in sizes), generator=torch.Generator().manual_seed(seed))
        expected, start = [], 0
        for h, w in sizes:
            level = sorted(range(start, start + h * w), key=lambda i: -scores[i].item())[:7]
            expected += [i for i in level if scores[i] > 0.3]
            start += h * w
        expected.sort(key=lambda i: -scores[i].item())
        assert level_topk(scores, sizes, 7, 0.3).tolist() == expected


# ---------------------------------------------------------------------------------------- predictor


def _predict(model, **overrides):
    model.eval()
    for key, value in overrides.items():
        setattr(model.predictor, key, value)
    with torch.no_grad():
        return model([batch_item(128, 160, 0)])[0]["instances"]


def _candidates_of(model, item):
    """The predictor's candidates of one image before NMS (network input size = image size)."""
    images = model.preprocess_image([item])
    outputs = model.predict_maps(images)
    locs = model.codec.locations(outputs.level_sizes, model.device)
    scores = model.predictor.scores(outputs)[0]
    return model.predictor.candidates(outputs, locs, scores, 0, images.image_sizes[0]), outputs


def test_default_predictor_is_global_topk_then_torchvision_nms():
    """The paper's model: global top PRE_NMS_TOPK_TEST over the threshold, torchvision's NMS."""
    model = tiny_model().eval()
    predictor = model.predictor
    assert predictor.nms_type == "hard" and predictor.pre_nms_topk_per_level == 0
    predictor.score_thresh, predictor.pre_nms_topk, predictor.max_detections = 0.0, 60, 25
    item = batch_item(128, 160, 0)
    with torch.no_grad():
        found, outputs = _candidates_of(model, item)
        out = model([item])[0]["instances"]
        all_scores = predictor.scores(outputs)[0]
    top_scores, top = all_scores.topk(60)
    assert torch.equal(predictor.select_candidates(all_scores, outputs.level_sizes), top[top_scores > 0.0])
    keep = nms(found.boxes, found.scores, predictor.nms_thresh)[:25]
    assert len(out) == len(keep) > 1
    assert torch.equal(out.scores, found.scores[keep])
    assert torch.equal(out.pred_keypoints, found.keypoints[keep])


@pytest.mark.parametrize("nms_type", ["hard", "soft_linear", "soft_gaussian", "oks"])
def test_predictor_end_to_end_for_each_nms_type(nms_type):
    model = tiny_model("MODEL.INSPOSE.NMS_TYPE", nms_type, "MODEL.INSPOSE.SOFT_NMS_MIN_SCORE", 0.0)
    model.eval()
    predictor = model.predictor
    predictor.score_thresh, predictor.pre_nms_topk, predictor.max_detections = 0.0, 40, 15
    item = batch_item(128, 160, 0)
    with torch.no_grad():
        found, _ = _candidates_of(model, item)
        out = model([item])[0]["instances"]
    assert 0 < len(out) <= 15 and out.pred_keypoints.shape[1:] == (17, 3)
    assert (out.scores[:-1] >= out.scores[1:]).all() and torch.isfinite(out.pred_keypoints).all()
    keep, scores = predictor.suppress(found)
    assert torch.equal(out.pred_keypoints, found.keypoints[keep]) and torch.equal(out.scores, scores)
    if nms_type.startswith("soft_"):
        assert (out.scores <= found.scores[keep]).all()  # decayed scores
        assert len(out) == 15  # min score 0: soft-NMS drops nothing
    if nms_type == "oks":
        assert predictor.oks_sigmas == COCO_PERSON.oks_sigmas  # the synthetic dataset's metadata


def test_predictor_top_k_per_level():
    model = tiny_model("MODEL.INSPOSE.PRE_NMS_TOPK_PER_LEVEL", 3, "MODEL.INSPOSE.SCORE_THRESH_TEST", 0.0)
    model.eval()
    with torch.no_grad():
        found, outputs = _candidates_of(model, batch_item(128, 160, 0))
    expected = sum(min(3, h * w) for h, w in outputs.level_sizes)  # P7 is 1 x 2 here
    assert len(found.scores) == expected
    out = _predict(model, nms_thresh=1.0)
    assert len(out) == expected


def test_predictor_with_zero_and_one_candidate():
    for nms_type in ("hard", "soft_linear", "soft_gaussian", "oks"):
        predictor = InsPosePredictor(
            tiny_cfg("MODEL.INSPOSE.NMS_TYPE", nms_type), codec=None, layout=None
        )
        for n in (0, 1):
            keypoints, boxes, scores = _candidates(n, 0)
            result = predictor.select(Candidates(keypoints, scores, boxes), (256, 256))
            assert len(result) == n and result.pred_keypoints.shape == (n, 17, 3)


# ---------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "key, value, requirement",
    [
        ("NMS_TYPE", "soft", "must be one of ('hard', 'soft_linear', 'soft_gaussian', 'oks')"),
        ("SOFT_NMS_SIGMA", 0.0, "must be > 0"),
        ("SOFT_NMS_MIN_SCORE", 1.5, "must lie in [0, 1]"),
        ("OKS_NMS_THRESH", -0.1, "must lie in [0, 1]"),
        ("PRE_NMS_TOPK_PER_LEVEL", -1, "must be >= 0"),
    ],
)
def test_invalid_nms_values_name_the_key(key, value, requirement):
    cfg = tiny_cfg()
    cfg.defrost()
    cfg.MODEL.INSPOSE[key] = value
    with pytest.raises(ConfigError) as error:
        validate_inspose_config(cfg)
    assert str(error.value) == f"MODEL.INSPOSE.{key} = {value!r} is invalid: {requirement}"


def test_oks_nms_without_sigmas_names_the_key_and_datasets():
    cfg = tiny_cfg("MODEL.INSPOSE.NMS_TYPE", "oks", "DATASETS.TEST", "('no_such_dataset',)", "DATASETS.TRAIN", "()")
    with pytest.raises(ConfigError, match=r"MODEL.INSPOSE.NMS_TYPE = 'oks' is invalid: .*'no_such_dataset'"):
        InsPosePredictor(cfg, codec=None, layout=None)


def test_oks_nms_with_the_wrong_sigma_count_names_the_key_and_dataset():
    cfg = tiny_cfg("MODEL.INSPOSE.NMS_TYPE", "oks", "MODEL.INSPOSE.NUM_KEYPOINTS", 14)
    with pytest.raises(ConfigError) as error:
        InsPosePredictor(cfg, codec=None, layout=None)
    message = str(error.value)
    assert message.startswith("MODEL.INSPOSE.NMS_TYPE = 'oks' is invalid: ")
    assert "'synthetic_keypoints_val' has 17 OKS sigmas" in message and "NUM_KEYPOINTS is 14" in message


@pytest.mark.parametrize("nms_type", ["soft_linear", "soft_gaussian", "oks"])
def test_export_refuses_nms_types_the_graph_lacks(nms_type):
    cfg = tiny_cfg("MODEL.INSPOSE.NMS_TYPE", nms_type)
    with pytest.raises(ExportError, match=f"MODEL.INSPOSE.NMS_TYPE '{nms_type}'"):
        check_exportable(cfg, dynamic=False)
    check_exportable(tiny_cfg("MODEL.INSPOSE.PRE_NMS_TOPK_PER_LEVEL", 1000), dynamic=True)


@pytest.mark.slow
def test_top_k_per_level_exports_at_any_size(tmp_path):
    """torch.export with dynamic sizes and its ONNX translation equal eager at another size."""
    import onnxruntime

    from inspose.deploy.export import example_inputs, export_program, save_onnx

    model = tiny_model("MODEL.INSPOSE.PRE_NMS_TOPK_PER_LEVEL", 20, "MODEL.INSPOSE.SCORE_THRESH_TEST", 0.0,
                       "MODEL.INSPOSE.NMS_THRESH_TEST", 1.0, "TEST.DETECTIONS_PER_IMAGE", 200).eval()  # fmt: skip
    program = export_program(model, (160, 192), dynamic=True)
    path = str(tmp_path / "m.onnx")
    save_onnx(program, path, {"test": True})
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    image, size = example_inputs((224, 160))
    with torch.no_grad():
        eager = model([{"image": image, "height": 224, "width": 160}])[0]["instances"]
    exported = program.module()(image, size)
    onnx_out = session.run(None, {"image": image.numpy(), "original_size": size.numpy()})
    n = len(eager)
    assert int(exported[3]) == int(onnx_out[3]) == n >= 20 * 3  # NMS at IoU 1 keeps them all
    assert torch.allclose(exported[1][:n], eager.scores, atol=1e-5)
    assert torch.allclose(torch.from_numpy(onnx_out[1][:n]), eager.scores, atol=1e-5)
