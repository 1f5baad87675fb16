"""Grids of config values: ``--grid KEY=VALUES`` arguments and their cartesian product.

Two value syntaxes:

* comma-separated: ``MODEL.INSPOSE.KPNET_DEPTH=1,2,3,4`` -> ``"1"``, ``"2"``, ``"3"``, ``"4"``;
* a Python literal list, for values that contain commas or brackets:
  ``INPUT.MIN_SIZE_TRAIN=[(640,),(800,)]`` -> ``"(640,)"``, ``"(800,)"``.

Values stay strings, exactly as detectron2's ``merge_from_list`` reads them from a command line.
"""
import ast
import itertools
from dataclasses import dataclass
from typing import List, Sequence, Tuple

__all__ = ["GridError", "GridAxis", "parse_grid_arg", "parse_grid", "grid_combinations"]

BRACKETS = "([{)]}"


class GridError(ValueError):
    """A ``--grid`` argument that cannot be read, or a grid that cannot be swept."""


@dataclass(frozen=True)
class GridAxis:
    """One varied config key and the values it takes, in the order given."""

    key: str
    values: Tuple[str, ...]


def _literal_values(text: str, argument: str) -> List[str]:
    try:
        parsed = ast.literal_eval(text)
    except (ValueError, SyntaxError) as error:
        raise GridError(f"--grid {argument}: {text} is not a Python literal list ({error})") from None
    if not isinstance(parsed, list):
        raise GridError(f"--grid {argument}: {text} must be a list, e.g. [(640,),(800,)]")
    return [v if isinstance(v, str) else repr(v) for v in parsed]


def _comma_values(text: str, argument: str) -> List[str]:
    if any(c in text for c in BRACKETS):
        raise GridError(
            f"--grid {argument}: values with brackets need the list syntax, "
            f"e.g. KEY=[(640,),(800,)] instead of KEY=(640,),(800,)"
        )
    values = [v.strip() for v in text.split(",")]
    if any(v == "" for v in values):
        raise GridError(f"--grid {argument}: empty value in {text!r}")
    return values


def parse_grid_arg(argument: str) -> GridAxis:
    """``"KEY=v1,v2"`` or ``"KEY=[v1, v2]"`` -> ``GridAxis(KEY, ("v1", "v2"))``.

    Raises:
        GridError: no ``=``, an empty key or value list, a malformed list, or a repeated value.
    """
    key, sep, text = argument.partition("=")
    key, text = key.strip(), text.strip()
    if not sep or not key:
        raise GridError(
            f"--grid {argument!r}: expected KEY=VALUE,VALUE,... e.g. MODEL.INSPOSE.KPNET_DEPTH=1,2"
        )
    if not text:
        raise GridError(f"--grid {argument}: no values after '='")
    values = _literal_values(text, argument) if text.startswith("[") else _comma_values(text, argument)
    if not values:
        raise GridError(f"--grid {argument}: the value list is empty")
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise GridError(f"--grid {argument}: value(s) {', '.join(repeated)} given more than once")
    return GridAxis(key, tuple(values))


def parse_grid(arguments: Sequence[str]) -> List[GridAxis]:
    """Every ``--grid`` argument, checked for a key given twice."""
    if not arguments:
        raise GridError("at least one --grid KEY=VALUES is needed")
    axes = [parse_grid_arg(a) for a in arguments]
    keys = [axis.key for axis in axes]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise GridError(
            f"--grid: key(s) {', '.join(repeated)} given more than once; list all values in one --grid"
        )
    return axes


def grid_combinations(axes: Sequence[GridAxis]) -> List[Tuple[Tuple[str, str], ...]]:
    """The cartesian product, first axis slowest: [((KEY, VALUE), ...) per run]."""
    return [
        tuple(zip((axis.key for axis in axes), values))
        for values in itertools.product(*(axis.values for axis in axes))
    ]
