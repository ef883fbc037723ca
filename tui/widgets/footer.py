"""The key footer of the app's screens."""

from __future__ import annotations

from textual.widgets import Footer


def compact_footer() -> Footer:
    """The footer in its compact style, so every shown key fits in 80 columns (? help and q quit
    included). Set after construction: Footer takes `compact` as an argument only in newer Textual
    than the oldest this app supports."""
    footer = Footer()
    footer.compact = True
    return footer
