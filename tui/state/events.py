"""What each event does to the sweep state: one handler per event type (tui.state.sweep.SweepState.apply
calls them, on the fields of tui.state.sweep_fields). A handler raises KeyError, TypeError or ValueError on an event of the wrong shape; `apply`
counts it as skipped.
"""

from __future__ import annotations

from typing import Callable

from trainer.analysis.accuracy import FULL, HEAD, event_eval_set
from trainer.analysis.figures import pct
from trainer.runlog import Event
from tui.state.run import EpochRecord, EvalPoint, NoiseWindow, RunState, opt_float
from tui.state.series import ema_beta, to_float
from tui.state.sweep_fields import Alert, SweepFields


def _run(s: SweepFields, event: Event) -> RunState:
    run = s.runs.get(event["run"])
    if run is None:
        raise KeyError(f"unknown run {event['run']!r}")
    return run


def _on_sweep_started(s: SweepFields, e: Event) -> None:
    runs = e.get("runs") or []
    if not isinstance(runs, list):
        raise TypeError("runs is not a list")
    s.dataset = str(e.get("dataset", ""))
    s.dataset_note = str(e.get("dataset_note") or "")
    _pipeline_fields(s, e)
    s.device = str(e.get("device", ""))
    s.torch = str(e.get("torch", ""))
    s.config_path = str(e.get("config_path") or "")
    s.run_dir = str(e.get("run_dir") or s.run_dir)
    config = e.get("config") if isinstance(e.get("config"), dict) else {}
    sweep = config.get("sweep") if isinstance(config.get("sweep"), dict) else {}
    s.target_accuracy = opt_float(sweep.get("target_accuracy"))
    s.epochs = sweep.get("epochs") if isinstance(sweep.get("epochs"), int) else None
    s.config = config
    s.scaling = None
    s.runs = {}
    for r in runs:
        rid = str(r["run"])
        chunks = int(r.get("split_chunks") or 1)
        s.runs[rid] = RunState(
            run=rid,
            batch_size=int(r["batch_size"]),
            lr=to_float(r.get("lr")),
            split_chunks=chunks,
            initial_chunks=chunks,
            seed=r["seed"] if isinstance(r.get("seed"), int) else None,
            variant=str(r.get("variant") or ""),
            epochs_total=s.epochs,
        )
    s.started = True
    s.finished = False
    s.status = "running"


