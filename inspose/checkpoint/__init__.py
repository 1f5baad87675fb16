"""Checkpoint loading: detectron2 formats plus torchvision ResNet and official HRNet ImageNet files."""
from .checkpointer import InsPoseCheckpointer  # noqa: F401
from .convert import (  # noqa: F401
    convert_hrnet,
    convert_torchvision_resnet,
    detect_format,
)
