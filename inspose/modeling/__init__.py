"""InsPose's model; importing it registers the meta-architecture and backbones with detectron2."""
from . import backbone  # noqa: F401  (registers the backbones with detectron2)
from .codec import InsPoseCodec
from .kpnet import KPNetLayout, kpnet_forward, kpnet_reference
from .meta_arch import InsPose

__all__ = ["InsPose", "InsPoseCodec", "KPNetLayout", "kpnet_forward", "kpnet_reference"]
