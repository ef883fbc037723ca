"""What every feed of the app is: the `Feed` protocol, why one ended, and the reset marker.

Every feed implements `Feed` so the app treats them alike: `read()` and `ended()` run in
the app's thread worker; `send()` and `close()` on the UI thread; the attributes are read
on the UI thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from trainer.runlog import UnreadableFile, open_regular
from tui.state.status import StatusLine


@dataclass(frozen=True)
class FeedEnd:
    """Why a feed has no more events: `finished` (normal) or `died` (trainer lost)."""

    kind: str
    detail: str = ""
    #: `died` by a signal (kill -9, OOM killer, reboot): the work is interrupted, not a bug.
    killed: bool = False


class Feed(Protocol):
    """A source of sweep events: a live trainer, a run directory (replay, attach), or a test's fake."""

    #: True when this app started the trainer and controls (pause, split) reach it.
    live: bool
    #: The run directory this feed reads or its trainer writes ("" when not known yet).
    run_dir: str
    #: True when the feed follows a run directory whose trainer runs on its own (--attach, --detach).
    follows_trainer: bool

    @property
    def bad_lines(self) -> int:
        """Lines of the source that were not events (skipped and counted)."""
        ...

    @property
    def watch(self) -> StatusLine | None:
        """What the followed trainer is doing, for the status line; None when there is nothing to say."""
        ...

    @property
    def trainer_pid(self) -> int | None:
        """The pid of the trainer process on this host, when there is one (the system pane reads its memory)."""
        ...

    def start(self) -> None: ...

    def read(self, timeout: float) -> list[Any]:
        """Events that arrived (FEED_RESET first when the source was replaced); waits up to `timeout`."""
        ...

    def ended(self) -> FeedEnd | None:
        """Why no more events will come, or None while more may."""
        ...

    def send(self, message: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class FeedReset:
    """In a feed's events: the file was replaced (resume) or truncated; rebuild from scratch."""

    def __repr__(self) -> str:
        return "FEED_RESET"


#: The one marker a ReplayFeed puts before the events of a replaced events.jsonl.
FEED_RESET = FeedReset()


def log_tail(path: Path, lines: int = 1) -> str:
    """The last non-empty line(s) of a log file ("" when there is none)."""
    try:
        with open_regular(path) as f:  # a FIFO in its place is refused, never waited on
            f.seek(max(0, os.fstat(f.fileno()).st_size - 4096))
            text = f.read(4096).decode("utf-8", "replace")
    except (OSError, UnreadableFile):
        return ""
    kept = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " / ".join(kept[-lines:])
