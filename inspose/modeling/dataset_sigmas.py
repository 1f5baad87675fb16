"""The per-keypoint OKS sigmas OKS-NMS needs, read from the config's datasets' metadata.

The model sees no dataset; ``InsPosePredictor.from_config`` asks for the sigmas of the first dataset
of DATASETS.TEST, then DATASETS.TRAIN, that has ``keypoint_oks_sigmas`` (``KeypointSpec``), only when
``MODEL.INSPOSE.NMS_TYPE`` is "oks".
"""
from typing import Tuple

from detectron2.data import MetadataCatalog

from ..config import ConfigError

__all__ = ["oks_sigmas_from_config"]

KEY = "MODEL.INSPOSE.NMS_TYPE"


def oks_sigmas_from_config(cfg) -> Tuple[float, ...]:
    """(K,) OKS sigmas of the config's first dataset (test, then train) whose metadata has them.

    Raises:
        ConfigError: naming NMS_TYPE and the datasets, when none has sigmas or their count is not
            MODEL.INSPOSE.NUM_KEYPOINTS.
    """
    names = list(cfg.DATASETS.TEST) + list(cfg.DATASETS.TRAIN)
    registered = set(MetadataCatalog.list())
    k = cfg.MODEL.INSPOSE.NUM_KEYPOINTS
    for name in (n for n in names if n in registered):
        sigmas = getattr(MetadataCatalog.get(name), "keypoint_oks_sigmas", None)
        if sigmas is None:
            continue
        if len(sigmas) != k:
            raise ConfigError(
                f"{KEY} = 'oks' is invalid: dataset {name!r} has {len(sigmas)} OKS sigmas "
                f"(keypoint_oks_sigmas) but MODEL.INSPOSE.NUM_KEYPOINTS is {k}"
            )
        return tuple(float(s) for s in sigmas)
    raise ConfigError(
        f"{KEY} = 'oks' is invalid: OKS-NMS needs per-keypoint OKS sigmas, and no dataset of "
        f"DATASETS.TEST / DATASETS.TRAIN {tuple(names)} has keypoint_oks_sigmas in its metadata "
        "(register it with a KeypointSpec, or use another NMS_TYPE)"
    )
