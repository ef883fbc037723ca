"""The trainer as the app's subprocess (started with the `spawn` context).

`run_child` writes the run directory exactly as `python -m trainer run` does and
puts every event on `event_queue` too (the app's live feed); it obeys the control
queue (pause, resume, stop, split). Errors the user caused arrive as a
`sweep_finished` event with status `failed` and a `reason`, so the app can say why.
SIGTERM and SIGHUP are a stop like the app's own (trainer.controls.StopSignals): the runs end
`stopped` and resumable, summary.csv is written and the lock released.
"""
from __future__ import annotations

import signal
import traceback
from pathlib import Path
from typing import Any

from trainer.config import ConfigError, load_config
from trainer.controls import REQUEST_SIGNALS, ControlFile, Controls, StopSignals, listen
from trainer.runlog import Emitter, EventType, QueueSink, SweepStatus


def run_child(
    config_path: str | None,
    overrides: list[str],
    out_dir: str | None,
    event_queue: Any,
    control_queue: Any,
    force: bool = False,
) -> None:
    """Entry point of the trainer subprocess; returns when the sweep ends or is stopped."""
    # Ctrl-C in the terminal belongs to the app; the app stops us through the control queue.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    controls = Controls()
    listen(control_queue, controls)
    StopSignals(REQUEST_SIGNALS).install().stop_via(controls)  # for the process's life: SIGTERM/SIGHUP stop it
    feed = QueueSink(event_queue)
    emitter: Emitter | None = None
    lock = None
    live = Emitter([feed])

    def stage(text: str, fraction: float | None = None) -> None:
        """Tell the app what start-up is doing (live only: never recorded)."""
        live.emit(EventType.STARTUP, stage=text, fraction=fraction)

    try:
        cfg = load_config(config_path, overrides)
        stage("loading torch")
        # Start-up cost: torch loads only once the config is known to be good (a config error is told at once).
        from trainer.data import DatasetUnavailable, load_dataset
        from trainer.models import ModelError
        from trainer.runlog import RunDirError, RunDirSink, default_run_dir, open_run_dir, write_config
        from trainer.sweep import DeviceUnavailable, check_dataset, check_model, preflight, run_sweep
        # torch.optim's first optimizer imports torch._dynamo (8 s on a 2-core VM with a slow disk):
        # load it here, so the screen says "loading torch" while it takes, not the stage after.
        try:
            import torch._dynamo  # noqa: F401
        except Exception:  # a torch whose compiler cannot load here: nothing to preload, training is unaffected
            pass

        try:
            device = preflight(cfg)
            stage(f"loading {cfg.data.dataset}")
            dataset = load_dataset(cfg.data, seed=cfg.sweep.seed, stage=stage)
            check_dataset(cfg, dataset)
            check_model(cfg, dataset)
            stage("opening the run directory")
            run_dir, lock = open_run_dir(Path(out_dir) if out_dir else default_run_dir(cfg), force=force,
                                         command="bstui (the app's trainer)")
            write_config(run_dir, cfg)
        except (DeviceUnavailable, DatasetUnavailable, ModelError, RunDirError) as exc:
            Emitter([feed]).emit(EventType.SWEEP_FINISHED, status=SweepStatus.FAILED, reason=str(exc))
            return
        emitter = Emitter([RunDirSink(run_dir), feed])
        control_file = ControlFile(run_dir, controls)  # viewers that attach later control it too
        control_file.start()
        try:
            run_sweep(cfg, emitter, device=device, dataset=dataset, controls=controls, run_dir=str(run_dir))
        finally:
            control_file.close()
    except ConfigError as exc:
        Emitter([feed]).emit(EventType.SWEEP_FINISHED, status=SweepStatus.FAILED, reason=f"config error: {exc}")
    except Exception as exc:  # noqa: BLE001 - tell the app why, then let the process end
        (emitter or Emitter([feed])).emit(EventType.SWEEP_FINISHED, status=SweepStatus.FAILED,
                                          reason=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    finally:
        if emitter is not None:
            emitter.close()
        if lock is not None:
            lock.release()
