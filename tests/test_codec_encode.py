"""``InsPoseCodec.encode`` on a batch and ``decode`` / ``decode_boxes`` as its inverse."""
import math

import torch
from detectron2.structures import Boxes, Instances, Keypoints

from inspose.config import get_inspose_cfg
from inspose.modeling.codec import InsPoseCodec


def _codec(**overrides):
    cfg = get_inspose_cfg()
    for key, value in overrides.items():
        cfg.MODEL.INSPOSE[key] = value
    return InsPoseCodec.from_config(cfg)


def _locs(codec, height, width):
    sizes = [(math.ceil(height / s), math.ceil(width / s)) for s in codec.fpn_strides]
    return codec.locations(sizes, torch.device("cpu"))


def _instances(size, keypoints, boxes):
    inst = Instances(size)
    inst.gt_keypoints = Keypoints(torch.tensor(keypoints, dtype=torch.float32).reshape(len(boxes), 17, 3))
    inst.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    return inst


def _person(x0, y0, x1, y1, k=17, visible=2.0):
    t = torch.linspace(0, 1, k)
    return torch.stack([x0 + t * (x1 - x0), y0 + t * (y1 - y0), torch.full((k,), visible)], 1).tolist()


def _batch():
    """Image 0: two persons and a crowd box; image 1: one keypoint-less person; image 2: empty."""
    size = (256, 320)
    first = _instances(size, [_person(20, 30, 100, 150), _person(150, 40, 290, 230)],
                       [[20, 30, 100, 150], [150, 40, 290, 230]])  # fmt: skip
    second = _instances(size, [_person(40, 40, 120, 200, visible=0.0)], [[40, 40, 120, 200]])
    third = _instances(size, [], [])
    crowd = [torch.tensor([[200.0, 200.0, 300.0, 250.0]]), None, None]
    return size, [first, second, third], crowd


def test_encode_matches_the_per_image_steps():
    codec = _codec()
    size, instances, crowd = _batch()
    locs = _locs(codec, *size)
    targets = codec.encode(locs, instances, crowd)
    assert targets.labels.shape == targets.valid.shape == (3, locs.points.shape[0])
    for b, (inst, crowd_b) in enumerate(zip(instances, crowd)):
        a = codec.assign(locs, inst.gt_keypoints.tensor, inst.gt_boxes.tensor, crowd_b)
        assert torch.equal(targets.labels[b], (a.owner >= 0).float())
        assert torch.equal(targets.valid[b], ~a.ignore)
        rows = targets.kp_image == b
        assert torch.equal(a.owner[targets.kp_location[rows]], targets.kp_instance[rows])
        assert torch.equal(targets.kp_keypoints[rows], inst.gt_keypoints.tensor[targets.kp_instance[rows]])
        assert int((targets.pos_image == b).sum()) == int((a.owner >= 0).sum())
    # the keypoint-less person and the empty image train no KP-Net
    assert set(targets.kp_image.tolist()) == {0} and set(targets.kp_instance.tolist()) == {0, 1}
    assert targets.valid[1].sum() < targets.valid.shape[1]  # its box is an ignore region
    map_size = codec.output_map_size(locs.sizes[0])
    cells, labelled = codec.keypoint_cells(targets.kp_keypoints, map_size)
    assert torch.equal(targets.kp_cells, cells) and torch.equal(targets.kp_labelled, labelled)


def test_encode_heatmaps_offsets_and_crowd_weight():
    codec = _codec()
    size, instances, crowd = _batch()
    locs = _locs(codec, *size)
    targets = codec.encode(locs, instances, crowd)
    p3 = locs.sizes[0]
    assert targets.heatmaps.shape == (3, 17, *p3)
    assert (targets.heatmaps[0] == 1).sum() > 0 and targets.heatmaps[1:].sum() == 0
    weight = targets.heatmap_weight
    assert weight.shape == (3, 1, *p3)
    # P3 cell (row 27, col 31) has centre (252, 220): inside the crowd box of image 0 only
    assert weight[0, 0, 27, 31] == 0 and weight[0, 0, 0, 0] == 1 and weight[1:].min() == 1
    assert targets.disk_offsets.offset.shape[1] == 2 and targets.disk_offsets.index.numel() > 0
    plain = _codec(DISK_OFFSET_ON=False, HEATMAP_ON=False).encode(locs, instances, crowd)
    assert plain.disk_offsets is None and plain.heatmaps is None and plain.heatmap_weight is None


def test_decode_inverts_encode_with_the_ideal_offset_map():
    codec = _codec()
    size, instances, crowd = _batch()
    locs = _locs(codec, *size)
    targets = codec.encode(locs, instances, crowd)
    map_size = codec.output_map_size(locs.sizes[0])
    offset_map = targets.disk_offsets.dense(3, 17, map_size)
    xy = codec.decode(targets.kp_cells, map_size, offset_map, targets.kp_image)
    assert torch.allclose(xy, targets.kp_keypoints[..., :2], atol=1e-4)
    centres = codec.decode(targets.kp_cells, map_size)
    assert (centres - targets.kp_keypoints[..., :2]).abs().max() <= codec.output_stride / 2


def test_decode_boxes_inverts_box_distances():
    codec = _codec()
    size, instances, crowd = _batch()
    locs = _locs(codec, *size)
    targets = codec.encode(locs, instances, crowd)
    points = locs.points[targets.pos_location]
    boxes = targets.pos_boxes
    distances = torch.cat([points - boxes[:, :2], boxes[:, 2:] - points], dim=1)
    assert (distances >= 0).all()  # positives lie inside their person's box
    assert torch.allclose(codec.decode_boxes(points, distances), boxes)


def test_relative_coordinates_use_each_locations_level_norm():
    codec = _codec()
    locs = _locs(codec, 256, 320)
    picked = torch.tensor([0, locs.level_offsets()[2]])  # one P3 and one P5 location
    rel_x, rel_y = codec.relative_coordinates(locs, picked, (32, 40))
    assert rel_x.shape == (2, 40) and rel_y.shape == (2, 32)
    # cell 0's centre is 4 px from both locations' x (4 and 16): P3 norm 64, P5 norm 256
    assert torch.allclose(rel_x[:, 0], torch.tensor([0.0, (4.0 - 16.0) / 256.0]))
