"""The app's typed messages: what the feed pump, the system reader and the widgets tell the app or a screen.

One place for all of them, so a reader sees every message that crosses between the app's parts; each
is handled by name (`on_<snake_case_name>`) where it is posted to.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.message import Message

from tui.feeds.base import Feed, FeedEnd
from tui.feeds.system import SystemSnapshot


class EventsPending(Message):
    """New events wait in the feed pump's inbox (a backlog of these collapses into one)."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, EventsPending)


@dataclass
class FeedCaughtUp(Message):
    """The feed's backlog is read: events from now on are news (worth a toast), not history."""

    feed: Feed


@dataclass
class FeedEnded(Message):
    """The feed has no more events: the sweep finished, or the trainer died."""

    feed: Feed
    end: FeedEnd


@dataclass
class SystemSampled(Message):
    """A new reading of GPUs, host CPU and trainer memory (a backlog collapses to the newest)."""

    snapshot: SystemSnapshot

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SystemSampled)


@dataclass(frozen=True)
class GridInfo:
    """What the loss grid tells its screen after a redraw: paging, and the crosshair's readings."""

    pages: int = 1
    page_text: str = ""
    cursor: Text | None = None


@dataclass
class GridInfoChanged(Message):
    """The loss grid's page line or crosshair values changed (the screen's inspect line shows them)."""

    info: GridInfo
