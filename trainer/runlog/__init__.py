"""The run directory and the event contract, in one place (pure Python: the app imports this).

    contract  file names, event types, run and sweep statuses, summary.csv columns, field types
    emit      Clock, Emitter and the in-memory sinks (the app's queue, tests)
    sink      RunDirSink: events.jsonl, summary.csv, errors.log
    files     the one atomic writer, the no-follow appender, the bounded regular-file opener
    reader    the one tolerant event reader (whole file, and the line splitter the app follows with)
    summary   summary.csv text and its tolerant reader
    lock      trainer.lock: RunLock, lock_status
    rundir    where a run directory goes, taking it (--force), config.toml
    errors    RunDirError (user), RunDirLocked, UnreadableFile, RunDirWriteError (disk, mid-sweep)

The reference for users is docs/run-directory.md.
"""

from __future__ import annotations

from trainer.runlog.contract import (
    CHECKPOINTS,
    CONFIG,
    CONTROLS,
    ERRORS,
    EVENT_TYPES,
    EVENTS,
    KEPT_STATUSES,
    LIVE_ONLY,
    LOCK,
    REPORT,
    RUN_STATUSES,
    SUMMARY,
    SUMMARY_FIELDS,
    SWEEP_STATUSES,
    TRAINER_LOG,
    Event,
    EventType,
    RunStatus,
    SweepStatus,
)
from trainer.runlog.emit import Clock, Emitter, EventSink, ListSink, QueueSink, encode, json_safe
from trainer.runlog.errors import RunDirError, RunDirLocked, RunDirWriteError, UnreadableFile
from trainer.runlog.files import ensure_dir, open_append, open_regular, read_bytes, read_text, write_atomic
from trainer.runlog.lock import RunLock, lock_status
from trainer.runlog.reader import EventLog, LineSplitter, parse_event, read_events
from trainer.runlog.rundir import (
    check_layout,
    clear_run,
    create_run_dir,
    default_run_dir,
    holds_run,
    open_run_dir,
    write_config,
)
from trainer.runlog.sink import RunDirSink
from trainer.runlog.summary import read_summary, summary_csv, summary_number, summary_rows

__all__ = [
    "CHECKPOINTS",
    "CONFIG",
    "CONTROLS",
    "ERRORS",
    "EVENTS",
    "EVENT_TYPES",
    "KEPT_STATUSES",
    "LIVE_ONLY",
    "LOCK",
    "REPORT",
    "RUN_STATUSES",
    "SUMMARY",
    "SUMMARY_FIELDS",
    "SWEEP_STATUSES",
    "TRAINER_LOG",
    "Clock",
    "Emitter",
    "Event",
    "EventLog",
    "EventSink",
    "EventType",
    "LineSplitter",
    "ListSink",
    "QueueSink",
    "RunDirError",
    "RunDirLocked",
    "RunDirSink",
    "RunDirWriteError",
    "RunLock",
    "RunStatus",
    "SweepStatus",
    "UnreadableFile",
    "check_layout",
    "clear_run",
    "create_run_dir",
    "default_run_dir",
    "encode",
    "ensure_dir",
    "holds_run",
    "json_safe",
    "lock_status",
    "open_append",
    "open_regular",
    "open_run_dir",
    "read_bytes",
    "parse_event",
    "read_events",
    "read_summary",
    "read_text",
    "summary_csv",
    "summary_number",
    "summary_rows",
    "write_atomic",
    "write_config",
]
