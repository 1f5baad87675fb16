"""Checking a sweep against the config before any run starts.

Every grid key must exist (the error names it and its close matches), the
extra ``KEY VALUE`` pairs must be pairs that do not set a grid key or ``OUTPUT_DIR`` (the sweep sets
it), and every combination must give a config InsPose can build (types, value ranges).
"""
import difflib
from typing import List, Sequence

from detectron2.config import CfgNode

from ..config import ConfigError, load_config, validate_inspose_config
from .grid import GridAxis, GridError
from .naming import SweepRun

__all__ = ["validate_sweep"]

RESERVED_KEYS = ("OUTPUT_DIR",)


def _all_keys(node, prefix: str = "") -> List[str]:
    keys = []
    for name, value in node.items():
        keys.append(prefix + name)
        if isinstance(value, CfgNode):
            keys.extend(_all_keys(value, prefix + name + "."))
    return keys


def _check_key(key: str, known: Sequence[str], where: str) -> None:
    """Checked here, since yacs only asserts ("Non-existent key") for an unknown override."""
    if key not in known:
        close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise GridError(f"{where}: {key} is not a config key{hint}")


def _check_extra_opts(axes: Sequence[GridAxis], extra_opts: Sequence[str], known: Sequence[str]) -> None:
    if len(extra_opts) % 2:
        raise GridError(f"extra overrides must be KEY VALUE pairs, got an odd list: {list(extra_opts)}")
    extra_keys = list(extra_opts[0::2])
    for key in RESERVED_KEYS:
        if key in extra_keys or key in {a.key for a in axes}:
            raise GridError(f"{key} is set by the sweep (--output-root/<run>); do not override it")
    for key in extra_keys:
        _check_key(key, known, "extra override")
    for axis in axes:
        if axis.key in extra_keys:
            raise GridError(f"{axis.key} is both a --grid key and an extra override")


def _check_run(config_file: str, run: SweepRun, extra_opts: Sequence[str]) -> None:
    try:
        cfg = load_config(config_file, run.opts() + list(extra_opts))
        validate_inspose_config(cfg)
    except (ConfigError, ValueError, TypeError, AssertionError) as error:
        raise GridError(f"run {run.name} ({' '.join(run.opts())}): {error}") from None


def validate_sweep(
    config_file: str, axes: Sequence[GridAxis], runs: Sequence[SweepRun], extra_opts: Sequence[str]
) -> None:
    """Raise ``GridError`` (``ConfigError`` for a bad config file) naming the first key, override
    or run that cannot work."""
    known = _all_keys(load_config(config_file))
    _check_extra_opts(axes, extra_opts, known)
    for axis in axes:
        _check_key(axis.key, known, f"--grid {axis.key}")
    for run in runs:
        _check_run(config_file, run, extra_opts)
