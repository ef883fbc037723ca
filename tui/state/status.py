"""The status line in words, with a severity: a pure function of what the app knows.

The app used to decide how alarming a line was by searching its Rich style for "red"; here the
severity is data, the style is derived from it, and tests call `status_line` directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from rich.text import Text

from trainer.runlog.commands import trainer_command


class Severity(str, Enum):
    """How much a status line asks for attention (and the toast level it maps to)."""

    MUTED = "muted"  # nothing happening yet
    INFO = "info"  # running, following
    OK = "ok"  # finished well
    WARNING = "warning"  # paused, stopped, no trainer writing
    ERROR = "error"  # died, failed, gone


STYLES = {
    Severity.MUTED: "dim",
    Severity.INFO: "bold cyan",
    Severity.OK: "bold green",
    Severity.WARNING: "bold yellow",
    Severity.ERROR: "bold red",
}
#: Textual's notify() levels; None: not worth a toast.
TOAST = {Severity.WARNING: "warning", Severity.ERROR: "error"}


@dataclass(frozen=True)
class StatusLine:
    """One status line: `head` carries the severity's style, `tail` is plain detail after it."""

    head: str
    severity: Severity = Severity.INFO
    tail: str = ""

    @property
    def plain(self) -> str:
        return self.head + self.tail

    def text(self) -> Text:
        return Text.assemble((self.head, STYLES[self.severity]), self.tail)


@dataclass(frozen=True)
class StatusInputs:
    """Everything the status line depends on (the app fills it from its state and feed)."""

    live: bool
    started: bool
    finished: bool
    sweep_status: str = ""
    reason: str = ""
    stopping: bool = False
    died: str | None = None  # why the feed died, when it did
    run_dir: str = ""  # where the sweep is recorded (for the resume command), "" before it is known
    paused: bool = False
    #: What a followed run directory's trainer is doing (--attach / --detach), if anything to say.
    watch: StatusLine | None = None
    #: The trainer's start-up stage ("generating synthetic-digits 40%"), "" when none.
    stage: str = ""


def status_line(s: StatusInputs) -> StatusLine:
    """What the sweep is doing, in words (no clock: snapshots stay stable)."""
    if s.stopping:
        return StatusLine("stopping the trainer…", Severity.WARNING)
    if s.died is not None:
        resume = f" · resume: {trainer_command('resume', s.run_dir)}" if s.run_dir else ""
        return StatusLine("✖ trainer died", Severity.ERROR, f" ({s.died}){resume} · r restarts, q quits")
    prefix = "" if s.live else "replay · "
    if s.finished:
        severity = {"done": Severity.OK, "failed": Severity.ERROR}.get(s.sweep_status, Severity.WARNING)
        why = f": {s.reason}" if s.reason else ""
        # Live, what it found: the scaling view (the report command is in the finish toast and the exit
        # words: the line has no room for it on 80 columns; a replay's footer names c).
        report = " · c scaling" if s.live and s.sweep_status in ("done", "stopped") else ""
        return StatusLine(
            f"{prefix}sweep {s.sweep_status}", severity, why + report + (" · r restarts" if s.live else "")
        )
    if not s.live and s.watch is not None:
        if s.paused and s.started and s.watch.severity is Severity.INFO:  # attached to a live, paused trainer
            return StatusLine("⏸ paused · p resumes", Severity.WARNING, f" · {s.watch.plain}")
        return s.watch
    if not s.started:
        if not s.live:
            return StatusLine(f"{prefix}waiting for events…", Severity.MUTED)
        return StatusLine(f"starting: {s.stage}…" if s.stage else "starting the trainer…", Severity.MUTED)
    if s.live and s.paused:
        return StatusLine("⏸ paused · p resumes", Severity.WARNING)
    if not s.live:
        return StatusLine("replay · following (the sweep has not finished)", Severity.INFO)
    return StatusLine("● running", Severity.INFO, f" · {s.stage}…" if s.stage else "")
