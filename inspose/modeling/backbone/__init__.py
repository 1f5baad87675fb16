"""InsPose backbones; importing this package registers them in detectron2's BACKBONE_REGISTRY."""
from .hrnet import HRNet, build_inspose_hrnet_backbone  # noqa: F401
from .hrnet_config import add_hrnet_config  # noqa: F401
from .hrnet_fpn import build_inspose_hrnet_fpn_backbone  # noqa: F401
from .resnet_fpn import build_inspose_resnet_fpn_backbone  # noqa: F401
