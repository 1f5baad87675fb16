"""InsPose: instance-aware networks for single-stage multi-person pose estimation, on detectron2.

Importing the package registers everything with detectron2: the ``InsPose`` meta-architecture, its
backbones, and the datasets it adds (COCO test-dev, the synthetic dataset, OKS sigmas of the built-in
COCO keypoint datasets). Where torch or detectron2 is not installed (a deployment machine), nothing
is registered and only ``inspose.deploy.runtime`` (numpy, Pillow, onnxruntime) is usable.
"""
from importlib.util import find_spec

if find_spec("torch") is not None and find_spec("detectron2") is not None:
    from . import compat  # noqa: F401  (must run before detectron2 is imported)
    from . import data, modeling  # noqa: F401  (registers datasets, meta-architecture, backbones)
    from .config import add_inspose_config, get_inspose_cfg, load_config  # noqa: F401

__version__ = "0.1.0"
