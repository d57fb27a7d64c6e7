"""Errors raised by the `atlas_tui` package.

    AtlasError
    ├── ConfigError        the config file or a flag is invalid
    └── DaemonLockedError  another live daemon holds the data directory

Each message names the value at fault and, where the user can fix it, how.
"""

from __future__ import annotations

__all__ = ["AtlasError", "ConfigError", "DaemonLockedError"]


class AtlasError(Exception):
    """Base of every error ATLAS raises on purpose."""


class ConfigError(AtlasError):
    """Raised when the config file cannot be read, parsed or validated.

    `problems` lists one line per invalid field, each starting with the field path.
    """

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


class DaemonLockedError(AtlasError):
    """Raised when another live daemon holds the lock file of the data directory."""

    def __init__(self, lock_path: str, pid: int) -> None:
        self.lock_path = lock_path
        self.pid = pid
        super().__init__(
            f"another atlas daemon (pid {pid}) is running on this data directory "
            f"(lock file {lock_path}); stop it first or use a different --data-dir"
        )
