"""Folder names of sweep runs: ``KPNET_DEPTH=1_OUTPUT_STRIDE=8``.

A key is shortened to its last component, or to as many trailing components as make it unique
among the grid's keys (``RESNETS.NORM`` beside ``FPN.NORM``). A value keeps letters, digits and
``. _ + -``; other characters become ``-`` (``(640,)`` -> ``640``). Names that would collide (also
case-insensitively, for macOS and Windows file systems) or run too long get a short hash of the
exact overrides, so two different runs never share a folder and a restarted sweep finds the same
folders again.
"""
import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

__all__ = ["SweepRun", "short_key_names", "sanitize_value", "name_runs"]

MAX_NAME_LENGTH = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")

Overrides = Tuple[Tuple[str, str], ...]


@dataclass(frozen=True)
class SweepRun:
    """One point of the grid: its folder name and its ``(KEY, VALUE)`` overrides in grid order."""

    name: str
    overrides: Overrides

    def opts(self) -> List[str]:
        """``[KEY, VALUE, KEY, VALUE, ...]`` for a detectron2 command line."""
        return [item for pair in self.overrides for item in pair]


def short_key_names(keys: Sequence[str]) -> Dict[str, str]:
    """{full key: the shortest trailing part of it that no other key ends with}."""
    short = {}
    for key in keys:
        parts = key.split(".")
        for count in range(1, len(parts) + 1):
            suffix = ".".join(parts[-count:])
            clashes = [k for k in keys if k != key and (k == suffix or k.endswith("." + suffix))]
            if not clashes:
                break
        short[key] = suffix
    return short


def sanitize_value(value: str) -> str:
    """A value as file-name text: ``"(640, 800)"`` -> ``"640-800"``, ``"peak_mass"`` unchanged."""
    return _UNSAFE.sub("-", value).strip("-.")


def _digest(overrides: Overrides) -> str:
    text = "\n".join(f"{k}={v}" for k, v in overrides)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def _base_name(overrides: Overrides, short: Dict[str, str]) -> str:
    name = "_".join(f"{short[k]}={sanitize_value(v)}" for k, v in overrides)
    if len(name) > MAX_NAME_LENGTH:
        name = name[: MAX_NAME_LENGTH - 9].rstrip("-._") + "-" + _digest(overrides)
    return name


def name_runs(combinations: Sequence[Overrides]) -> List[SweepRun]:
    """A ``SweepRun`` with a unique folder name for every combination (all with the same keys)."""
    if not combinations:
        return []
    short = short_key_names([k for k, _ in combinations[0]])
    names = [_base_name(c, short) for c in combinations]
    counts = Counter(n.lower() for n in names)
    runs = []
    for overrides, name in zip(combinations, names):
        if counts[name.lower()] > 1:
            name = f"{name}-{_digest(overrides)}"
        runs.append(SweepRun(name, tuple(overrides)))
    return runs
