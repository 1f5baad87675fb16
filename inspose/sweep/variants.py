"""Named variants of a sweep (``tools/sweep.py --variants FILE``): several overrides as one run.

The file is YAML, an ordered mapping of variant name -> list of ``KEY VALUE`` overrides::

    paper: []                                     # no overrides: the base config
    regression: [MODEL.INSPOSE.KEYPOINT_REGRESSION_ON, True, MODEL.INSPOSE.NMS_BOXES, regression]

Values become command-line text, as detectron2's ``merge_from_list`` reads it: a YAML string stays
as written (``regression``, ``"(640, 800)"``), any other value is written with ``repr`` (``True``,
``4``, ``0.3``, ``['nose', 'neck']``). ``paper:`` (null) is the same as ``paper: []``. The
variants keep the file's order. The file is read here; ``plan`` checks the keys against the config
and crosses the variants with the ``--grid`` combinations.
"""
from dataclasses import dataclass
from typing import List, Tuple

import yaml

from .errors import GridError

__all__ = ["Variant", "load_variants", "parse_variants"]

Overrides = Tuple[Tuple[str, str], ...]


@dataclass(frozen=True)
class Variant:
    """A named set of ``(KEY, VALUE)`` overrides (values as command-line text), in file order."""

    name: str
    overrides: Overrides

    def keys(self) -> List[str]:
        return [key for key, _ in self.overrides]


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a mapping key given twice (plain YAML keeps the last silently)."""


def _construct_unique_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"{key!r} is defined more than once", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _as_text(value) -> str:
    return value if isinstance(value, str) else repr(value)


def _variant(name, items, source: str) -> Variant:
    if not isinstance(name, str) or not name.strip():
        raise GridError(f"{source}: variant name {name!r} must be a non-empty string (quote it)")
    where = f"{source}: variant {name}"
    items = [] if items is None else items
    if not isinstance(items, list):
        raise GridError(f"{where}: expected a list [KEY, VALUE, KEY, VALUE, ...], got {items!r}")
    if len(items) % 2:
        raise GridError(f"{where}: the overrides must be KEY VALUE pairs, got an odd list {items}")
    keys, values = items[0::2], items[1::2]
    for key in keys:
        if not isinstance(key, str) or not key:
            raise GridError(f"{where}: {key!r} is not a config key (expected KEY VALUE pairs)")
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise GridError(f"{where}: key(s) {', '.join(repeated)} set more than once")
    return Variant(name, tuple((key, _as_text(value)) for key, value in zip(keys, values)))


def parse_variants(text: str, source: str) -> List[Variant]:
    """The variants of a YAML text, in order; ``source`` (the file) names it in errors.

    Raises:
        GridError: malformed YAML, not a mapping, no variant, a bad name or override list.
    """
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as error:
        raise GridError(f"{source} is not valid YAML: {error}") from None
    if data is None or data == {}:
        raise GridError(f"{source} defines no variants (expected NAME: [KEY, VALUE, ...] lines)")
    if not isinstance(data, dict):
        raise GridError(f"{source} must be a mapping of variant name -> [KEY, VALUE, ...], got {data!r}")
    return [_variant(name, items, source) for name, items in data.items()]


def load_variants(path: str) -> List[Variant]:
    """The variants of the file ``path`` (relative to the working directory), in file order."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as error:
        raise GridError(f"--variants {path} cannot be read: {error}") from None
    return parse_variants(text, path)
