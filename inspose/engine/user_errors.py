"""The errors a tool reports as one line (no traceback) with exit code 2: a config that cannot
be loaded (``ConfigError``, which includes an unregistered dataset) and untrained weights."""
import re
import sys
from typing import Callable, TypeVar

from ..config import ConfigError
from .weights import UntrainedWeightsError

__all__ = ["USER_ERRORS", "USER_ERROR_EXIT_CODE", "exit_on_user_error", "type_fix_hint"]

USER_ERRORS = (ConfigError, UntrainedWeightsError)
USER_ERROR_EXIT_CODE = 2
T = TypeVar("T")


def exit_on_user_error(tool: str, run: Callable[[], T]) -> T:
    """``run()``; on one of ``USER_ERRORS`` print ``<tool>: error: <message>`` and exit 2."""
    try:
        return run()
    except USER_ERRORS as error:
        print(f"{tool}: error: {error}{type_fix_hint(str(error))}", file=sys.stderr)
        raise SystemExit(USER_ERROR_EXIT_CODE) from None


_MISMATCH = re.compile(
    r"Type mismatch \(<class '(\w+)'> vs\. <class '(\w+)'>\) with values \((.*) vs\. (.*)\) for config key: (\S+)"
)


def type_fix_hint(message: str) -> str:
    """For a type-mismatch message, how to write the value (``write "(30,)" for a tuple``), else ''."""
    match = _MISMATCH.search(message)
    if match is None:
        return ""
    expected, _, default, given, key = match.groups()
    if expected in ("tuple", "list"):
        example = f'"({given},)"' if expected == "tuple" else f'"[{given}]"'
        return f' Fix: {key} takes a {expected}: write {example} (default {default}).'
    if expected == "str":
        return f" Fix: {key} takes a string: write '\"{given}\"' (default {default!s})."
    return f" Fix: {key} takes a {expected}, e.g. {default}."
