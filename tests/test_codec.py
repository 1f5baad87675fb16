"""Unit tests of the codec: locations, assignment, budget, targets and decoding."""
import math

import torch

from inspose.config import get_inspose_cfg
from inspose.modeling.codec import InsPoseCodec, compute_locations, pseudo_boxes_from_keypoints
from inspose.modeling.codec.budget import sample_positives
from inspose.modeling.codec.keypoint_targets import disk_offset_targets, gaussian_heatmaps


def _codec(**overrides):
    cfg = get_inspose_cfg()
    for key, value in overrides.items():
        cfg.MODEL.INSPOSE[key] = value
    return InsPoseCodec.from_config(cfg)


def _locs(codec, height=256, width=256):
    sizes = [(math.ceil(height / s), math.ceil(width / s)) for s in codec.fpn_strides]
    return codec.locations(sizes, torch.device("cpu"))


def _person(x0, y0, x1, y1, k=17):
    """Keypoints spread on the box diagonal, all labelled."""
    t = torch.linspace(0, 1, k)
    return torch.stack([x0 + t * (x1 - x0), y0 + t * (y1 - y0), torch.full((k,), 2.0)], dim=1)


def test_locations_are_cell_centres():
    locs = compute_locations([(2, 3), (1, 2)], [8, 16], torch.device("cpu"))
    assert locs.points[:3].tolist() == [[4, 4], [12, 4], [20, 4]]
    assert locs.points[6:].tolist() == [[8, 8], [24, 8]]
    assert locs.levels.tolist() == [0] * 6 + [1] * 2
    assert locs.level_offsets() == [0, 6]


def test_pseudo_box_uses_labelled_keypoints_only():
    kps = torch.tensor([[[10.0, 20.0, 2], [30.0, 5.0, 1], [100.0, 100.0, 0]]])
    assert pseudo_boxes_from_keypoints(kps).tolist() == [[10.0, 5.0, 30.0, 20.0]]


def test_small_person_is_assigned_to_p3_centre_only():
    codec = _codec()
    locs = _locs(codec)
    kps = _person(100, 100, 140, 140)[None]
    a = codec.assign(locs, kps, torch.tensor([[100.0, 100.0, 140.0, 140.0]]))
    positives = (a.owner == 0).nonzero().squeeze(1)
    assert positives.numel() > 0
    assert (locs.levels[positives] == 0).all()
    centre = torch.tensor([120.0, 120.0])
    assert ((locs.points[positives] - centre).abs() <= 1.5 * 8).all()


def test_large_person_goes_to_a_coarser_level():
    codec = _codec()
    locs = _locs(codec, 512, 512)
    kps = _person(20, 20, 420, 420)[None]
    a = codec.assign(locs, kps, torch.tensor([[20.0, 20.0, 420.0, 420.0]]))
    levels = locs.levels[a.owner == 0].unique().tolist()
    assert levels and min(levels) >= 2  # max(l, t, r, b) ~ 200 px: P5


def test_overlap_goes_to_the_smaller_person():
    codec = _codec()
    locs = _locs(codec)
    small = _person(110, 110, 130, 130)
    big = _person(90, 90, 150, 150)
    boxes = torch.tensor([[90.0, 90.0, 150.0, 150.0], [110.0, 110.0, 130.0, 130.0]])
    a = codec.assign(locs, torch.stack([big, small]), boxes)
    centre = ((locs.points - torch.tensor([120.0, 120.0])).abs().sum(1) < 8) & (locs.levels == 0)
    assert (a.owner[centre] == 1).all()


def test_degenerate_person_is_grown_not_dropped():
    codec = _codec()
    locs = _locs(codec)
    kps = torch.zeros(1, 17, 3)
    kps[0, 0] = torch.tensor([77.0, 61.0, 2.0])  # one labelled keypoint: a zero-size pseudo-box
    a = codec.assign(locs, kps, torch.tensor([[70.0, 50.0, 90.0, 80.0]]))
    assert (a.owner == 0).any()


