"""Lets ``inspose`` import on upstream detectron2 and on detectron2 v0.6 without its compiled ops.

This is the only module that adjusts the environment detectron2 runs in, and it must be imported
before detectron2 (``inspose/__init__.py`` does that first). Two things are done, nothing else:

1. When ``detectron2._C`` (the compiled C++/CUDA extension) is absent, a placeholder module is
   registered under that name. detectron2 v0.6 imports it at module level for deformable and
   rotated-box ops that InsPose never uses; any attempt to use a real op raises a clear error.
2. Pillow >= 10 removed ``Image.LINEAR``, which detectron2 v0.6 uses as a default argument at import
   time; it is aliased to ``Image.BILINEAR`` (the same filter).

It also silences two known third-party notices that our imports trigger and that say nothing about
the run, scoped to their exact messages: torch's ``torch.jit.script`` deprecation FutureWarning
(fvcore and detectron2 script functions at import time) and torch's "No CUDA runtime is found,
using CUDA_HOME=..." log line (detectron2's environment report imports torch.utils.cpp_extension).
"""
import importlib.util
import logging
import sys
import types
import warnings

from PIL import Image

__all__ = ["HAS_COMPILED_OPS", "KNOWN_NOISE_FILTER", "silence_known_noise"]


_NOT_COMPILED = "not compiled (inspose placeholder for detectron2._C)"
# Informational functions detectron2's collect_env calls; they describe, they compute nothing.
_INFO = {
    "get_compiler_version": lambda: _NOT_COMPILED,
    "get_cuda_version": lambda: _NOT_COMPILED,
    "has_cuda": lambda: False,
}


class _MissingCompiledOps(types.ModuleType):
    """Stands in for ``detectron2._C``; every real op raises an error that explains why."""

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):
            # torch's op registration and importlib inspect modules for dunder attributes.
            raise AttributeError(name)
        if name in _INFO:
            return _INFO[name]
        raise RuntimeError(
            f"detectron2._C.{name} is a compiled detectron2 op, and this detectron2 was installed "
            "without its C++/CUDA extension (the default of `make setup`). InsPose does not need it; "
            "for ops such as deformable convolution install upstream detectron2 from source "
            "(DETECTRON2_SOURCE=... make setup, see README.md)."
        )


def _compiled_ops_available() -> bool:
    if "detectron2._C" in sys.modules:
        return not isinstance(sys.modules["detectron2._C"], _MissingCompiledOps)
    try:
        return importlib.util.find_spec("detectron2._C") is not None
    except (ImportError, ValueError):
        return False


HAS_COMPILED_OPS = _compiled_ops_available()

if not HAS_COMPILED_OPS:
    sys.modules.setdefault("detectron2._C", _MissingCompiledOps("detectron2._C"))

if not hasattr(Image, "LINEAR"):
    Image.LINEAR = Image.BILINEAR


class _DropMessages(logging.Filter):
    """Drops log records whose message starts with one of ``prefixes``."""

    def __init__(self, prefixes):
        super().__init__()
        self.prefixes = tuple(prefixes)

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


KNOWN_NOISE_FILTER = _DropMessages(["No CUDA runtime is found, using CUDA_HOME"])


def silence_known_noise() -> None:
    """The filters of the module doc (idempotent)."""
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
    cpp_extension_logger = logging.getLogger("torch.utils.cpp_extension")
    if KNOWN_NOISE_FILTER not in cpp_extension_logger.filters:
        cpp_extension_logger.addFilter(KNOWN_NOISE_FILTER)


silence_known_noise()
