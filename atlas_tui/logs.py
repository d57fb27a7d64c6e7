"""Logging setup for the `atlas` commands: stderr and an optional rotating log file.

Only `atlas_tui.cli` and `atlas_tui.daemon` call `configure_logging`. Every other
module just calls `logging.getLogger(__name__)`, so importing a library module never
adds a handler. Uvicorn's loggers propagate to the root logger configured here,
because the daemon starts uvicorn with `log_config=None`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from atlas_tui.errors import AtlasError

__all__ = [
    "LogFileError",
    "LOG_FILE_BACKUPS",
    "LOG_FILE_MAX_BYTES",
    "LOG_FORMAT",
    "LOG_LEVELS",
    "configure_logging",
]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""One line per record: time, level, logger name, message."""

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
"""Level names the `--log-level` flag accepts."""

LOG_FILE_MAX_BYTES = 10 * 1024 * 1024
"""Size in bytes at which the `--log-file` is rotated."""

LOG_FILE_BACKUPS = 5
"""Rotated log files kept next to `--log-file` (`.1` to `.5`)."""

_HANDLER_MARK = "_atlas_handler"


class LogFileError(AtlasError):
    """Raised when the `--log-file` cannot be created or opened."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        super().__init__(f"cannot open log file {path}: {reason}; pass a writable path to --log-file")


def configure_logging(
    level: str = "INFO", log_file: Path | None = None, *, stderr: bool = True
) -> None:
    """Send log records to stderr and, when `log_file` is given, to that file too.

    Calling it again replaces the handlers it added before, so tests and repeated
    `main()` calls in one process do not duplicate lines.

    Args:
        level: One of `LOG_LEVELS`, case-insensitive.
        log_file: File to append to, rotated at `LOG_FILE_MAX_BYTES`. Its parent
            directory is created if missing.
        stderr: False keeps records off stderr, for the console, which owns the
            terminal. Without any handler the records are dropped, not printed.

    Raises:
        ValueError: `level` is not one of `LOG_LEVELS`.
        LogFileError: the log file cannot be created or opened.
    """
    name = level.upper()
    if name not in LOG_LEVELS:
        raise ValueError(f"invalid log level {level!r}; use one of {', '.join(LOG_LEVELS)}")

    handlers: list[logging.Handler] = []
    if stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    if log_file is not None:
        handlers.append(_open_log_file(log_file))
    if not handlers:
        # Stops logging's last-resort handler from writing warnings over the screen.
        handlers.append(logging.NullHandler())

    root = logging.getLogger()
    _remove_own_handlers(root)
    formatter = logging.Formatter(LOG_FORMAT)
    for handler in handlers:
        handler.setFormatter(formatter)
        setattr(handler, _HANDLER_MARK, True)
        root.addHandler(handler)
    root.setLevel(name)


def _open_log_file(path: Path) -> logging.Handler:
    # Imported here because only --log-file needs it, and it costs every short command a few ms.
    import logging.handlers

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return logging.handlers.RotatingFileHandler(
            path,
            maxBytes=LOG_FILE_MAX_BYTES,
            backupCount=LOG_FILE_BACKUPS,
            encoding="utf-8",
        )
    except OSError as err:
        raise LogFileError(path, err.strerror or str(err)) from err


def _remove_own_handlers(root: logging.Logger) -> None:
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            root.removeHandler(handler)
            handler.close()
