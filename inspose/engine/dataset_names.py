"""Dataset names of a config that nothing registered: one clear error before any model is built.

Without this check an unknown ``DATASETS.TRAIN`` / ``DATASETS.TEST`` name fails hundreds of log lines
later with an unrelated metadata error.
"""
import difflib
from typing import Iterable, List

from detectron2.data import DatasetCatalog

from ..config import ConfigError

__all__ = ["UnknownDatasetError", "check_datasets_registered", "unknown_dataset_message"]

HOW_TO_REGISTER = (
    "register it with a dataset description file (DATASETS.DESCRIPTIONS) or in Python with "
    "inspose.data.register_keypoint_dataset (see datasets/README.md)"
)


class UnknownDatasetError(ConfigError):
    """A dataset name that is not registered with detectron2's ``DatasetCatalog``."""


def unknown_dataset_message(name: str, key: str, registered: Iterable[str]) -> str:
    """One line: the unknown ``name`` given by ``key``, its close matches, how to register it."""
    close = difflib.get_close_matches(name, list(registered), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return f"{key}: dataset {name!r} is not registered.{hint} To use your own data, {HOW_TO_REGISTER}."


def check_datasets_registered(cfg, extra: Iterable[str] = ()) -> None:
    """Raise ``UnknownDatasetError`` for the first name of DATASETS.TRAIN, DATASETS.TEST or
    ``extra`` (e.g. a tool's ``--dataset``) that is not registered."""
    registered: List[str] = DatasetCatalog.list()
    named = [("DATASETS.TRAIN", n) for n in cfg.DATASETS.TRAIN]
    named += [("DATASETS.TEST", n) for n in cfg.DATASETS.TEST] + [("--dataset", n) for n in extra]
    for key, name in named:
        if name not in registered:
            raise UnknownDatasetError(unknown_dataset_message(name, key, registered))
