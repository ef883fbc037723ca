"""One sweep trained into its run directory from the console: the progress display, the controls (stop
signals, and viewers' pause, split and stop through the control file), the summary table and the answer
at the end, and the exit code with the line that says how to go on.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from trainer.cli.exits import EXIT_BUG, EXIT_INTERRUPTED, EXIT_IO, EXIT_OK, EXIT_USAGE
from trainer.runlog.commands import trainer_command
from trainer.runlog.contract import ERRORS
from trainer.runlog.controls import VIEWER_STOP, ControlFile, Controls, StopSignals, exit_code, signal_name

if TYPE_CHECKING:
    from trainer.engine.ddp import DistContext
    from trainer.sweep.driver import SweepResult
    from trainer.sweep.prepare import PreparedSweep


def sweep_into(
    run_dir: Path,
    prepared: PreparedSweep,
    console,
    *,
    quiet: bool,
    resume=None,
    ddp: DistContext | None = None,
    signals: StopSignals | None = None,
    trainer: Callable[..., SweepResult] | None = None,
    closing: bool = True,
) -> int:
    """Train (or continue, with `resume`) the sweep into `run_dir`; print the summary; the exit code.
    Under torchrun (`ddp`, rank 0) every run trains data parallel with the other ranks. With
    `signals`, a SIGTERM or SIGHUP from here on stops the sweep as the app's stop does. `trainer` trains
    (trainer.sweep.driver.run_prepared unless given: `python -m trainer branch` gives
    trainer.sweep.branch_from.run_branching, with `resume` what the new directory starts with). After the
    answer, `closing` prints a scheduled run's verdict and the branched B_crit in brief
    (trainer.cli.console.closing_lines)."""
    # Start-up cost: called once a sweep is sure to train (torch and rich are loaded by then anyway).
    import torch
    from rich.console import Console

    from trainer.analysis.answer import answers
    from trainer.cli.console import ConsoleSink, closing_lines, schedules, summary_table
    from trainer.engine.checkpoint import CheckpointError
    from trainer.runlog import (
        Clock,
        Emitter,
        EventType,
        RunDirSink,
        RunDirWriteError,
        RunStatus,
        UnreadableFile,
        read_events,
        read_summary,
    )
    from trainer.sweep.driver import run_prepared
    from trainer.sweep.prepare import device_name

    cfg, device, shard = prepared.given, prepared.device, prepared.shard

    # Piped or captured output gets room for the whole table (a schedule's stages, every interval's end)
    # instead of rich's 80 columns; the table is as wide as its cells, not this.
    out_console = Console(width=None if sys.stdout.isatty() else 400)
    sink = RunDirSink(run_dir, prior=resume.events if resume is not None else ())
    sinks: list = [sink]
    progress = None if quiet else ConsoleSink(console)
    if progress is not None:
        sinks.append(progress)
    clock = None
    if resume is not None:
        clock = Clock(time.perf_counter() - resume.last_t)  # `t` goes on from the last recorded event
        for plan in resume.resumed:
            sink.mark(plan.run_id, RunStatus.RUNNING)
        if progress is not None:  # the recorded header starts the progress display
            progress.emit(
                {
                    **resume.started,
                    "device": device_name(device),
                    "torch": torch.__version__,
                    "run_dir": str(run_dir),
                }
            )
    emitter = Emitter(sinks, clock)
    code = EXIT_OK
    result = None
    write_error: Exception | None = None
    controls = None
    control_file = None
    if signals is not None and signals.enabled:
        controls = Controls()
        signals.stop_via(controls)  # the training loop sees the stop at its next step
        if ddp is None:  # one process: viewers (bstui --attach) pause, split and stop it through the file

            def controls_changed(working: bool, reason: str) -> None:  # from the control file's thread
                emitter.emit(EventType.CONTROLS_CHANGED, working=working, reason=reason)
                if not working:
                    console.print(
                        f"controls from viewers stopped working: {reason}; stop the sweep with "
                        f"kill -TERM {os.getpid()} and resume it",
                        style="yellow",
                        markup=False,
                        soft_wrap=True,
                    )

            control_file = ControlFile(run_dir, controls, report=controls_changed, resume_on_loss=True)
            control_file.start()
    try:
        if resume is not None:
            try:
                sink.write_summary()
            except OSError as exc:
                raise RunDirWriteError(run_dir, exc) from exc
        result = (trainer or run_prepared)(
            prepared,
            emitter,
            run_dir=str(run_dir),
            log=lambda m: console.print(m),
            resume=resume,
            ddp=ddp,
            controls=controls,
        )
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    except RunDirWriteError as exc:
        code, write_error = EXIT_IO, exc
    except CheckpointError as exc:  # found only when the run is rebuilt; the directory stays resumable
        code, write_error = EXIT_USAGE, exc
    finally:
        emitter.close()
        if control_file is not None:
            control_file.close()
    try:
        rows = read_summary(run_dir)
    except (OSError, UnreadableFile):
        rows = []
    try:
        events = read_events(run_dir).events
    except (OSError, UnreadableFile):
        events = []
    out_console.print(summary_table(rows, device=device_name(device), scheduled=schedules(events)))
    if shard is not None:  # its runs are a part of the sweep: the analysis is the whole sweep's
        root = run_dir.parent.parent
        out_console.print(
            f"shard {shard.index}/{shard.count} of the sweep in {root}; the whole sweep, once every "
            f"shard has finished: {trainer_command('report', root)}",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
    elif ddp is None or ddp.is_main:
        if result is not None and result.scaling:
            for sentence in answers(result.scaling, cfg.sweep.target_accuracy, device_name(device)):
                out_console.print(sentence, soft_wrap=True, markup=False, highlight=False)
        if closing:
            for line in closing_lines(events):
                out_console.print(line, soft_wrap=True, markup=False, highlight=False)
    out_console.print(f"run directory: {run_dir}", soft_wrap=True, markup=False)
    if code == EXIT_OK and result is not None and result.status == "done" and (ddp is None or ddp.is_main):
        out_console.print(
            f"report (report.md and plots): {trainer_command('report', run_dir)}",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
    if code == EXIT_OK and result is not None and result.status == "stopped" and signals and signals.received:
        console.print(
            f"stopped by {signal_name(signals.received)}: the run directory is valid up to the stop; "
            f"resume with: {trainer_command('resume', run_dir)}",
            style="yellow",
            markup=False,
            soft_wrap=True,
        )
        return exit_code(signals.received)
    if (
        code == EXIT_OK
        and result is not None
        and result.status == "stopped"
        and controls is not None
        and controls.stop_reason == VIEWER_STOP
    ):
        console.print(
            f"{VIEWER_STOP}: the run directory is valid up to the stop; "
            f"resume with: {trainer_command('resume', run_dir)}",
            style="yellow",
            markup=False,
            soft_wrap=True,
        )
        return EXIT_INTERRUPTED
    if code == EXIT_INTERRUPTED:
        console.print(
            "interrupted: the run directory is valid up to the interruption; "
            f"resume with: {trainer_command('resume', run_dir)}",
            style="yellow",
            markup=False,
            soft_wrap=True,
        )
        return code
    if write_error is not None:
        say_error(console, f"bstui: {write_error}")
        return code
    if result is not None and result.any_failed:
        say_error(console, f"a run failed with an unexpected error; see {run_dir / ERRORS}")
        return EXIT_BUG
    return code


def say_error(console, message: str) -> None:
    """A user-facing error on stderr (no markup: paths may hold brackets)."""
    console.print(message, style="red", markup=False, soft_wrap=True)
