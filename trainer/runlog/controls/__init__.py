"""Live controls from the app: pause/resume, stop, split-backward on/off; and the watch on the
process that controls this one.

The app puts small dicts on a control queue ({"cmd": "pause"}, {"cmd": "resume"},
{"cmd": "stop"}, {"cmd": "split", "enabled": bool, "chunks": int}). A daemon thread
in the trainer process drains that queue into a `Controls` object (state.py); the training
loop only compares `Controls.version` with the last version it saw, one integer
comparison per iteration, so the hot loop pays nothing for being controllable.

`ControlFile` (file.py, reading lines as lines.py bounds them) does the same for viewers that did not
start the trainer (bstui --attach): they append the same dicts, one JSON line each, to the run
directory's controls.jsonl.

`StopSignals` (signals.py) turns SIGTERM and SIGHUP (a batch scheduler's notice, an SSH drop) into the
same stop request on a `Controls`, for the headless trainer and the app's trainer alike.

Pure (stdlib only). This package's namespace is the surface the trainer and the app import.
"""

from trainer.runlog.controls.file import ControlFile, ControlFileProblem
from trainer.runlog.controls.lines import (
    MAX_CHUNKS,
    MAX_DEPTH,
    MAX_LINE_BYTES,
    READ_BYTES,
    VIEWER_STOP,
    latest_commands,
    latest_in,
    nesting_depth,
    parse_control,
)
from trainer.runlog.controls.signals import (
    REQUEST_SIGNALS,
    STOP_SIGNALS,
    Interrupted,
    StopSignals,
    exit_code,
    interrupt_signal,
    signal_name,
)
from trainer.runlog.controls.state import Controls, StopRequested, listen, watch_parent

__all__ = [
    "MAX_CHUNKS",
    "MAX_DEPTH",
    "MAX_LINE_BYTES",
    "READ_BYTES",
    "REQUEST_SIGNALS",
    "STOP_SIGNALS",
    "VIEWER_STOP",
    "ControlFile",
    "ControlFileProblem",
    "Controls",
    "Interrupted",
    "StopRequested",
    "StopSignals",
    "exit_code",
    "interrupt_signal",
    "latest_commands",
    "latest_in",
    "listen",
    "nesting_depth",
    "parse_control",
    "signal_name",
    "watch_parent",
]
