"""Which keypoints drive the star deformable convs: ``MODEL.INSPOSE.STAR_KEYPOINTS`` by name.

The names are looked up in the ``keypoint_names`` of the config's datasets' metadata when the model
is built, so the 9 taps follow the dataset's keypoint order (COCO, CrowdPose, a dataset of one's
own) and nothing assumes 17 keypoints.
"""
from typing import List, Sequence, Tuple

from detectron2.data import MetadataCatalog

from ...config.errors import ConfigError
from .star_conv import KERNEL_TAPS

__all__ = ["star_keypoint_indices", "indices_of_names"]

KEY = "MODEL.INSPOSE.STAR_KEYPOINTS"


def indices_of_names(wanted: Sequence[str], names: Sequence[str], dataset: str) -> List[int]:
    """The index in ``names`` (dataset ``dataset``'s keypoints) of each of the 9 ``wanted`` names."""
    wanted = list(wanted)
    if len(wanted) != KERNEL_TAPS:
        raise ConfigError(
            f"{KEY} = {wanted!r} is invalid: must name exactly {KERNEL_TAPS} keypoints (one per tap "
            f"of the 3x3 kernel), got {len(wanted)}"
        )
    missing = [name for name in wanted if name not in names]
    if missing:
        raise ConfigError(
            f"{KEY} = {wanted!r} is invalid: {', '.join(map(repr, missing))} not among the keypoints "
            f"of dataset {dataset!r} ({', '.join(names)}); name {KERNEL_TAPS} of those"
        )
    return [list(names).index(name) for name in wanted]


def _datasets_with_names(cfg) -> List[Tuple[str, Sequence[str]]]:
    """(name, keypoint_names) of the config's train and test datasets whose metadata has them."""
    found = []
    for dataset in list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST):
        names = getattr(MetadataCatalog.get(dataset), "keypoint_names", None)
        if names is not None:
            found.append((dataset, names))
    return found


def star_keypoint_indices(cfg) -> List[int]:
    """The 9 keypoint indices of STAR_KEYPOINTS in the config's datasets (the same in each).

    Raises:
        ConfigError: a wrong count, a name a dataset lacks, datasets disagreeing on the indices,
            or no dataset with ``keypoint_names`` to look the names up in.
    """
    wanted = list(cfg.MODEL.INSPOSE.STAR_KEYPOINTS)
    datasets = _datasets_with_names(cfg)
    if not datasets:
        listed = list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST)
        raise ConfigError(
            f"{KEY} needs the keypoint names of a dataset (MODEL.INSPOSE.STAR_DEFORM_ON True), but "
            f"none of DATASETS.TRAIN / TEST {listed} is registered with keypoint_names"
        )
    indices = {dataset: indices_of_names(wanted, names, dataset) for dataset, names in datasets}
    if len({tuple(v) for v in indices.values()}) > 1:
        raise ConfigError(f"{KEY} = {wanted!r} is invalid: the datasets order these keypoints differently: {indices}")
    return next(iter(indices.values()))
