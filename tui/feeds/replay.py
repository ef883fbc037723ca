"""The feed of a run directory on disk: replayed, followed while it grows, or attached to its trainer."""

from __future__ import annotations

import errno
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

from trainer.runlog import CONTROLS, EVENTS, Event
from trainer.runlog.commands import trainer_command
from tui.feeds.base import FEED_RESET, FeedEnd, FeedReset, log_tail
from tui.feeds.bridge import TrainerExit
from tui.feeds.detach import LOG_FILE, DetachedTrainer, describe, trainer_state
from tui.feeds.event_reader import EventReader, events_path
from tui.state.status import Severity, StatusLine

LOCK_CHECK_S = 1.0  # how often a watched run directory's trainer.lock is looked at
#: A replay of an unfinished sweep whose file has not grown for this long looks at trainer.lock:
#: with no live trainer it says so, instead of "following" a run nobody writes.
IDLE_S = 10.0


class ReplayFeed:
    """Events from a run directory's events.jsonl, followed while it grows.

    With `watch_trainer` (bstui --attach / --detach) it also tells whether a trainer still
    writes the directory (trainer.lock), in `watch` as a status line, and keeps following
    while one does, also across a resume that replaces events.jsonl. `detached` is the
    trainer this app started for it, if any; the file may not exist yet then.
    """

    live = False

    def __init__(
        self,
        run_dir: str,
        poll_s: float = 0.25,
        follow: bool = True,
        watch_trainer: bool = False,
        detached: DetachedTrainer | None = None,
        idle_s: float = IDLE_S,
    ) -> None:
        self.run_dir = str(run_dir)
        path = Path(run_dir) / EVENTS if (watch_trainer or detached) else events_path(run_dir)
        self.reader = EventReader(path)
        self.poll_s = poll_s
        self.follow = follow
        self.follows_trainer = watch_trainer or detached is not None
        self.detached = detached
        #: lock_status of the run directory (follows_trainer only), refreshed about once a second.
        self.trainer: dict[str, Any] = {}
        #: Status line for the app; None when there is nothing to say.
        self.watch: StatusLine | None = None
        self._generation = 0
        self._checked = -LOCK_CHECK_S
        self._saw_finish = False
        self._closed = False
        self.send_error = ""
        self.idle_s = idle_s
        self._grew_at = time.monotonic()

    @property
    def bad_lines(self) -> int:
        return self.reader.bad_lines

    @property
    def trainer_pid(self) -> int | None:
        pid = self.trainer.get("pid") if self.trainer.get("state") in ("live", "starting") else None
        return pid if isinstance(pid, int) else None

    def start(self) -> None:
        if self.follows_trainer:
            self._check_trainer(force=True)

    def read(self, timeout: float) -> list[Event | FeedReset]:
        events: list[Event | FeedReset] = list(self.reader.read())
        if self.reader.generation != self._generation:  # replaced: what came before is void
            self._generation = self.reader.generation
            self._saw_finish = False
            events.insert(0, FEED_RESET)
        if any(isinstance(e, dict) and e.get("type") == "sweep_finished" for e in events):
            self._saw_finish = True
        if self.follows_trainer:
            self._check_trainer()
        elif self.follow:
            self._check_idle(bool(events))
        if not events and timeout > 0:
            time.sleep(min(timeout, self.poll_s))  # ~4 polls a second while following
        return events

    def _check_idle(self, grew: bool) -> None:
        """Plain replay: after idle_s without growth, say whether anyone still writes the run."""
        now = time.monotonic()
        if grew or self._saw_finish:
            self._grew_at, self.watch = now, None
            return
        if now - self._grew_at < self.idle_s or now - self._checked < LOCK_CHECK_S:
            return
        self._checked = now
        if trainer_state(Path(self.run_dir)).get("state") == "live":
            self.watch = None  # a trainer holds it (between two blocks of a slow run): following
        else:
            self.watch = StatusLine(
                f"replay · no trainer writes this run and its sweep did not finish · resume with "
                f"{trainer_command('resume', self.run_dir)}",
                Severity.WARNING,
            )

    def _check_trainer(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < LOCK_CHECK_S:
            return
        self._checked = now
        self.trainer = trainer_state(Path(self.run_dir), self.detached)
        self.watch = describe(self.trainer, self.run_dir, self._saw_finish)

    def ended(self) -> FeedEnd | None:
        if self._closed:
            return FeedEnd("closed")
        if not self.reader.at_end:
            return None
        if self.follows_trainer:
            # A live lock (or our trainer still starting) means more may come, even after a
            # sweep_finished: a resume rewrites the file. A stale or missing lock is shown, and
            # followed on, since the user may resume the sweep from another terminal.
            self._check_trainer(force=True)
            state = self.trainer.get("state")
            if state in ("live", "starting"):
                return None
            if self._saw_finish:
                return FeedEnd("finished")
            code = self.trainer.get("exitcode")
            if code not in (None, 0) and self.reader.lines == 0:
                how = TrainerExit(code).describe()
                tail = log_tail(Path(self.run_dir) / LOG_FILE)
                log = Path(self.run_dir) / LOG_FILE
                return FeedEnd(
                    "died",
                    f"the detached trainer ended ({how}){': ' + tail if tail else ''} (full log: {log})",
                )
            return None
        if self._saw_finish:
            return FeedEnd("finished")
        if not self.follow:
            return FeedEnd("finished", "the sweep did not finish in this run directory")
        return None

    @property
    def controllable(self) -> bool:
        """A live trainer writes this run and made its control file: pause and split reach it."""
        return (
            self.follows_trainer
            and self.trainer.get("state") == "live"
            and (Path(self.run_dir) / CONTROLS).is_file()
        )

    def send(self, message: dict[str, Any]) -> None:
        """To a live trainer, through its run directory's control file (one JSON line, appended; the
        file is never created here); a recorded sweep has nothing to control. `send_error` says why
        a control did not go out ("" when it did)."""
        self.send_error = ""
        if not self.controllable:
            return
        path = Path(self.run_dir) / CONTROLS
        try:
            append_line(path, json.dumps(message))
        except OSError as exc:
            self.send_error = (
                f"cannot send {message.get('cmd')} to the trainer: {path}: {exc.strerror or exc} "
                "(only the trainer's user can control it)"
            )

    def close(self) -> None:
        self._closed = True


def append_line(path: Path, line: str) -> None:
    """Append one line to an existing regular file (never created, never through a link)."""
    flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)
