"""Object keypoint similarity (COCO's OKS) and the per-keypoint sigmas it needs.

OKS = mean over labelled keypoints k of exp(-d_k^2 / (2 (area + eps) (2 sigma_k)^2)). Varifocal
targets (``quality_targets.py``) and OKS-NMS (``nms.py``) compute it with ``oks_from_squared_distances``.
The model sees no dataset: the sigmas come from the metadata (``keypoint_oks_sigmas``,
``KeypointSpec``) of the config's datasets, with a ``ConfigError`` naming the option that needs
them and the dataset when they are missing or not NUM_KEYPOINTS of them.
"""
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from detectron2.data import MetadataCatalog

from ..config.errors import ConfigError

__all__ = ["COCO_AREA_EPS", "oks_from_squared_distances", "dataset_oks_sigmas", "oks_sigmas_from_config"]

COCO_AREA_EPS = float(np.spacing(1))  # pycocotools' computeOks


def oks_from_squared_distances(
    distance_sq: torch.Tensor,
    labelled: Optional[torch.Tensor],
    areas: torch.Tensor,
    sigmas: torch.Tensor,
    eps: float,
) -> torch.Tensor:
    """Mean over labelled keypoints of exp(-d^2 / (2 (area + eps) (2 sigma)^2)).

    Args:
        distance_sq: (N, K) squared distances; labelled: (N, K) bool, or None for every keypoint;
            areas: (N,); sigmas: (K,).
    Returns:
        (N,) scores (0 for a row without labelled keypoints).
    """
    variances = (2 * sigmas) ** 2
    similarity = torch.exp(-distance_sq / variances / (areas[:, None] + eps) / 2)
    if labelled is None:
        return similarity.mean(dim=1)
    similarity = similarity * labelled
    return similarity.sum(dim=1) / labelled.sum(dim=1).clamp(min=1)


def _metadata_sigmas(name: str) -> Optional[Tuple[float, ...]]:
    sigmas = getattr(MetadataCatalog.get(name), "keypoint_oks_sigmas", None)
    return None if sigmas is None else tuple(float(s) for s in sigmas)


def _check_count(sigmas: Tuple[float, ...], num_keypoints: int, need: str, name: str, what: str) -> None:
    """ConfigError ``need: dataset 'name' has n <what> but ... NUM_KEYPOINTS is K`` on a wrong count."""
    if len(sigmas) != num_keypoints:
        raise ConfigError(
            f"{need}: dataset {name!r} has {len(sigmas)} {what} but "
            f"MODEL.INSPOSE.NUM_KEYPOINTS is {num_keypoints}"
        )


def dataset_oks_sigmas(dataset_names: Sequence[str], num_keypoints: int) -> Tuple[float, ...]:
    """The K OKS sigmas of the training datasets, which must all have the same ones.

    Raises:
        ConfigError: naming MODEL.INSPOSE.CLS_LOSS and the dataset, when DATASETS.TRAIN is
            empty, a dataset has no sigmas or not NUM_KEYPOINTS of them, or two datasets differ.
    """
    need = "MODEL.INSPOSE.CLS_LOSS = 'varifocal' needs the OKS sigmas of DATASETS.TRAIN"
    if not dataset_names:
        raise ConfigError(f"{need}, which is empty")
    found = None
    for name in dataset_names:
        sigmas = _metadata_sigmas(name)
        if sigmas is None:
            raise ConfigError(
                f"{need}: dataset {name!r} has no keypoint_oks_sigmas in its metadata (register it "
                "with inspose.data.register_keypoint_dataset or a dataset description)"
            )
        _check_count(sigmas, num_keypoints, need, name, "keypoint_oks_sigmas")
        if found is not None and sigmas != found:
            raise ConfigError(f"{need}: dataset {name!r} has other sigmas than {dataset_names[0]!r}")
        found = sigmas
    return found


def oks_sigmas_from_config(cfg) -> Tuple[float, ...]:
    """(K,) OKS sigmas for OKS-NMS: those of the config's first dataset (DATASETS.TEST, then
    DATASETS.TRAIN) whose metadata has them.

    Raises:
        ConfigError: naming NMS_TYPE and the datasets, when none has sigmas or their count is not
            MODEL.INSPOSE.NUM_KEYPOINTS.
    """
    need = "MODEL.INSPOSE.NMS_TYPE = 'oks' is invalid"
    names = list(cfg.DATASETS.TEST) + list(cfg.DATASETS.TRAIN)
    registered = set(MetadataCatalog.list())
    for name in (n for n in names if n in registered):
        sigmas = _metadata_sigmas(name)
        if sigmas is not None:
            _check_count(sigmas, cfg.MODEL.INSPOSE.NUM_KEYPOINTS, need, name, "OKS sigmas (keypoint_oks_sigmas)")
            return sigmas
    raise ConfigError(
        f"{need}: OKS-NMS needs per-keypoint OKS sigmas, and no dataset of "
        f"DATASETS.TEST / DATASETS.TRAIN {tuple(names)} has keypoint_oks_sigmas in its metadata "
        "(register it with a KeypointSpec, or use another NMS_TYPE)"
    )
