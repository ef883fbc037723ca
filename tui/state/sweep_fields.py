"""The fields of the app's sweep state and what it answers from them (tui.state.sweep.SweepState adds
`apply`; the event handlers of tui.state.events write these fields). No Textual, no torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tui.state.run import RunState


@dataclass(frozen=True)
class Alert:
    """Something worth a toast: a run reached the target, or diverged."""

    kind: str  # target | diverged
    run: str
    #: What happened, after the run's label: "reached 98.1% at iteration 1,200".
    detail: str


@dataclass
class SweepFields:
    """The sweep as the app shows it: header facts, runs in sweep order, status (SweepState applies events to it)."""

    dataset: str = ""
    dataset_note: str = ""
    #: The input pipeline that trains (sweep_started's pipeline; "" from older sweeps), why it is not the
    #: configured one ("" when it is), and the data's size on the device in bytes (None: not recorded).
    pipeline: str = ""
    pipeline_reason: str = ""
    data_bytes: int | None = None
    device: str = ""
    torch: str = ""
    config_path: str = ""
    run_dir: str = ""
    target_accuracy: float | None = None
    epochs: int | None = None
    #: The resolved config of sweep_started (for the lr rules of the scaling view).
    config: dict[str, Any] = field(default_factory=dict)
    #: sweep_finished's scaling analysis (trainer.analysis.scaling.analyse), once the sweep has finished.
    scaling: dict[str, Any] | None = None
    runs: dict[str, RunState] = field(default_factory=dict)
    status: str = "starting"  # starting | running | done | stopped | failed
    #: Why the sweep failed (sweep_finished with status failed), for the status line.
    reason: str = ""
    paused: bool = False
    #: Seconds of the sweep's clock spent paused (ETA counts training time, not pauses), and when the
    #: current pause began (None while not paused).
    paused_s: float = 0.0
    paused_at: float | None = None
    started: bool = False
    finished: bool = False
    #: What the trainer's start-up is doing now ("generating synthetic-digits 40%", "capturing CUDA
    #: graph (bs60)"), from live-only `startup` events; "" once the first loss point of that run is in.
    stage: str = ""
    #: Events that could not be used (wrong shape, unknown run); shown in the UI.
    skipped: int = 0
    #: What the trainer says the user should know (a resume, the control file), newest last: live, a toast.
    notices: list[str] = field(default_factory=list)
    #: The split-backward switch as the trainer last took it: the chunks asked for (1: off), from the
    #: newest mode_changed; 0 while none is recorded (the config's split_backward holds).
    split_requested: int = 0
    #: Why the trainer's control file (controls.jsonl) does not work now ("" while it does), from
    #: `controls` events: an attached viewer's pause, split and stop do not reach the trainer then.
    controls_problem: str = ""
    #: Branched B_crit (trainer.sweep.branch): each branch point's fit in training order, and the whole result
    #: (curve, proposed schedule) once the branches are done; the report shows them.
    branch_points: list[dict[str, Any]] = field(default_factory=list)
    #: The runs that are branches (their run_started carries `branch`): left out of the scaling screen.
    branch_runs: set[str] = field(default_factory=set)
    branch_result: dict[str, Any] | None = None
    #: The runs whose batch size follows a schedule (their run_started carries `batch_schedule`).
    scheduled_runs: set[str] = field(default_factory=set)
    #: Runs that reached the target or diverged since the app last looked (it toasts them).
    alerts: list[Alert] = field(default_factory=list)
    #: The newest event time seen (seconds since the sweep started): "now" for progress and ETA.
    clock: float = 0.0
    #: Grows on every applied event: the UI redraws only when it changed.
    version: int = 0
    #: Each run's step timed alone (a `step_time` event's fields, trainer.sweep.calibrate), by run id.
    step_alone: dict[str, dict[str, Any]] = field(default_factory=dict)

    def mark_lost(self, reason: str, status: str = "failed") -> None:
        """The event source died: unfinished runs end with `status` ("interrupted" when the trainer
        was killed, "failed" when it crashed), everything shown is kept."""
        for run in self.runs.values():
            if run.status in ("waiting", "running"):
                run.status, run.reason = status, reason
        self.status = status
        self.paused = False
        self.version += 1
        for run in self.runs.values():
            run.version += 1

    def split_switch(self) -> tuple[bool, int]:
        """(on, k) of the sweep's split-backward switch: the newest request the trainer recorded, else the
        config's split_backward (k is 0 where neither names one)."""
        k = self.split_requested
        if not k:
            cfg = (
                self.config.get("split_backward")
                if isinstance(self.config.get("split_backward"), dict)
                else {}
            )
            chunks = cfg.get("chunks")
            chunks = chunks if isinstance(chunks, int) and not isinstance(chunks, bool) else 0
            return (bool(cfg.get("enabled")) and chunks > 1, chunks if chunks > 1 else 0)
        return (k > 1, k if k > 1 else 0)

    def run_list(self) -> list[RunState]:
        return list(self.runs.values())
