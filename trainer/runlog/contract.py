"""The run directory and event contract, defined once: file names, event types, statuses, columns (the
types a reader checks each event's fields against are trainer/runlog/field_types.py).

Every reader and writer (the trainer, resume, report, the app) takes these names from here; the
reference for users is docs/run-directory.md. Contract rule: add types, fields and columns freely,
rename none.

Constants are plain `str` (not an Enum), so they compare equal to what a JSON line holds and
format as themselves in messages.
"""

from __future__ import annotations

from typing import Any, Final

#: One event: a JSON-safe dict with at least `type` (and `t`, and `run` for run events).
Event = dict[str, Any]

# -- run-directory file names ------------------------------------------------------------------

EVENTS: Final = "events.jsonl"  # one JSON event per line, the source of truth
SUMMARY: Final = "summary.csv"  # one row per run, rewritten atomically as runs finish
CONFIG: Final = "config.toml"  # the resolved config, every key
CHECKPOINTS: Final = "checkpoints"  # <run>.pt per run (folder)
LOCK: Final = "trainer.lock"  # while a trainer writes the directory
REPORT: Final = "report.md"  # written by `python -m trainer report`
ERRORS: Final = "errors.log"  # tracebacks of runs that failed unexpectedly
TRAINER_LOG: Final = "trainer.log"  # the output of a detached trainer (bstui --detach)
#: Commands from viewers that did not start the trainer (bstui --attach): one JSON object a line,
#: appended; made owner-only (0600) by the trainer, so only its user can control it.
CONTROLS: Final = "controls.jsonl"

#: What `--force` removes: the files of the previous run (never config.toml, rewritten anyway, nor
#: trainer.log, which a detached trainer writes before it takes the directory).
RUN_FILES: Final = (EVENTS, SUMMARY, ERRORS, REPORT)

# -- event types ----------------------------------------------------------------------------------


class EventType:
    """The `type` of every event (a namespace of str constants)."""

    SWEEP_STARTED: Final = "sweep_started"
    SWEEP_RESUMED: Final = "sweep_resumed"
    RUN_STARTED: Final = "run_started"
    LOSSES: Final = "losses"
    EPOCH_END: Final = "epoch_end"
    MODE_CHANGED: Final = "mode_changed"
    PAUSED: Final = "paused"
    TARGET_REACHED: Final = "target_reached"
    RUN_FINISHED: Final = "run_finished"
    SWEEP_FINISHED: Final = "sweep_finished"
    #: Live only (the app's feed; never written to events.jsonl): what the trainer is doing before
    #: its first loss point: "loading torch", "generating synthetic-digits", "capturing CUDA graph".
    STARTUP: Final = "startup"
    EVALUATION: Final = "evaluation"  # an evaluation on the evaluation slice, within an epoch or at its end
    NOISE_PROBE: Final = "noise_probe"  # a reading of the batch-independent gradient-noise probe
    #: A fused group ended (trainer.engine.fuse): its runs, steps and own wall and compute time.
    FUSED_GROUP: Final = "fused_group"
    #: The control file (controls.jsonl) stopped working, or works again: `working`, and `reason`.
    CONTROLS_CHANGED: Final = "controls"
    #: The time of one training step of a kind of run trained alone (trainer.sweep.calibrate), measured before
    #: the sweep trains, outside every run's clocks; one per kind of step, reused by `resume`.
    STEP_TIME: Final = "step_time"
    #: Branched B_crit (trainer.sweep.branch): one branch point's fit, and the whole curve with its schedule.
    BRANCH_POINT: Final = "branch_point"
    BRANCH_RESULT: Final = "branch_result"
    #: A scheduled run (sweep.batch_schedule) trains on at another batch size: iter, samples, batch_size, lr.
    BATCH_SIZE_CHANGED: Final = "batch_size_changed"


