"""`SourceLog`: the unavailable sources of one network collector and the log lines for their changes.

The node and probe collectors pass each cycle's unavailable sources (a method that
failed, a value that did not parse) to `SourceLog.update`, and report
`SourceLog.current` from `unavailable_sources()`. A source that fails every cycle
writes one WARNING when it becomes unavailable and one INFO when it recovers, not
a line per cycle. A changed reason while it stays unavailable is logged at DEBUG.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

__all__ = ["SourceLog"]

logger = logging.getLogger(__name__)


class SourceLog:
    """The unavailable sources of the latest cycle, logged on change."""

    def __init__(self, collector: str) -> None:
        """Create an empty log for the collector named `collector`."""
        self._collector = collector
        self.current: dict[str, str] = {}
        """Source mapped to the reason it was unavailable in the latest cycle."""

    def update(self, unavailable: Mapping[str, str]) -> None:
        """Replace the current sources with `unavailable` and log what changed."""
        for source, reason in unavailable.items():
            previous = self.current.get(source)
            if previous is None:
                logger.warning(
                    "source unavailable collector=%s source=%s reason=%s", self._collector, source, reason
                )
            elif previous != reason:
                logger.debug("source still unavailable collector=%s source=%s reason=%s", self._collector, source, reason)
        for source in sorted(self.current.keys() - unavailable.keys()):
            logger.info("source recovered collector=%s source=%s", self._collector, source)
        self.current = dict(unavailable)
