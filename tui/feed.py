"""Where the app's events come from: a live trainer, or a run directory on disk.

Every feed implements `Feed` so the app treats them alike: `read()` and `ended()` run in
the app's thread worker; `send()` and `close()` on the UI thread; the attributes are read
on the UI thread.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from trainer.runlog import CONTROLS, EVENTS, Event, UnreadableFile, open_regular
from trainer.runlog.commands import trainer_command
from tui.bridge import Bridge, TrainerExit
from tui.detach import LOG_FILE, DetachedTrainer, describe, trainer_state
from tui.replay import EventReader, events_path
from tui.status import Severity, StatusLine


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


#: How long `r` waits for the old trainer's clean stop before signals end it (a stop is honoured
#: at the next iteration: within 2 s even with multi-second steps, bench/stop.py).
STOP_GRACE_S = 3.0


class LiveFeed:
    """Events from a trainer subprocess; controls go back to it.

    The trainer outlives this feed: `close` (the app ends for any reason but `q`) and `leave` (`d`)
    let it train on headless once it writes a run; `stop_sweep` (`q`) asks it to stop cleanly first;
    `stop_trainer` (`r`) ends it.
    """

    live = True
    follows_trainer = False
    watch: StatusLine | None = None

    def __init__(self, bridge: Bridge, run_dir: str = "") -> None:
        self.bridge = bridge
        self.run_dir = run_dir
        self.bad_lines = 0
        self._saw_finish = False
        self._closed = False

    @property
    def trainer_pid(self) -> int | None:
        return self.bridge.pid()

    def start(self) -> None:
        self.bridge.start()

    def read(self, timeout: float) -> list[Event]:
        events = self.bridge.poll(timeout)
        for event in events:
            if event.get("type") == "sweep_finished":
                self._saw_finish = True
            elif event.get("type") == "sweep_started" and isinstance(event.get("run_dir"), str):
                self.run_dir = self.run_dir or event["run_dir"]
        return events

    def ended(self) -> FeedEnd | None:
        if self._closed:
            return FeedEnd("closed")
        if self.bridge.is_alive():
            return None
        how = TrainerExit(self.bridge.exitcode())
        if self._saw_finish and how.exitcode == 0:
            return FeedEnd("finished")
        tail = trainer_log_tail(self.bridge)
        detail = how.describe() + (f": {tail}" if tail else "")
        log = getattr(self.bridge, "log_path", "")
        if tail and log:
            detail += f" (full log: {log})"
        return FeedEnd("died", detail, killed=how.exitcode is not None and how.exitcode < 0)

    def send(self, message: dict[str, Any]) -> None:
        self.bridge.send(message)

    def stop_sweep(self) -> bool:
        """q: ask the trainer for a clean stop, without waiting for it. True when it had already
        ended (tidied up here); False when it finishes the stop on its own (headless)."""
        if self._closed:
            return not self.bridge.is_alive()
        self.bridge.send({"cmd": "stop"})
        if self.bridge.is_alive():
            self.leave()
            return False
        self.stop_trainer()  # nothing left to stop: the queues and the log are tidied
        return True

    def leave(self) -> None:
        """d (or the app ending): the trainer trains on without this app."""
        self._closed = True
        self.bridge.release()

    def stop_trainer(self) -> None:
        """r: end the trainer (a clean stop first, then signals; within about 2 s)."""
        self._closed = True
        self.bridge.shutdown(grace_s=STOP_GRACE_S)

    def close(self) -> None:
        """The app ends without q: a trainer that writes a run trains on (the run directory is the
        record); one still starting, which has recorded nothing, is ended."""
        if self._closed:
            return
        if self.run_dir and self.bridge.is_alive():
            self.leave()
        else:
            self.stop_trainer()


def trainer_log_tail(bridge: Bridge, lines: int = 1) -> str:
    """The last line(s) the trainer wrote to its log, if the bridge keeps one (the crash's cause)."""
    path = getattr(bridge, "log_path", None)
    return log_tail(Path(path), lines) if path else ""


class FeedReset:
    """In a feed's events: the file was replaced (resume) or truncated; rebuild from scratch."""

    def __repr__(self) -> str:
        return "FEED_RESET"


#: The one marker a ReplayFeed puts before the events of a replaced events.jsonl.
FEED_RESET = FeedReset()

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