def _on_run_started(s: SweepFields, e: Event) -> None:
    rid = str(e["run"])
    run = s.runs.get(rid)
    if run is None:  # a run the sweep_started list did not name: still show it
        run = s.runs[rid] = RunState(run=rid, batch_size=int(e["batch_size"]), lr=to_float(e.get("lr")))
    run.batch_size = int(e.get("batch_size", run.batch_size))
    run.lr = to_float(e.get("lr", run.lr))
    run.momentum = opt_float(e.get("momentum"))
    run.split_chunks = int(e.get("split_chunks") or run.split_chunks)
    run.iters_per_epoch = int(e.get("iters_per_epoch") or 0)
    if run.iters_per_epoch:
        run.losses.set_beta(ema_beta(run.iters_per_epoch))
    run.t_started = opt_float(e.get("t"))
    if isinstance(e.get("seed"), int):
        run.seed = e["seed"]
    if isinstance(e.get("epochs"), int) and e["epochs"] > 0:
        run.epochs_total = e["epochs"]
    elif run.epochs_total is None:
        run.epochs_total = s.epochs
    if not run.epochs and not len(run.losses):  # a fresh start (not a resume): the configured chunks
        run.initial_chunks = run.split_chunks
    run.variant = str(e.get("variant") or run.variant)
    run.device = str(e.get("device") or "")
    fused_runs = e.get("fused_runs")
    run.fused_k = len(fused_runs) if e.get("fused") and isinstance(fused_runs, list) else 0
    run.status = "running"
    if isinstance(e.get("branch"), dict):
        s.branch_runs.add(rid)
    if isinstance(e.get("batch_schedule"), list):
        s.scheduled_runs.add(rid)
        if not run.batch_stages:
            run.batch_stages = [(0, 0, run.batch_size)]
        stages = [(int(st["samples"]), int(st["batch_size"])) for st in e["batch_schedule"]]
        run.schedule_stages = [
            {"samples": a, "batch_size": b, "lr": opt_float(st.get("lr"))}
            for (a, b), st in zip(stages, e["batch_schedule"])
        ]
        run.schedule = "→".join(str(b) for _, b in stages)
        total = run.iters_per_epoch * stages[0][1] * (run.epochs_total or 0)  # its samples over all epochs
        ends = [a for a, _ in stages[1:]] + [total]
        run.planned_iters = sum(-(-max(0, min(end, total) - a) // b) for (a, b), end in zip(stages, ends))


def _on_batch_size_changed(s: SweepFields, e: Event) -> None:
    """A scheduled run's batch size changed (sweep.batch_schedule): marked on its plots; its samples axis
    counts each stage's batches at their own size."""
    run = _run(s, e)
    it, samples, size = int(e["iter"]), int(e["samples"]), int(e["batch_size"])
    if size < 1 or it < 0 or samples < 0:
        raise ValueError("batch_size_changed out of range")
    if not run.batch_stages:
        run.batch_stages = [(0, 0, run.batch_size)]
    if run.batch_stages[-1][0] < it:
        run.batch_stages.append((it, samples, size))
    run.batch_size = size
    run.lr = to_float(e.get("lr", run.lr))


def _on_losses(s: SweepFields, e: Event) -> None:
    run = _run(s, e)
    values = e["values"]
    if not isinstance(values, list):
        raise TypeError("values is not a list")
    first = int(e["first_iter"])
    run.losses.put(first, values)
    s.stage = ""  # training has started: start-up is over
    t = opt_float(e.get("t"))
    if t is not None and run.t_started is not None:
        run.time_marks.append((first + len(values), max(0.0, t - run.t_started)))


def _on_epoch_end(s: SweepFields, e: Event) -> None:
    run = _run(s, e)
    record = EpochRecord(
        epoch=int(e["epoch"]),
        iters=int(e.get("iters") or 0),
        samples=int(e.get("samples") or 0),
        wall_s=opt_float(e.get("wall_s")),
        compute_s=opt_float(e.get("compute_s")),
        data_s=opt_float(e.get("data_s")),
        train_loss=opt_float(e.get("train_loss")),
        test_loss=opt_float(e.get("test_loss")),
        test_acc=opt_float(e.get("test_acc")),
        samples_per_s=opt_float(e.get("samples_per_s")),
        total_iters=int(e["total_iters"]) if isinstance(e.get("total_iters"), int) else None,
        loss_diff_std=opt_float(e.get("loss_diff_std")),
        grad_cos=opt_float(e.get("grad_cos")),
        b_simple=opt_float(e.get("b_simple")),
    )
    run.epochs.append(record)
    iters = record.total_iters or sum(ep.iters for ep in run.epochs)
    samples = e.get("total_samples")
    samples = samples if isinstance(samples, int) else sum(ep.samples for ep in run.epochs)
    run.add_eval(EvalPoint(iters, samples, record.test_acc, record.test_loss, event_eval_set(e) or FULL))


def _on_evaluation(s: SweepFields, e: Event) -> None:
    """An evaluation (on the evaluation slice; older run directories: on the test set's first 2,000 images):
    a point of the accuracy and test-loss curves."""
    iters, samples = e["iter"], e["samples"]
    if not isinstance(iters, int) or not isinstance(samples, int):
        raise TypeError("iter and samples must be integers")
    _run(s, e).add_eval(
        EvalPoint(
            iters,
            samples,
            opt_float(e.get("test_acc")),
            opt_float(e.get("test_loss")),
            event_eval_set(e) or HEAD,
        )
    )


def _on_mode_changed(s: SweepFields, e: Event) -> None:
    run = _run(s, e)
    chunks = int(e.get("split_chunks") or 1)
    reason = e.get("reason")
    run.split_refused = str(reason or "")
    requested = e.get("requested")
    if isinstance(requested, int) and not isinstance(requested, bool) and requested >= 1:
        s.split_requested = requested
    elif not reason:  # recorded before `requested`: a switch that took says what was asked
        s.split_requested = chunks
    if chunks != run.split_chunks:
        run.mode_changes.append((int(e["iter"]), chunks))
        run.split_chunks = chunks


def _on_target_reached(s: SweepFields, e: Event) -> None:
    run = _run(s, e)
    first = run.target is None
    run.target = {k: v for k, v in e.items() if k not in ("type", "run")}
    if first:
        acc = opt_float(e.get("test_acc"))
        at = f" at iteration {e['iter']:,}" if isinstance(e.get("iter"), int) else ""
        s.alerts.append(
            Alert(
                "target", run.run, f"reached {pct(acc)}{at}" if acc is not None else f"reached the target{at}"
            )
        )


def _on_run_finished(s: SweepFields, e: Event) -> None:
    run = _run(s, e)
    run.status = str(e["status"])
    run.reason = str(e.get("reason") or "")
    if run.status in ("diverged", "collapsed"):
        s.alerts.append(Alert("diverged", run.run, run.status + (f": {run.reason}" if run.reason else "")))
    if isinstance(e.get("summary"), dict):
        run.summary = e["summary"]


def _on_sweep_finished(s: SweepFields, e: Event) -> None:
    s.status = str(e.get("status") or "done")
    s.reason = str(e.get("reason") or "")
    s.finished = True
    s.paused = False
    if isinstance(e.get("scaling"), dict):
        s.scaling = e["scaling"]
    for run in s.runs.values():
        if run.status in ("waiting", "running"):
            run.status = "stopped"
            run.version += 1


def _on_startup(s: SweepFields, e: Event) -> None:
    text = e["stage"]
    if not isinstance(text, str):
        raise TypeError("stage is not a string")
    fraction = opt_float(e.get("fraction"))
    percent = f" {min(100, max(0, round(100 * fraction)))}%" if fraction is not None else ""
    run = f" ({e['run']})" if isinstance(e.get("run"), str) else ""
    s.stage = f"{text[:80]}{percent}{run}"


def _on_noise_probe(s: SweepFields, e: Event) -> None:
    readings = e.get("b_simple_readings")
    _run(s, e).probe = NoiseWindow(
        opt_float(e.get("b_simple")),
        opt_float(e.get("b_simple_lo")),
        opt_float(e.get("b_simple_hi")),
        opt_float(e.get("b_simple_undefined")),
        readings if isinstance(readings, int) else 0,
    )


def _on_paused(s: SweepFields, e: Event) -> None:
    paused = bool(e["paused"])
    t = opt_float(e.get("t"))
    if t is not None:
        if paused and s.paused_at is None:
            s.paused_at = t
        elif not paused and s.paused_at is not None:
            s.paused_s += max(0.0, t - s.paused_at)
            s.paused_at = None
    s.paused = paused


def _pipeline_fields(s: SweepFields, e: Event) -> None:
    """The pipeline facts of sweep_started / sweep_resumed (absent in sweeps recorded before them)."""
    if "pipeline" in e:
        s.pipeline = str(e.get("pipeline") or "")
        s.pipeline_reason = str(e.get("pipeline_reason") or "")
        size = e.get("data_bytes")
        s.data_bytes = size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None


def _on_sweep_resumed(s: SweepFields, e: Event) -> None:
    """`python -m trainer resume` continues the sweep: it runs again (resumed runs restart their epochs)."""
    runs = e.get("runs") or []
    if not isinstance(runs, list):
        raise TypeError("runs is not a list")
    _pipeline_fields(s, e)  # a resumed sweep checks its data against the device again
    s.status = "running"
    s.finished = False
    s.notices.append(f"sweep resumed: {len(runs)} run(s) continue")


def _on_fused_group(s: SweepFields, e: Event) -> None:
    """A fused group ended: its runs' own rows already carry their share of its time (the report reads
    the group's totals from the file); the app has nothing more to draw from it."""
    if not isinstance(e.get("runs"), list):
        raise TypeError("runs is not a list")


def _on_controls(s: SweepFields, e: Event) -> None:
    """The trainer's control file stopped working, or works again (trainer.runlog.controls.ControlFile)."""
    working, reason = e["working"], str(e.get("reason") or "")
    if not isinstance(working, bool):
        raise TypeError("working is not a bool")
    s.controls_problem = "" if working else (reason or "the control file stopped working")
    s.notices.append(f"controls: {reason}" if working else f"controls stopped working: {s.controls_problem}")


def _on_step_time(s: SweepFields, e: Event) -> None:
    """One kind of step timed alone before the sweep trained: kept for the runs it serves."""
    runs = e["runs"]
    if not isinstance(runs, list):
        raise TypeError("runs is not a list")
    fields = {k: v for k, v in e.items() if k not in ("type", "t")}
    step = opt_float(e.get("step_s"))
    for run in runs:
        if isinstance(run, str):
            s.step_alone[run] = fields
            if run in s.runs and step is not None and step > 0:
                s.runs[run].step_alone_s = step


def _on_branch_point(s: SweepFields, e: Event) -> None:
    """One branch point's B_crit fit (trainer.sweep.branch)."""
    if not isinstance(e.get("branches"), list):
        raise TypeError("branches is not a list")
    s.branch_points.append(e)


def _on_branch_result(s: SweepFields, e: Event) -> None:
    """B_crit over training and the schedule proposed from it (trainer.sweep.branch)."""
    if not isinstance(e.get("points"), list) or not isinstance(e.get("schedule"), list):
        raise TypeError("points or schedule is not a list")
    s.branch_result = e


HANDLERS: dict[str, Callable[[SweepFields, Event], None]] = {
    "sweep_started": _on_sweep_started,
    "sweep_resumed": _on_sweep_resumed,
    "run_started": _on_run_started,
    "losses": _on_losses,
    "epoch_end": _on_epoch_end,
    "mode_changed": _on_mode_changed,
    "target_reached": _on_target_reached,
    "run_finished": _on_run_finished,
    "sweep_finished": _on_sweep_finished,
    "paused": _on_paused,
    "startup": _on_startup,
    "evaluation": _on_evaluation,
    "noise_probe": _on_noise_probe,
    "fused_group": _on_fused_group,
    "controls": _on_controls,
    "step_time": _on_step_time,
    "branch_point": _on_branch_point,
    "branch_result": _on_branch_result,
    "batch_size_changed": _on_batch_size_changed,
}
