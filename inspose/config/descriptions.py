"""``DATASETS.DESCRIPTIONS``: resolving the description paths of a config and registering them.

A path written in a config file is relative to the file of the ``_BASE_`` chain that sets the key
(``_file_setting``); one given as a command-line override is relative to the working directory. The
paths are stored back as absolute paths, so the config that a run dumps (``config.yaml``) and the
subprocesses of a sweep see the same files. ``load_config`` calls both steps.
"""
import os
from typing import Callable, Optional

from detectron2.config import CfgNode as CN

__all__ = ["absolute_description_paths", "register_config_descriptions"]

KEY = "DATASETS.DESCRIPTIONS"


def absolute_description_paths(cfg: CN, folder: Optional[str]) -> None:
    """Make every relative path of DATASETS.DESCRIPTIONS absolute, from ``folder`` (or the
    working directory when None), in place."""
    base = os.path.abspath(folder) if folder else os.getcwd()
    paths = [os.path.expanduser(str(p)) for p in cfg.DATASETS.DESCRIPTIONS]
    cfg.DATASETS.DESCRIPTIONS = [os.path.normpath(os.path.join(base, p)) for p in paths]


def setting_folder(config_file: str, file_setting: Callable[[str, str], Optional[str]]) -> str:
    """The folder of the file of ``config_file``'s chain that sets DATASETS.DESCRIPTIONS."""
    origin = file_setting(config_file, KEY) or config_file
    return os.path.dirname(os.path.abspath(origin))


def register_config_descriptions(cfg: CN) -> None:
    """Register the datasets of every description of DATASETS.DESCRIPTIONS.

    Only the descriptions are read: a split's files are looked for when it is first loaded.

    Raises:
        DescriptionError: naming the description file and field (a ``ConfigError``).
    """
    if not cfg.DATASETS.DESCRIPTIONS:
        return
    from ..data.description_registry import register_description_files  # the data package is heavy

    register_description_files(cfg.DATASETS.DESCRIPTIONS)
