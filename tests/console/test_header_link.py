"""The header of a console attached to a remote daemon: the API's URL and the link state."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Label

from atlas_tui.console.source import DaemonState, HeaderInfo, LinkState, RemoteLink
from atlas_tui.console.widgets.header_bar import HeaderBar

TARGET = "https://atlas-1.example.org:8443"


class HeaderApp(App[None]):
    """An app with the header bar alone."""

    def compose(self) -> ComposeResult:
        """Create the header."""
        yield HeaderBar(id="header")


@pytest.mark.parametrize(
    ("state", "daemon", "status", "text", "css_class"),
    [
        ("connected", "running", None, "● connected", "-connected"),
        ("connected", "stale", None, "● connected, daemon stale", "-stale"),
        ("reconnecting", "running", None, "● reconnecting", "-reconnecting"),
        ("auth_failed", "stale", 403, "● auth failed (HTTP 403)", "-auth-failed"),
    ],
)
async def test_link_state_label(
    state: LinkState, daemon: DaemonState, status: int | None, text: str, css_class: str
) -> None:
    """Each link state has its text and CSS class in place of the daemon state."""
    app = HeaderApp()
    async with app.run_test(size=(140, 3)) as pilot:
        header = app.query_one(HeaderBar)
        header.info = HeaderInfo("web-1", daemon, 2.0, link=RemoteLink(TARGET, state, status))
        await pilot.pause()
        label = app.query_one("#header-state", Label)
        assert str(label.render()) == text
        assert label.has_class(css_class)
        assert str(app.query_one("#header-host", Label).render()) == f"web-1 via {TARGET}"


async def test_link_problem_shown() -> None:
    """While the link is down, the problem replaces the data age in the error colour."""
    app = HeaderApp()
    async with app.run_test(size=(140, 3)) as pilot:
        problem = f"cannot reach {TARGET}: connection refused"
        header = app.query_one(HeaderBar)
        header.info = HeaderInfo("web-1", "running", 30.0, problem=problem, link=RemoteLink(TARGET, "reconnecting"))
        await pilot.pause()
        age = app.query_one("#header-age", Label)
        assert str(age.render()) == problem
        assert age.has_class("-problem")
