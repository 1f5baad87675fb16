"""Small InsPose models and synthetic inputs for the CPU tests."""
import torch
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances, Keypoints

from inspose.config import load_config

TINY_CONFIG = "configs/quick_schedules/InsPose_R_18_tiny_cpu.yaml"


def tiny_cfg(*opts):
    from .conftest import REPO_ROOT

    return load_config(str(REPO_ROOT / TINY_CONFIG), [str(o) for o in opts])


def tiny_model(*opts, seed=0):
    torch.manual_seed(seed)
    return build_model(tiny_cfg(*opts))


def person_instances(height, width, num_persons, num_keypoints=17, seed=0):
    """Instances of persons with random, fully labelled keypoints inside the image."""
    g = torch.Generator().manual_seed(seed)
    instances = Instances((height, width))
    centre = torch.rand(num_persons, 1, 2, generator=g) * torch.tensor([width, height]) * 0.6
    centre += torch.tensor([width, height]) * 0.2
    spread = torch.rand(num_persons, num_keypoints, 2, generator=g) - 0.5
    xy = centre + spread * torch.tensor([width, height]) * 0.3
    keypoints = torch.cat([xy, torch.full((num_persons, num_keypoints, 1), 2.0)], dim=2)
    instances.gt_keypoints = Keypoints(keypoints)
    instances.gt_boxes = Boxes(torch.cat([xy.amin(1), xy.amax(1)], dim=1))
    instances.gt_classes = torch.zeros(num_persons, dtype=torch.long)
    return instances


def batch_item(height, width, num_persons, num_keypoints=17, seed=0, crowd=None):
    g = torch.Generator().manual_seed(seed + 1000)
    item = {
        "image": torch.randint(0, 256, (3, height, width), generator=g, dtype=torch.uint8),
        "instances": person_instances(height, width, num_persons, num_keypoints, seed),
        "height": height,
        "width": width,
    }
    if crowd is not None:
        item["crowd_boxes"] = Boxes(torch.tensor(crowd, dtype=torch.float32).reshape(-1, 4))
    return item


def runs_at_inference(model, module) -> bool:
    """Whether ``module`` (a submodule of ``model``) runs when the eval-mode model predicts one
    96 x 128 image without persons."""
    calls = []
    handle = module.register_forward_hook(lambda *a: calls.append(1))
    try:
        with torch.no_grad():
            model.eval()([batch_item(96, 128, 0)])
    finally:
        handle.remove()
    return bool(calls)


def register_coco_person(json_file, image_root, prefix: str = "test") -> str:
    """Register a COCO-person-keypoint dataset under a fresh name; returns the name."""
    import uuid

    from inspose.data import COCO_PERSON, register_keypoint_dataset

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    register_keypoint_dataset(name, str(json_file), str(image_root), COCO_PERSON)
    return name
