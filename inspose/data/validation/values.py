"""Type predicates for parsed json values, and ``_number_rows``: rows of numbers as one array."""
import math
from numbers import Real
from typing import Tuple

import numpy as np


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value) -> bool:
    kind = type(value)
    if kind is float or kind is int:  # the json types, checked first: this runs per box value
        return True
    return isinstance(value, Real) and not isinstance(value, bool)


def _is_finite_number(value) -> bool:
    return _is_number(value) and math.isfinite(value)


def _number_rows(rows: list, width: int) -> Tuple[np.ndarray, np.ndarray]:
    """Rows of ``width`` numbers as a (N, width) float64 array, and (N,) bool 'row is finite'.

    One numpy conversion when every row is a list of ``width`` numbers; otherwise row by row,
    with NaN for the rows that are not (strings, None, wrong length).
    """
    try:
        array = np.array(rows)
        fast = array.dtype.kind in "iuf" and array.shape == (len(rows), width)
    except (TypeError, ValueError):  # ragged rows
        fast = False
    if fast:
        array = array.astype(np.float64, copy=False)
    else:
        array = np.full((len(rows), width), np.nan)
        for i, row in enumerate(rows):
            if isinstance(row, list) and len(row) == width and all(map(_is_number, row)):
                array[i] = row
    return array, np.isfinite(array).all(axis=1)
