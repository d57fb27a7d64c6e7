"""The alert detail screen: state, labels, value, annotations, timeline and deliveries of one alert.

The main screen pushes it when the Alerts pane requests details (Enter) and hands
it the `AlertDetail` once the data loop has read it (`show_detail`). Until then it
shows `loading…`. `r` requests a fresh read from the main screen, and escape closes it. It
carries its own all-channels-down banner, so the banner is on every screen.
Long values (labels, runbook URLs) wrap beside their name; timeline and delivery
lines are cut with an ellipsis; the body scrolls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.events import Resize
from textual.screen import Screen
from textual.widgets import Footer, Label, Static

from atlas_tui.console.alert_models import AlertDetail
from atlas_tui.console.alert_presentation import Status
from atlas_tui.console.detail_presentation import (
    DetailLine,
    delivery_lines,
    detail_fields,
    detail_title,
    timeline_lines,
)
from atlas_tui.console.widgets.channels_banner import ChannelsDownBanner
from atlas_tui.console.widgets.status_text import status_style
from atlas_tui.console.widgets.too_small_notice import MIN_SIZE, TooSmallNotice

__all__ = ["AlertDetailScreen"]


class AlertDetailScreen(Screen[None]):
    """Everything stored about one alert, read once when opened and again on `r`."""

    BINDINGS = [
        Binding("escape", "close", "Close", tooltip="Close the alert details"),
        Binding("r", "reload", "Reload", tooltip="Read the alert details again"),
    ]

    DEFAULT_CSS = """
    AlertDetailScreen #detail-title {
        width: 1fr;
        height: 1;
        padding: 0 1;
        background: $panel;
        text-style: bold;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    AlertDetailScreen #detail-body {
        height: 1fr;
        padding: 0 1;
    }
    AlertDetailScreen #detail-fields,
    AlertDetailScreen .detail-field {
        height: auto;
    }
    AlertDetailScreen .detail-name {
        width: 12;
        color: $text-muted;
    }
    AlertDetailScreen .detail-value {
        width: 1fr;
    }
    AlertDetailScreen .detail-heading {
        margin-top: 1;
        text-style: bold;
        color: $accent;
    }
    AlertDetailScreen .detail-lines {
        width: 1fr;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    AlertDetailScreen #detail-too-small {
        display: none;
        color: $warning;
    }
    AlertDetailScreen.-too-small #detail-title,
    AlertDetailScreen.-too-small #detail-body,
    AlertDetailScreen.-too-small Footer {
        display: none;
    }
    AlertDetailScreen.-too-small #detail-too-small {
        display: block;
    }
    """

    def __init__(
        self, alert_id: str, *, reload: Callable[[str], None], channels_down_for: float | None = None
    ) -> None:
        """Create the screen for `alert_id`.

        Args:
            alert_id: The alert to show.
            reload: Asks the data loop to read the alert again; the result arrives
                through `show_detail` or `show_missing`.
            channels_down_for: The banner's state when the screen opens.
        """
        super().__init__()
        self.alert_id = alert_id
        """The alert shown."""
        self.detail: AlertDetail | None = None
        """The detail shown; None while loading or when the alert is gone."""
        self._reload = reload
        self._channels_down_for = channels_down_for

    def compose(self) -> ComposeResult:
        """Create the banner, the title, the scrolling body, the footer and the too-small notice."""
        yield ChannelsDownBanner(id="detail-banner")
        yield Label(Content(f"{self.alert_id}  loading…"), id="detail-title")
        with VerticalScroll(id="detail-body"):
            yield Vertical(id="detail-fields")
            yield Label("Timeline (UTC)", classes="detail-heading")
            yield Static("", id="detail-timeline", classes="detail-lines")
            yield Label("Notifications per channel", classes="detail-heading")
            yield Static("", id="detail-deliveries", classes="detail-lines")
        yield Footer()
        yield TooSmallNotice(id="detail-too-small")

    def on_mount(self) -> None:
        """Show the banner state, lay out for the size and put the keyboard on the body."""
        for banner in self.query(ChannelsDownBanner):
            banner.show_down(self._channels_down_for)
        self._apply_size(self.size.width, self.size.height)
        for body in self.query("#detail-body"):
            body.focus()

    def on_resize(self, event: Resize) -> None:
        """Switch between the details and the too-small notice."""
        self._apply_size(event.size.width, event.size.height)

    def action_close(self) -> None:
        """Return to the Alerts pane."""
        self.dismiss(None)

    def action_reload(self) -> None:
        """Ask for the alert's details again."""
        self._reload(self.alert_id)

    def show_detail(self, detail: AlertDetail) -> None:
        """Show `detail` in place of what was shown."""
        self.detail = detail
        for title in self.query("#detail-title").results(Label):
            title.update(Content(detail_title(detail)))
        for fields in self.query("#detail-fields").results(Vertical):
            fields.remove_children()
            fields.mount_all(_field_row(name, value, status) for name, value, status in detail_fields(detail))
        for timeline in self.query("#detail-timeline").results(Static):
            timeline.update(_lines_content(timeline_lines(detail)))
        for deliveries in self.query("#detail-deliveries").results(Static):
            deliveries.update(_lines_content(delivery_lines(detail)))

    def show_missing(self, reason: str) -> None:
        """Say that the alert could not be read, for example because it no longer exists."""
        self.detail = None
        for title in self.query("#detail-title").results(Label):
            title.update(Content(f"{self.alert_id}  {reason}"))

    def _apply_size(self, width: int, height: int) -> None:
        min_width, min_height = MIN_SIZE
        self.set_class(width < min_width or height < min_height, "-too-small")
        for notice in self.query(TooSmallNotice):
            notice.show_size(width, height)


def _field_row(name: str, value: str, status: Status | None) -> Horizontal:
    value_text = Content.styled(value, status_style(status)) if status else Content(value)
    return Horizontal(
        Label(Content(name), classes="detail-name"),
        Label(value_text, classes="detail-value"),
        classes="detail-field",
    )


def _lines_content(lines: Sequence[DetailLine]) -> Content:
    parts: list[str | tuple[str, str]] = []
    for index, (text, status) in enumerate(lines):
        if index:
            parts.append("\n")
        parts.append((text, status_style(status)) if status else text)
    return Content.assemble(*parts)
