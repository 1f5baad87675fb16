"""Writing files atomically: a file either keeps its old content or holds the whole new one.

``write_atomically(path, write)`` has ``write(file)`` fill a hidden partial file beside ``path``
(``.<name>.<pid>.partial``, so concurrent processes never share one), flushes it to disk and renames
it over ``path`` (``os.replace``). A process killed mid-write leaves ``path`` as it was, plus at
most a partial file that ``remove_partial_files`` deletes. Checkpoints, the sweep's
``final_metrics.json``, repaired annotation files and submissions are all written this way.
"""
import os
from typing import Callable, IO

__all__ = [
    "PARTIAL_SUFFIX",
    "is_partial_file",
    "partial_path",
    "remove_partial_files",
    "write_atomically",
    "write_bytes_atomically",
]

PARTIAL_SUFFIX = ".partial"


def partial_path(path: str) -> str:
    """The hidden partial file beside ``path`` that this process writes to."""
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.{os.getpid()}{PARTIAL_SUFFIX}")


def is_partial_file(name: str) -> bool:
    """Whether a file name is one of the hidden partial files left by an interrupted write."""
    return name.startswith(".") and name.endswith(PARTIAL_SUFFIX)


def write_atomically(path: str, write: Callable[[IO[bytes]], object]) -> None:
    """Make ``path`` hold what ``write(file)`` writes to a binary file, or leave it as it was.

    The partial file is removed when ``write`` (or the rename) raises, also on KeyboardInterrupt.
    """
    partial = partial_path(path)
    try:
        with open(partial, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    except BaseException:
        _remove_quietly(partial)
        raise
    _fsync_folder(os.path.dirname(path) or ".")


def write_bytes_atomically(path: str, data: bytes) -> None:
    """``write_atomically`` for content already in memory."""
    write_atomically(path, lambda f: f.write(data))


def remove_partial_files(folder: str) -> None:
    """Delete the partial files interrupted writes left in ``folder``."""
    for name in os.listdir(folder):
        if is_partial_file(name):
            _remove_quietly(os.path.join(folder, name))


def _fsync_folder(folder: str) -> None:
    """Flush a folder's entries (the rename) to disk where the platform allows it."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass
