"""`SizeGuardedModal`: a modal screen that shows the too-small notice below the minimum size.

A modal screen covers the main screen, so the main screen's own too-small notice
cannot be seen while it is open. The help overlay and the acknowledgement prompt
derive from this class. Below `MIN_SIZE` every child but the notice is hidden (CSS
class `-too-small`), and on the next large enough resize the box comes back with
what it held, such as a half-typed note.
"""

from __future__ import annotations

from textual.events import Mount, Resize
from textual.screen import ModalScreen, ScreenResultType
from textual.widget import Widget

from atlas_tui.console.widgets.too_small_notice import MIN_SIZE, TooSmallNotice

__all__ = ["SizeGuardedModal"]


class SizeGuardedModal(ModalScreen[ScreenResultType]):
    """A modal screen whose subclasses compose their box; this class adds the notice."""

    DEFAULT_CSS = """
    SizeGuardedModal > .modal-too-small {
        display: none;
        width: 1fr;
        height: 1fr;
        background: $background;
        color: $warning;
    }
    SizeGuardedModal.-too-small > * {
        display: none;
    }
    SizeGuardedModal.-too-small > .modal-too-small {
        display: block;
    }
    """

    def __init__(self) -> None:
        """Create the screen; subclasses pass no arguments on."""
        super().__init__()
        self._focus_before: Widget | None = None

    @property
    def too_small(self) -> bool:
        """Whether the notice is shown instead of the box."""
        return self.has_class("-too-small")

    async def on_mount(self, event: Mount) -> None:
        """Add the notice and lay out for the current size.

        Textual calls the `on_mount` of every class in the MRO, so a subclass's own
        `on_mount` does not replace this one.
        """
        await self.mount(TooSmallNotice(classes="modal-too-small"))
        self._apply_size(self.size.width, self.size.height)

    def on_resize(self, event: Resize) -> None:
        """Switch between the box and the notice."""
        self._apply_size(event.size.width, event.size.height)

    def _apply_size(self, width: int, height: int) -> None:
        min_width, min_height = MIN_SIZE
        too_small = width < min_width or height < min_height
        if too_small and not self.too_small:
            # Hiding the box takes the focus from its input, so it is given back on recovery.
            self._focus_before = self.focused
        self.set_class(too_small, "-too-small")
        for notice in self.query(".modal-too-small").results(TooSmallNotice):
            notice.show_size(width, height)
        if not too_small and self._focus_before is not None:
            widget, self._focus_before = self._focus_before, None
            if widget.is_attached:
                self.call_after_refresh(widget.focus)
