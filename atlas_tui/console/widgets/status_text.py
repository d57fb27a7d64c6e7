"""Theme colours for semantic statuses (`firing`, `ok`, `critical`…), for labels and table cells.

`console.alert_presentation` decides the status of a text; the widgets call this
module to colour it. Colours are theme variables only, so every theme, light mode
and 16-colour terminals work. Table cells are Rich text and cannot read CSS, so
`status_cell` resolves the variable through the running app's theme.
"""

from __future__ import annotations

from typing import Literal

from rich.style import Style
from rich.text import Text
from textual.app import App
from textual.color import Color

from atlas_tui.console.alert_presentation import Status

__all__ = ["STATUS_VARIABLES", "plain_cell", "status_cell", "status_style"]

STATUS_VARIABLES: dict[Status, str | None] = {
    "critical": "text-error",
    "error": "text-error",
    "warning": "text-warning",
    "info": "text-primary",
    "firing": "text-error",
    "pending": "text-warning",
    "acknowledged": "text-primary",
    "silenced": None,
    "resolved": "text-success",
    "nodata": "text-warning",
    "inactive": None,
    "ok": "text-success",
    "degraded": "text-warning",
    "failing": "text-error",
    "misconfigured": "text-error",
    "muted": None,
}
"""Theme variable of each status; None means the muted text colour."""


def status_style(status: Status) -> str:
    """Return the Textual style for `status` in `Content` (`$text-error`, `$text-muted`)."""
    variable = STATUS_VARIABLES.get(status)
    return f"${variable}" if variable else "$text-muted"


def plain_cell(text: str, justify: Literal["left", "right"] = "left") -> Text:
    """Return a one-line table cell in the default colour."""
    return Text(text, no_wrap=True, overflow="ellipsis", justify=justify)


def status_cell(app: App[object], text: str, status: Status, *, bold: bool = False) -> Text:
    """Return a one-line table cell coloured for `status` with the app's current theme."""
    variable = STATUS_VARIABLES.get(status)
    if variable is None:
        style = Style(dim=True, bold=bold)
    else:
        style = Style(color=Color.parse(app.theme_variables[variable]).rich_color, bold=bold)
    return Text(text, style=style, no_wrap=True, overflow="ellipsis")