EVENT_TYPES: Final = (
    EventType.SWEEP_STARTED,
    EventType.SWEEP_RESUMED,
    EventType.RUN_STARTED,
    EventType.LOSSES,
    EventType.EPOCH_END,
    EventType.MODE_CHANGED,
    EventType.PAUSED,
    EventType.TARGET_REACHED,
    EventType.RUN_FINISHED,
    EventType.SWEEP_FINISHED,
    EventType.STARTUP,
    EventType.EVALUATION,
    EventType.NOISE_PROBE,
    EventType.FUSED_GROUP,
    EventType.CONTROLS_CHANGED,
    EventType.STEP_TIME,
    EventType.BRANCH_POINT,
    EventType.BRANCH_RESULT,
    EventType.BATCH_SIZE_CHANGED,
)
#: Events sent to the live feed only: a run directory never records them (they describe this
#: process's start-up, not the sweep).
LIVE_ONLY: Final = frozenset({EventType.STARTUP})
#: Events about the whole sweep: they carry no `run`.
SWEEP_EVENTS: Final = (
    EventType.SWEEP_STARTED,
    EventType.SWEEP_RESUMED,
    EventType.SWEEP_FINISHED,
    EventType.PAUSED,
    EventType.FUSED_GROUP,
    EventType.CONTROLS_CHANGED,
    EventType.STEP_TIME,
    EventType.BRANCH_POINT,
    EventType.BRANCH_RESULT,
)

# -- statuses -------------------------------------------------------------------------------------


class RunStatus:
    """`run_finished.status`, and a summary row's `status` (pending/running before it finished)."""

    DONE: Final = "done"
    DIVERGED: Final = "diverged"
    OOM: Final = "oom"
    STOPPED: Final = "stopped"
    FAILED: Final = "failed"
    COLLAPSED: Final = "collapsed"  # trained, but its accuracy fell back to chance or it never learned
    PENDING: Final = "pending"  # summary.csv only: not started yet
    RUNNING: Final = "running"  # summary.csv only: started (or resumed), not finished


RUN_STATUSES: Final = (
    RunStatus.DONE,
    RunStatus.DIVERGED,
    RunStatus.OOM,
    RunStatus.STOPPED,
    RunStatus.FAILED,
    RunStatus.COLLAPSED,
)
#: Finished runs whose result stands: `resume` keeps them; stopped and failed runs train again.
KEPT_STATUSES: Final = (RunStatus.DONE, RunStatus.DIVERGED, RunStatus.OOM, RunStatus.COLLAPSED)


class SweepStatus:
    """`sweep_finished.status`."""

    DONE: Final = "done"
    STOPPED: Final = "stopped"
    FAILED: Final = "failed"


SWEEP_STATUSES: Final = (SweepStatus.DONE, SweepStatus.STOPPED, SweepStatus.FAILED)

# -- summary.csv ----------------------------------------------------------------------------------

#: The columns of summary.csv, in order (add only). Summaries in events hold more fields.
SUMMARY_FIELDS: Final = [
    "run",
    "batch_size",
    "lr",
    "split_chunks",
    "status",
    "epochs",
    "best_test_acc",
    "time_to_target_s",
    "compute_to_target_s",
    "iters_to_target",
    "samples_per_s",
    "mean_epoch_wall_s",
    "mean_epoch_compute_s",
    # the last full-test-set accuracy, and the crossing of the target as an interval (the
    # last evaluation below it; the hit is iters/time/compute_to_target above)
    "final_test_acc",
    "iters_to_target_lo",
    "time_to_target_lo_s",
    "compute_to_target_lo_s",
    "samples_to_target",
    "samples_to_target_lo",
    "optimizer_steps_to_target",
    "effective_lr",
    # which evaluations best_test_acc and last_test_acc are of (trainer/analysis/accuracy.py): "slice" (the
    # evaluation slice, eval_samples images) in run directories that record it
    "last_test_acc",
    "eval_set",
    "eval_samples",
    # the time to target as if trained alone: batches to the target x the step time alone (trainer.sweep.calibrate)
    "time_alone_to_target_s",
    "time_alone_to_target_lo_s",
    "step_alone_s",
]

# -- trainer.lock ---------------------------------------------------------------------------------

#: The fields of trainer.lock (one JSON object): who writes the directory.
LOCK_FIELDS: Final = ("pid", "hostname", "started", "command", "token")