def test_crowd_and_unannotated_persons_are_ignore_regions():
    codec = _codec()
    locs = _locs(codec)
    kps = torch.stack([_person(20, 20, 60, 60), torch.zeros(17, 3)])
    boxes = torch.tensor([[20.0, 20.0, 60.0, 60.0], [150.0, 150.0, 200.0, 200.0]])
    crowd = torch.tensor([[0.0, 180.0, 60.0, 250.0]])
    a = codec.assign(locs, kps, boxes, crowd)
    assert not (a.owner == 1).any()  # no keypoints: never a positive (default "ignore")
    in_unannotated = (locs.points >= 150).all(1) & (locs.points <= 200).all(1)
    in_crowd = (locs.points[:, 0] <= 60) & (locs.points[:, 1] >= 180) & (locs.points[:, 1] <= 250)
    assert a.ignore[in_unannotated].all() and a.ignore[in_crowd].all()
    assert not a.ignore[a.owner >= 0].any()
    positive_mode = _codec(NO_KEYPOINT_PERSONS="positive").assign(locs, kps, boxes, crowd)
    assert (positive_mode.owner == 1).any()
    assert positive_mode.trains_keypoints.tolist() == [True, False]


def test_budget_takes_every_person_round_robin():
    owner = torch.full((100,), -1)
    owner[:40] = 0  # a big person with 40 locations
    owner[50:53] = 1
    owner[60:62] = 2
    torch.manual_seed(0)
    kept = sample_positives(owner, budget=9)
    counts = torch.bincount(owner[kept], minlength=3).tolist()
    assert len(kept) == 9 and counts == [4, 3, 2]
    assert sample_positives(owner, budget=0).numel() == 45
    assert sample_positives(torch.full((5,), -1), budget=3).numel() == 0


def test_keypoint_cells_and_decode_are_inverse():
    codec = _codec()
    kps = torch.tensor([[[13.0, 7.0, 2.0], [100.5, 33.2, 1.0], [0.0, 0.0, 0.0]]])
    cells, labelled = codec.keypoint_cells(kps, (10, 20))
    assert cells.tolist() == [[0 * 20 + 1, 4 * 20 + 12, 0]]
    assert labelled.tolist() == [[True, True, False]]
    centres = codec.decode_cells(cells, 20)
    assert centres[0, :2].tolist() == [[12.0, 4.0], [100.0, 36.0]]
    exact = (kps[..., :2] / 8 - torch.stack([cells % 20, cells // 20], -1)).float()
    assert torch.allclose(codec.decode_cells(cells, 20, exact)[0, :2], kps[0, :2, :2])


def test_disk_offsets_point_to_the_nearest_keypoint():
    kps = torch.zeros(2, 1, 3)
    kps[0, 0] = torch.tensor([20.0, 20.0, 2.0])
    kps[1, 0] = torch.tensor([44.0, 20.0, 2.0])
    disk = disk_offset_targets(kps, torch.zeros(2, dtype=torch.long), 8.0, (8, 8), radius=2.0)
    dense = disk.dense(1, 1, (8, 8))
    assert disk.index.unique().numel() == disk.index.numel()
    # cell (row 2, col 3) has centre (28, 20): 8 px from the first, 16 px from the second.
    assert torch.allclose(dense[0, :, 2, 3], torch.tensor([20 / 8 - 3, 20 / 8 - 2]))
    assert torch.allclose(dense[0, :, 2, 4], torch.tensor([44 / 8 - 4, 20 / 8 - 2]))
    assert dense[0, :, 7, 7].abs().sum() == 0


def test_heatmap_peak_is_one_and_decays():
    kps = torch.tensor([[[20.0, 20.0, 2.0], [0.0, 0.0, 0.0]]])
    heat = gaussian_heatmaps(kps, torch.zeros(1, dtype=torch.long), 1, 8.0, (6, 6), sigma=1.0)
    assert heat.shape == (1, 2, 6, 6)
    assert heat[0, 0, 2, 2] == 1 and (heat[0, 0] == 1).sum() == 1
    assert 0 < heat[0, 0, 2, 4] < heat[0, 0, 2, 3] < 1
    assert heat[0, 1].sum() == 0
