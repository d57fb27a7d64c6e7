"""The acknowledgement prompt: a small modal box with one input line for the operator's note.

The Alerts pane opens it with `a` on a firing alert. Enter returns the typed
message (possibly empty) and escape returns None, so acknowledging takes `a`, the
message and Enter. The pane, not this screen, hands the message to the data loop.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Input, Label

from atlas_tui.console.formatting import printable
from atlas_tui.console.modal import SizeGuardedModal

__all__ = ["ACK_MESSAGE_MAX", "AckPrompt"]

ACK_MESSAGE_MAX = 500
"""Characters accepted for the note; longer text is cut by the input."""

class AckPrompt(SizeGuardedModal[str | None]):
    """Asks for the note of an acknowledgement; dismisses with the note or None."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", tooltip="Close the prompt without acknowledging"),
    ]

    DEFAULT_CSS = """
    AckPrompt {
        align: center middle;
    }
    AckPrompt > #ack-box {
        width: 66;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: round $primary;
        background: $surface;
        padding: 0 1;
    }
    AckPrompt #ack-title {
        width: 1fr;
        text-style: bold;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    AckPrompt #ack-hint {
        width: 1fr;
        color: $text-muted;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, alert_id: str, alert_name: str) -> None:
        """Create the prompt for the alert `alert_id` named `alert_name`."""
        super().__init__()
        self.alert_id = alert_id
        """The alert being acknowledged."""
        self._title = printable(f"Acknowledge {alert_id}: {alert_name}")

    def compose(self) -> ComposeResult:
        """Create the title, the input and the key hint."""
        with Vertical(id="ack-box"):
            yield Label(Content(self._title), id="ack-title")
            # No select-all on focus: focus comes back after a too-small resize, and typing
            # must then add to the note, not replace it.
            yield Input(
                placeholder="note for the team (optional)",
                max_length=ACK_MESSAGE_MAX,
                select_on_focus=False,
                id="ack-message",
            )
            yield Label("enter acknowledges · escape cancels", id="ack-hint")

    def on_mount(self) -> None:
        """Put the keyboard on the input."""
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Return the typed note."""
        event.stop()
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        """Close without acknowledging."""
        self.dismiss(None)
