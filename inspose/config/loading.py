"""Building an InsPose config from a YAML file and ``KEY VALUE`` overrides, with clear errors.

``load_config(path, opts)`` merges the file (and its ``_BASE_`` chain) and the overrides into
``get_inspose_cfg()``. A key that does not exist is reported with the file of the chain (or the
override) that sets it and its close matches; a value of the wrong type names its key. The dataset
descriptions of ``DATASETS.DESCRIPTIONS`` are registered right after merging (``descriptions.py``),
so every tool that loads a config sees their datasets.
"""
import difflib
import os
from typing import List, Optional, Sequence

import yaml
from detectron2.config import CfgNode as CN

from .defaults import get_inspose_cfg
from .descriptions import absolute_description_paths, register_config_descriptions, setting_folder
from .errors import ConfigError

__all__ = ["all_keys", "load_config"]


def all_keys(node: CN, prefix: str = "") -> List[str]:
    """Every key of ``node`` and its sub-nodes, dotted (``MODEL.INSPOSE.KPNET_DEPTH``)."""
    keys = []
    for name, value in node.items():
        full = f"{prefix}{name}"
        keys.append(full)
        if isinstance(value, CN):
            keys.extend(all_keys(value, full + "."))
    return keys


_UNKNOWN_KEY_MARKERS = ("Non-existent config key: ", "Non-existent key: ")  # YAML, overrides
_TYPE_MISMATCH_MARKER = "for config key: "


def _named_key(text: str, markers: Sequence[str]) -> Optional[str]:
    """The key after the first of ``markers`` found in an error text, or None."""
    for marker in markers:
        if marker in text:
            return text.split(marker, 1)[1].strip().strip("'\"")
    return None


def _base_files(config_file: str, data: dict) -> List[str]:
    """The ``_BASE_`` files of ``config_file`` (whose parsed YAML is ``data``), as paths."""
    bases = data.get("_BASE_") or []
    bases = [bases] if isinstance(bases, str) else list(bases)
    folder = os.path.dirname(config_file)
    paths = [os.path.expanduser(b) for b in bases]
    absolute = ("/", "http://", "https://")
    return [p if p.startswith(absolute) else os.path.join(folder, p) for p in paths]


def _sets_key(data: dict, key: str) -> bool:
    for name in key.split("."):
        if not isinstance(data, dict) or name not in data:
            return False
        data = data[name]
    return True


def _file_setting(config_file: str, key: str) -> Optional[str]:
    """The file of ``config_file``'s ``_BASE_`` chain that sets ``key`` (the file itself first)."""
    try:
        with open(config_file) as f:
            data = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(data, dict):
        return None
    if _sets_key(data, key):
        return config_file
    for base in reversed(_base_files(config_file, data)):
        found = _file_setting(base, key)
        if found:
            return found
    return None


def _source_of(config_file: str, key: str) -> str:
    """'<file>' or '<base file> (a _BASE_ of <file>)': where ``key`` is set."""
    origin = _file_setting(config_file, key)
    if origin is None or os.path.abspath(origin) == os.path.abspath(config_file):
        return config_file
    return f"{origin} (a _BASE_ of {config_file})"


def _merge_error(cfg: CN, error: Exception, source) -> Optional[ConfigError]:
    """A ``ConfigError`` for an unknown key or a wrong type, or None for another error.

    Args:
        source: function key -> where the key was given (a file name, "command-line override").
    """
    text = str(error.args[0] if error.args else error)
    key = _named_key(text, _UNKNOWN_KEY_MARKERS)
    if key is not None:
        close = difflib.get_close_matches(key, all_keys(cfg), n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        return ConfigError(f"{source(key)}: config key {key} does not exist.{hint}")
    key = _named_key(text, [_TYPE_MISMATCH_MARKER])
    if isinstance(error, ValueError) and key is not None:
        return ConfigError(f"{source(key)}: {text}")
    return None


def load_config(config_file: Optional[str] = None, opts: Sequence[str] = ()) -> CN:
    """Build an InsPose config from a YAML file and ``KEY VALUE`` overrides.

    Raises:
        ConfigError: for a missing file; naming the unknown key (and the file of the ``_BASE_``
            chain or the override that sets it) with its close matches; for a value of the wrong
            type, naming the key; ``DescriptionError`` for a dataset description that cannot be
            registered, naming its file and field.
    """
    cfg = get_inspose_cfg()
    if config_file:
        if not os.path.isfile(config_file):
            raise ConfigError(f"config file {config_file} does not exist")
        try:
            cfg.merge_from_file(config_file)
        except (KeyError, AssertionError, ValueError) as error:
            converted = _merge_error(cfg, error, lambda key: _source_of(config_file, key))
            if converted is None:
                raise
            raise converted from None
        absolute_description_paths(cfg, setting_folder(config_file, _file_setting))
    if opts:
        try:
            cfg.merge_from_list(list(opts))
        except (KeyError, AssertionError, ValueError) as error:
            converted = _merge_error(cfg, error, lambda key: "command-line override")
            if converted is None:
                raise
            raise converted from None
        absolute_description_paths(cfg, None)  # overridden paths: from the working directory
    register_config_descriptions(cfg)
    return cfg
