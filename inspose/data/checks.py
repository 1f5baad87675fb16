"""Checks that the datasets named in a config fit the model the config builds."""
from detectron2.data import MetadataCatalog

from .mapper import KeypointCountError

__all__ = ["check_datasets_match_config"]


def check_datasets_match_config(cfg, dataset_names=None) -> None:
    """Raise ``KeypointCountError`` when a dataset's K differs from MODEL.INSPOSE.NUM_KEYPOINTS.

    Args:
        dataset_names: the datasets to check; default DATASETS.TRAIN + DATASETS.TEST.
    """
    names = dataset_names or list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST)
    expected = cfg.MODEL.INSPOSE.NUM_KEYPOINTS
    for name in names:
        keypoint_names = getattr(MetadataCatalog.get(name), "keypoint_names", None)
        if keypoint_names is None:
            raise KeypointCountError(
                f"dataset {name!r} has no keypoint_names in its metadata: register it with "
                "inspose.data.register_keypoint_dataset (or detectron2's keypoint metadata keys)"
            )
        if len(keypoint_names) != expected:
            raise KeypointCountError(
                f"dataset {name!r} has {len(keypoint_names)} keypoints ({', '.join(keypoint_names)}) "
                f"but MODEL.INSPOSE.NUM_KEYPOINTS is {expected}: set MODEL.INSPOSE.NUM_KEYPOINTS "
                f"{len(keypoint_names)}"
            )
