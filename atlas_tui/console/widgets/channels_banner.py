"""The red line shown on every screen while all notification channels have been down 5 minutes.

The main screen and the alert detail screen each mount one, and the main screen
calls `show_down` on all of them after each alerts read. When no alert reaches
anyone, an operator on the host must still see it without any network.
"""

from __future__ import annotations

from textual.widgets import Label

from atlas_tui.console.alert_presentation import banner_text

__all__ = ["ChannelsDownBanner"]


class ChannelsDownBanner(Label):
    """A one-line banner, hidden while any channel works."""

    DEFAULT_CSS = """
    ChannelsDownBanner {
        display: none;
        width: 1fr;
        height: 1;
        padding: 0 1;
        background: $error;
        color: $text;
        text-style: bold;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    ChannelsDownBanner.-down {
        display: block;
    }
    """

    def show_down(self, down_for: float | None) -> None:
        """Show the banner for `down_for` seconds of outage, or hide it when None."""
        self.set_class(down_for is not None, "-down")
        if down_for is not None:
            self.update(banner_text(down_for))
