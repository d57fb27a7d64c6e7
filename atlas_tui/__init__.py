"""ATLAS ops console: the terminal console, the daemon and their shared configuration."""

__version__ = "0.1.0"
