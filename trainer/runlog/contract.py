"""The run directory and event contract, defined once: file names, event types, statuses, columns.

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
    NOISE_PROBE: Final = "noise_probe"  # a reading of the batch-independent gradient-noise probe (issue 13)
    #: A fused group ended (issue 15, trainer.engine.fuse): its runs, steps and own wall and compute time.
    FUSED_GROUP: Final = "fused_group"
    #: The control file (controls.jsonl) stopped working, or works again: `working`, and `reason`.
    CONTROLS_CHANGED: Final = "controls"
    #: The time of one training step of a kind of run trained alone (trainer.sweep.calibrate), measured before
    #: the sweep trains, outside every run's clocks; one per kind of step, reused by `resume`.
    STEP_TIME: Final = "step_time"
    #: Branched B_crit (trainer.sweep.branch): one branch point's fit, and the whole curve with its schedule.
    BRANCH_POINT: Final = "branch_point"
    BRANCH_RESULT: Final = "branch_result"


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
    # issue 13: the last full-test-set accuracy, and the crossing of the target as an interval (the
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

# -- field types, for readers ---------------------------------------------------------------------
# A reader treats an event whose fields have the wrong type as unreadable (counted, reported).
# Only fields present are checked (an event may lack any of them); fields not listed are free.
# Kinds: "str", "int", "num" (int or float, never bool), "bool", "dict", "list"; a trailing "?"
# also allows null (the trainer writes NaN and infinities as null); "list[num?]" a list of such;
# "row" a dict with a str `run` whose listed summary fields have their types; "list[row]" of such;
# "list[str]" a list of strings.

COMMON_FIELDS: Final = {"type": "str", "t": "num", "run": "str"}

ROW_FIELDS: Final = {  # a run's summary: results are any number (analyses take floats)
    "run": "str",
    "batch_size": "num",
    "lr": "num?",
    "split_chunks": "num?",
    "status": "str?",
    "epochs": "num?",
    "best_test_acc": "num?",
    "time_to_target_s": "num?",
    "compute_to_target_s": "num?",
    "iters_to_target": "num?",
    "samples_per_s": "num?",
    "mean_epoch_wall_s": "num?",
    "mean_epoch_compute_s": "num?",
    "seed": "num?",
    "samples_to_target": "num?",
    "loss_diff_std": "num?",
    "grad_cos": "num?",
    "b_simple": "num?",
    "variant": "str?",
    "optim": "str?",
    "micro_batch": "num?",
    "final_test_acc": "num?",
    "iters_to_target_lo": "num?",
    "samples_to_target_lo": "num?",
    "time_to_target_lo_s": "num?",
    "compute_to_target_lo_s": "num?",
    "optimizer_steps": "num?",
    "optimizer_steps_to_target": "num?",
    "optimizer_steps_to_target_lo": "num?",
    "effective_lr": "num?",
    "collapsed_at_iter": "num?",
    "collapsed_at_epoch": "num?",
    "collapse_reason": "str?",
    "b_simple_lo": "num?",
    "b_simple_hi": "num?",
    "b_simple_undefined": "num?",
    "b_simple_readings": "num?",
    "b_simple_from_samples": "num?",
    "b_simple_to_samples": "num?",
    "b_simple_source": "str?",
    "last_test_acc": "num?",
    "eval_set": "str?",
    "eval_samples": "num?",
    "step_alone_s": "num?",
    "step_alone_s_lo": "num?",
    "step_alone_s_hi": "num?",
    "time_alone_to_target_s": "num?",
    "time_alone_to_target_lo_s": "num?",
    "b_simple_target": "num?",
    "b_simple_target_lo": "num?",
    "b_simple_target_hi": "num?",
    "b_simple_target_samples": "num?",
    "b_simple_target_readings": "num?",
    "b_simple_target_undefined": "num?",
}

EVENT_FIELDS: Final = {
    EventType.SWEEP_STARTED: {
        "runs": "list[row]",
        "config": "dict",
        "device": "str?",
        "dataset": "str?",
        "train_samples": "int?",
        "test_samples": "int?",
        "run_dir": "str?",
    },
    EventType.SWEEP_RESUMED: {
        "runs": "list",
        "kept": "list[str]",
        "dropped_lines": "int?",
        "skipped_lines": "int?",
        "resume": "int?",
    },
    EventType.RUN_STARTED: {
        "batch_size": "int",
        "lr": "num",
        "split_chunks": "int",
        "iters_per_epoch": "int",
        "epochs": "int?",
        "seed": "int?",
        "momentum": "num?",
        "resumed_from_epoch": "int?",
        "eval_every": "int?",
        "eval_samples": "int?",
        "gns_probe_every": "int?",
        "eval_set": "str?",
        "eval_slice_seed": "int?",
        "test_samples": "int?",
        "eval_se_max": "num?",
        "fused": "str?",
        "fused_runs": "list[str]?",
        "fused_reason": "str?",
        "branch": "dict?",
    },
    EventType.LOSSES: {"first_iter": "int", "values": "list[num?]"},
    EventType.EPOCH_END: {
        "epoch": "int",
        "iters": "int?",
        "samples": "int?",
        "wall_s": "num?",
        "compute_s": "num?",
        "data_s": "num?",
        "train_loss": "num?",
        "test_loss": "num?",
        "test_acc": "num?",
        "samples_per_s": "num?",
        "lr": "num?",
        "total_iters": "int?",
        "total_samples": "int?",
        "loss_diff_std": "num?",
        "split_chunks": "int?",
        "grad_cos": "num?",
        "b_simple": "num?",
        "eval_set": "str?",
    },
    EventType.MODE_CHANGED: {"iter": "int?", "split_chunks": "int?", "reason": "str?", "requested": "int?"},
    EventType.PAUSED: {"paused": "bool", "run_waiting": "str?", "iter": "int?"},
    EventType.TARGET_REACHED: {
        "epoch": "int?",
        "iter": "int?",
        "samples": "int?",
        "wall_s": "num?",
        "compute_s": "num?",
        "test_acc": "num?",
        "optimizer_steps": "int?",
        "iter_lo": "int?",
        "samples_lo": "int?",
        "wall_s_lo": "num?",
        "compute_s_lo": "num?",
        "optimizer_steps_lo": "int?",
        "source": "str?",
    },
    EventType.RUN_FINISHED: {"status": "str", "reason": "str?", "summary": "row", "traceback": "str?"},
    EventType.EVALUATION: {
        "epoch": "int",
        "iter": "int",
        "samples": "int",
        "test_acc": "num?",
        "test_loss": "num?",
        "eval_samples": "int?",
        "train_loss": "num?",
        "wall_s": "num?",
        "compute_s": "num?",
        "optimizer_steps": "int?",
        "eval_set": "str?",
        "test_acc_se": "num?",
        "epoch_end": "bool?",
    },
    EventType.NOISE_PROBE: {
        "iter": "int",
        "samples": "int",
        "g2": "num?",
        "trace": "num?",
        "probe_size": "int?",
        "chunk_size": "int?",
        "window_samples": "int?",
        "b_simple": "num?",
        "b_simple_lo": "num?",
        "b_simple_hi": "num?",
        "b_simple_undefined": "num?",
        "b_simple_readings": "int?",
        "b_simple_from_samples": "int?",
        "b_simple_to_samples": "int?",
        "gns_estimates": "int?",
        "loss": "num?",
        "b_simple_at_samples": "num?",
    },
    EventType.STARTUP: {"stage": "str", "fraction": "num?"},  # live only: never in events.jsonl
    EventType.FUSED_GROUP: {
        "group": "str",
        "runs": "list[str]",
        "batch_size": "int?",
        "steps": "int?",
        "wall_s": "num?",
        "compute_s": "num?",
        "continues_alone": "str?",
    },
    EventType.CONTROLS_CHANGED: {"working": "bool", "reason": "str?"},
    EventType.STEP_TIME: {
        "key": "str",
        "batch_size": "int?",
        "runs": "list[str]",
        "step_s": "num?",
        "step_s_lo": "num?",
        "step_s_hi": "num?",
        "steps": "int?",
        "blocks": "int?",
        "block_steps": "int?",
        "warmup_steps": "int?",
        "cost_s": "num?",
        "device": "str?",
        "fast_path": "str?",
        "cpu_threads": "int?",
        "reason": "str?",
    },
    EventType.BRANCH_POINT: {
        "base_run": "str",
        "epoch": "int",
        "iters": "int",
        "samples": "int",
        "loss": "num?",
        "branches": "list",
        "determined": "bool?",
        "B_crit": "num?",
        "B_crit_lo": "num?",
        "B_crit_hi": "num?",
        "b_simple": "num?",
    },
    EventType.BRANCH_RESULT: {
        "base_run": "str",
        "points": "list",
        "schedule": "list",
        "megatron": "str?",
        "expected": "dict?",
    },
    EventType.SWEEP_FINISHED: {
        "status": "str",
        "reason": "str?",
        "summaries": "list[row]",
        "scaling": "dict?",
    },
}
