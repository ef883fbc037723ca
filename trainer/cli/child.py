"""The trainer as the app's subprocess (started with the `spawn` context).

`run_child` writes the run directory exactly as `python -m trainer run` does and
puts every event on `event_queue` too (the app's live feed); it obeys the control
queue (pause, resume, stop, split). Errors the user caused arrive as a
`sweep_finished` event with status `failed` and a `reason`, so the app can say why.
SIGTERM and SIGHUP are a stop like the app's own (trainer.runlog.controls.StopSignals): the runs end
`stopped` and resumable, summary.csv is written and the lock released.

The trainer outlives its viewer: when the app leaves (`d`, or `q` before the stop is done) it sends
{"cmd": "detach"}; when it dies (crash, SSH drop) the parent watch in tui.feeds.bridge notices. Either
way `HEADLESS.go()` drops the live feed and moves the trainer's output into the run directory's
trainer.log, and the sweep trains on; the run directory was always the record.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from trainer.config import ConfigError, load_config
from trainer.runlog import TRAINER_LOG, Emitter, EventType, QueueSink, SweepStatus, open_append
from trainer.runlog.controls import REQUEST_SIGNALS, ControlFile, Controls, StopSignals, listen


class Headless:
    """The switch from "the app's trainer" to "a trainer on its own" (once, from any thread)."""

    def __init__(self) -> None:
        self.feed: QueueSink | None = None
        self.run_dir: Path | None = None
        self.log_path = ""  # where tui.feeds.bridge sent this process's output while the app watched
        self.gone = False
        self._lock = threading.Lock()

    def go(self) -> None:
        """The app is gone: no more live feed; output into the run directory (now, or once it is open)."""
        with self._lock:
            if self.gone:
                return
            self.gone = True
            if self.feed is not None:
                self.feed.detach()
            if self.run_dir is not None:
                self._log_into(self.run_dir)

    def opened(self, run_dir: Path) -> None:
        """The run directory exists: if the app already left, the output goes there from now on."""
        with self._lock:
            self.run_dir = run_dir
            if self.gone:
                self._log_into(run_dir)

    def _log_into(self, run_dir: Path) -> None:
        """Append what the trainer wrote so far, then point stdout and stderr at run_dir/trainer.log."""
        try:
            with open_append(run_dir / TRAINER_LOG) as log:
                if self.log_path:
                    try:
                        with open(self.log_path, encoding="utf-8", errors="replace") as old:
                            log.write(old.read())
                    except OSError:
                        pass
                log.write(
                    f"bstui: the viewer left at {time.strftime('%Y-%m-%d %H:%M:%S')}; "
                    "the sweep trains on without it (bstui --attach shows it)\n"
                )
                log.flush()
                for stream in (1, 2):
                    os.dup2(log.fileno(), stream)
        except OSError:
            return  # the output stays where it was; the run directory's events are unaffected
        if self.log_path:
            try:
                os.unlink(self.log_path)  # the app that would have removed it is gone
            except OSError:
                pass
            self.log_path = ""


#: This process's switch (one trainer per process).
HEADLESS = Headless()


def headless_hook(log_path: str) -> Callable[[], None]:
    """For tui.feeds.bridge.child_main: where this process's output went, and what to call when the app is gone."""
    HEADLESS.log_path = log_path
    return HEADLESS.go


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
    feed = QueueSink(event_queue)
    HEADLESS.feed = feed
    listen(control_queue, controls, on_detach=HEADLESS.go)
    StopSignals(REQUEST_SIGNALS).install().stop_via(
        controls
    )  # for the process's life: SIGTERM/SIGHUP stop it
    emitter: Emitter | None = None
    lock = None
    live = Emitter([feed])

    def stage(text: str, fraction: float | None = None) -> None:
        """Tell the app what start-up is doing (live only: never recorded)."""
        live.emit(EventType.STARTUP, stage=text, fraction=fraction)

    from trainer.config.user_code import set_reporter

    set_reporter(stage)  # a factory that runs long shows on the start-up line, with its time so far
    try:
        cfg = load_config(config_path, overrides)
        stage("loading torch")
        # Start-up cost: torch loads only once the config is known to be good (a config error is told at once).
        from trainer.data.datasets import DatasetUnavailable
        from trainer.models.builtin import ModelError
        from trainer.runlog import RunDirError, RunDirSink, default_run_dir, open_run_dir, write_config
        from trainer.sweep.driver import run_prepared
        from trainer.sweep.prepare import DeviceUnavailable, preflight, prepare

        # torch.optim's first optimizer imports torch._dynamo (8 s on a 2-core VM with a slow disk):
        # load it here, so the screen says "loading torch" while it takes, not the stage after.
        try:
            import torch._dynamo  # noqa: F401
        except (
            Exception
        ):  # a torch whose compiler cannot load here: nothing to preload, training is unaffected
            pass

        try:
            device = preflight(cfg)
            stage(f"loading {cfg.data.dataset}")
            prepared = prepare(cfg, device=device, stage=stage)
            stage("opening the run directory")
            run_dir, lock = open_run_dir(
                Path(out_dir) if out_dir else default_run_dir(cfg),
                force=force,
                command="bstui (the app's trainer)",
            )
            write_config(run_dir, cfg)
            HEADLESS.opened(run_dir)
        except (DeviceUnavailable, DatasetUnavailable, ModelError, RunDirError) as exc:
            Emitter([feed]).emit(EventType.SWEEP_FINISHED, status=SweepStatus.FAILED, reason=str(exc))
            return
        emitter = Emitter([RunDirSink(run_dir), feed])
        control_file = ControlFile(  # viewers that attach later control it too
            run_dir,
            controls,
            report=lambda working, reason: emitter.emit(
                EventType.CONTROLS_CHANGED, working=working, reason=reason
            ),
        )
        control_file.start()
        try:
            run_prepared(prepared, emitter, controls=controls, run_dir=str(run_dir))
        finally:
            control_file.close()
    except ConfigError as exc:
        Emitter([feed]).emit(
            EventType.SWEEP_FINISHED, status=SweepStatus.FAILED, reason=f"config error: {exc}"
        )
    except Exception as exc:  # noqa: BLE001 - tell the app why, then let the process end
        (emitter or Emitter([feed])).emit(
            EventType.SWEEP_FINISHED,
            status=SweepStatus.FAILED,
            reason=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(),
        )
    finally:
        if emitter is not None:
            emitter.close()
        if lock is not None:
            lock.release()
