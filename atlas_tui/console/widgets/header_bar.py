"""The console's one-line header: product name, firing alerts, host, who writes the store or the remote link, data age.

The main screen sets `info` from each snapshot's `HeaderInfo` and `alert_counts`
from each alerts read, so the counts of firing alerts by severity (`2 crit 1 warn`)
show on every pane. It sets `store_error` when the store cannot be opened or read,
and the header then shows `store error: <message>` in the error colour in place of
the data age until the next snapshot clears it. The header shows no clock, so a snapshot of the screen depends
only on the data. The daemon state maps to a CSS class (`-running`, `-stale`,
`-embedded`) that the app stylesheet colours. A console attached to a remote daemon
(`HeaderInfo.link`) shows the API's URL after the host and the link state in place
of the daemon state (`-connected`, `-reconnecting`, `-auth-failed`).
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.reactive import reactive
from textual.widgets import Label

from atlas_tui.console.alert_models import AlertCounts
from atlas_tui.console.alert_presentation import count_parts
from atlas_tui.console.formatting import format_age, printable
from atlas_tui.console.source import DaemonState, HeaderInfo, LinkState
from atlas_tui.console.widgets.status_text import status_style

__all__ = ["HeaderBar"]

_STATE_TEXT: dict[DaemonState, str] = {
    "running": "● daemon running",
    "stale": "● daemon stale",
    "embedded": "● embedded collection",
}

_LINK_TEXT: dict[LinkState, str] = {
    "connected": "● connected",
    "reconnecting": "● reconnecting",
    "auth_failed": "● auth failed",
}


class HeaderBar(Horizontal):
    """Header line built from a `HeaderInfo`."""

    DEFAULT_CSS = """
    HeaderBar {
        height: 1;
        width: 1fr;
    }
    HeaderBar Label {
        width: auto;
        height: 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        padding: 0 1;
    }
    HeaderBar #header-host {
        width: 1fr;
    }
    HeaderBar #header-age {
        max-width: 50%;
    }
    """

    info: reactive[HeaderInfo | None] = reactive(None, layout=True)
    """The data shown; None until the first snapshot arrives."""

    alert_counts: reactive[AlertCounts | None] = reactive(None, layout=True)
    """Firing alerts per severity; None until the first alerts read."""

    store_error: reactive[str | None] = reactive(None, layout=True)
    """The error text of the last failed store open or read; None while reads succeed."""

    def compose(self) -> ComposeResult:
        """Create the name, alert counts, host, state and age labels."""
        yield Label("ATLAS", id="header-title")
        yield Label("", id="header-alerts")
        yield Label("loading…", id="header-host")
        yield Label("", id="header-state")
        yield Label("", id="header-age")

    def watch_info(self, info: HeaderInfo | None) -> None:
        """Show the new header data."""
        self._show_info(info, self.store_error)

    def watch_store_error(self, error: str | None) -> None:
        """Show the store error, or the data age again once it is gone."""
        self._show_info(self.info, error)

    def _show_info(self, info: HeaderInfo | None, error: str | None) -> None:
        if info is not None:
            host_text = info.host if info.link is None else f"{info.host} via {info.link.target}"
            for host in self.query("#header-host").results(Label):
                host.update(Content(printable(host_text)))
            text, css_class = _state_label(info)
            for state in self.query("#header-state").results(Label):
                state.update(text)
                state.set_classes(css_class)
        elif error is not None:
            for host in self.query("#header-host").results(Label):
                host.update("no data")
        for age in self.query("#header-age").results(Label):
            age.update(_age_or_problem(info, error))
            age.set_class(error is not None or (info is not None and info.problem is not None), "-problem")

    def watch_alert_counts(self, counts: AlertCounts | None) -> None:
        """Show the new counts, each severity in its colour."""
        parts: list[str | tuple[str, str]] = []
        for text, status in count_parts(counts):
            if parts:
                parts.append(" ")
            parts.append((text, f"bold {status_style(status)}"))
        for label in self.query("#header-alerts").results(Label):
            label.update(Content.assemble(*parts))


def _state_label(info: HeaderInfo) -> tuple[str, str]:
    """Return the state label's text and CSS class: the store's writer, or the remote link."""
    link = info.link
    if link is None:
        return _STATE_TEXT[info.daemon_state], f"-{info.daemon_state}"
    if link.state == "auth_failed":
        return f"{_LINK_TEXT[link.state]} (HTTP {link.http_status})", "-auth-failed"
    if link.state == "connected" and info.daemon_state != "running":
        return f"{_LINK_TEXT[link.state]}, daemon {info.daemon_state}", "-stale"
    return _LINK_TEXT[link.state], f"-{link.state}"


def _age_or_problem(info: HeaderInfo | None, error: str | None) -> Content:
    if error is not None:
        return Content(f"store error: {printable(error)}")
    if info is None:
        return Content("")
    if info.problem is not None:
        return Content(printable(info.problem))
    return Content(f"newest sample {format_age(info.newest_sample_age)}")
