"""Writing a long log record (the model printout) to the log files only, not to the console."""
import logging
import sys

__all__ = ["file_handlers", "log_to_files_only"]


def _is_console(handler: logging.Handler) -> bool:
    stream = getattr(handler, "stream", None)
    return stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)


def file_handlers(logger: logging.Logger):
    """The handlers of ``logger`` and its ancestors that write to files (not to a console)."""
    found = []
    while logger is not None:
        found += [h for h in logger.handlers if isinstance(h, logging.StreamHandler) and not _is_console(h)]
        logger = logger.parent if logger.propagate else None
    return found


def log_to_files_only(logger: logging.Logger, message: str, *args, level: int = logging.INFO) -> None:
    """Log ``message % args`` to ``logger``'s file handlers (e.g. OUTPUT_DIR/log.txt) only."""
    record = logger.makeRecord(logger.name, level, "(inspose)", 0, message, args, None)
    for handler in file_handlers(logger):
        if record.levelno >= handler.level:
            handler.handle(record)
