"""RunDirSink: the run directory as an event sink (events.jsonl, summary.csv, errors.log)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from trainer.runlog.contract import ERRORS, EVENTS, LIVE_ONLY, SUMMARY, Event, EventType, RunStatus
from trainer.runlog.emit import encode
from trainer.runlog.errors import RunDirWriteError, not_writable
from trainer.runlog.files import open_append, write_atomic
from trainer.runlog.summary import summary_csv


class RunDirSink:
    """Writes events to events.jsonl and keeps summary.csv and errors.log current.

    Each event is written as one whole line. The file is flushed on every event
    except `losses` (the high-rate one), and always at `epoch_end`, so a reader
    never sees more than the losses of the current epoch missing.

    `prior`: the events already in the directory (a resumed sweep), so summary.csv
    keeps the rows of runs this process does not train. A failed write (disk full,
    directory gone) raises RunDirWriteError once; the sink then writes nothing more.
    """

    FLUSH_ON = frozenset(
        {
            EventType.SWEEP_STARTED,
            EventType.SWEEP_RESUMED,
            EventType.RUN_STARTED,
            EventType.EPOCH_END,
            EventType.MODE_CHANGED,
            EventType.TARGET_REACHED,
            EventType.RUN_FINISHED,
            EventType.SWEEP_FINISHED,
            EventType.PAUSED,
            EventType.CONTROLS_CHANGED,  # a viewer must hear at once that its controls are lost
        }
    )

    def __init__(self, path: Path | str, prior: Iterable[Event] = ()) -> None:
        self.path = Path(path)
        self._rows: dict[str, dict[str, Any]] = {}
        self.error: RunDirWriteError | None = None
        for event in prior:
            self._track(event)
        try:
            self._fh = open_append(self.path / EVENTS)
        except OSError as exc:
            raise not_writable(self.path, exc) from exc

    def emit(self, event: Event) -> None:
        if self.error is not None or event["type"] in LIVE_ONLY:
            return  # nothing can be recorded any more (the error was raised once already); or live only
        try:
            self._write(encode(event) + "\n")
            kind = event["type"]
            if kind in self.FLUSH_ON:
                self._fh.flush()
            if kind == EventType.EPOCH_END:
                # On disk before the epoch's checkpoint is, so a checkpoint never runs ahead of the
                # events it continues (even after a power cut); once per epoch, outside the timers.
                os.fsync(self._fh.fileno())
            self._track(event)
            if kind == EventType.RUN_FINISHED and event.get("traceback"):
                with open_append(self.path / ERRORS) as fh:
                    fh.write(f"== {event.get('run')}: {event.get('reason', '')}\n{event['traceback']}\n")
            if kind in (EventType.RUN_FINISHED, EventType.SWEEP_FINISHED):
                self.write_summary()
        except OSError as exc:
            self.error = RunDirWriteError(self.path, exc)
            raise self.error from exc

    def _write(self, text: str) -> None:
        """Append text to events.jsonl (one seam, so tests can make the disk full)."""
        self._fh.write(text)

    def _track(self, event: Event) -> None:
        """Keep the summary rows current with an event (written or already on disk; read events
        were checked by the reader, so a row is a dict with a str `run`)."""
        kind = event.get("type")
        if kind == EventType.SWEEP_STARTED:
            for spec in event.get("runs") or []:
                if isinstance(spec, dict) and isinstance(spec.get("run"), str):
                    self._rows[spec["run"]] = {**spec, "status": RunStatus.PENDING}
        elif kind == EventType.RUN_FINISHED and isinstance(event.get("run"), str):
            summary = event.get("summary")
            self._rows[event["run"]] = summary if isinstance(summary, dict) else {"run": event["run"]}
        elif kind == EventType.SWEEP_FINISHED:
            for row in event.get("summaries") or []:
                if isinstance(row, dict) and isinstance(row.get("run"), str):
                    self._rows[row["run"]] = row

    def mark(self, run_id: str, status: str) -> None:
        """Set a row's status without an event (a resumed run is `running` again)."""
        self._rows.setdefault(run_id, {"run": run_id})["status"] = status

    def write_summary(self) -> None:
        write_atomic(self.path / SUMMARY, summary_csv(list(self._rows.values())))

    def close(self) -> None:
        if self._fh.closed:
            return
        try:
            self._fh.close()  # flushes; after a failed write the rest may not fit either
        except OSError:
            pass
