"""Several GPUs, several sweep points (`sweep.parallel = "auto"`): independent runs of a sweep
train at the same time, one worker process per GPU.

Each worker owns one device and trains whole runs one after another (within a worker the schedule
is sequential), so each run's timings are its own GPU's. Runs wait in one queue, longest first
(`queue_order`: the most iterations per epoch), and a worker takes the next as soon as it is free,
which balances the GPUs without a cost model. Workers send their events to this process, which
writes them to the sweep's sinks (run directory, console, the app) with `worker` and `device` in
run_started; the live controls (pause, stop, split) are passed on to every worker.

Not with `resume` (a resumed sweep runs in one process) or under torchrun. The scheduling and
event plumbing run the same on CPU processes (`devices=["cpu", "cpu"]`), which is how CI tests them.
The sweep (trainer.sweep.driver) calls this module; it never calls the sweep back: a worker trains `Run`s.
"""

from __future__ import annotations

import os
import queue as queue_mod
import signal
import traceback
from typing import Any, Callable

import torch
import torch.multiprocessing as mp

from trainer.data.datasets import Dataset
from trainer.engine.checkpoint import CheckpointWriter
from trainer.engine.evaluation import prepare_test
from trainer.engine.group import Group
from trainer.engine.run import Run, SweepRun
from trainer.plan import RunSettings, RunSpec, queue_order
from trainer.runlog import Clock, Emitter, Event, QueueSink
from trainer.runlog.controls import (
    REQUEST_SIGNALS,
    Controls,
    StopRequested,
    StopSignals,
    listen,
    watch_parent,
)

POLL_S = 0.2  # how often the parent looks at its workers and the controls while no event comes


def parallel_devices(setting: str, device: torch.device, cuda_count: int) -> list[str]:
    """The devices a sweep's runs are spread over: one per visible GPU for "auto" on CUDA with at
    least two GPUs; [] (one process, as usual) for "off", a CPU sweep, or a single GPU."""
    if setting != "auto" or device.type != "cuda" or cuda_count < 2:
        return []
    return [f"cuda:{i}" for i in range(cuda_count)]


class RemoteRun(SweepRun):
    """What the sweep knows of a run that trains in a worker: its id, its status and its summary
    (the sweep's view of a run, `trainer.engine.run.SweepRun`, as `Run` is)."""

    def __init__(self, spec: RunSpec, emitter: Emitter, worker: int, device: str) -> None:
        self.spec, self.emitter, self.worker, self.device = spec, emitter, worker, device
        self.status: str | None = None
        self._summary: dict[str, Any] = {
            "run": spec.run_id,
            "batch_size": spec.batch_size,
            "lr": spec.lr,
            "split_chunks": spec.split_chunks,
            "status": "running",
            "seed": spec.seed,
            "variant": spec.variant,
        }

    def summary(self) -> dict[str, Any]:
        return dict(self._summary)

    def recorded(self, event: Event) -> None:
        """The worker's run_finished: the run's status and summary."""
        self.status = event.get("status", "failed")
        self._summary = dict(event.get("summary") or self._summary, status=self.status)

    def finish(self, status: str, reason: str = "", trace: str = "") -> None:
        """End a run whose worker could not (it died, or the sweep was interrupted): emit run_finished here."""
        if self.finished:
            return
        self.status = status
        self._summary["status"] = status
        fields: dict[str, Any] = {"status": status, "reason": reason, "summary": self.summary()}
        if trace:
            fields["traceback"] = trace
        self.emitter.emit("run_finished", run=self.run_id, **fields)


def run_parallel(
    settings: RunSettings,
    specs: list[RunSpec],
    emitter: Emitter,
    devices: list[str],
    dataset: Dataset,
    controls: Controls | None,
    run_dir: str,
    runs: list[RemoteRun],
    slice_samples: int,
    log: Callable[[str], None] = lambda msg: None,
) -> None:
    """Train `specs` on `devices` at once, each run advancing `slice_samples` samples at a time
    between looks at the controls; events go to `emitter`'s sinks. Fills `runs` (in sweep order at
    the end) as runs start, so the caller sees them even when interrupted.

    Ctrl-C stops every worker (their runs end as stopped) and is re-raised once they have ended; a stop
    control ends the same way with StopRequested.
    """
    ctx = mp.get_context("spawn")  # safe with CUDA, and what the app's trainer uses
    specs_q = ctx.Queue()
    events_q = ctx.Queue()
    for spec in queue_order(specs, int(dataset.train.labels.shape[0])):
        specs_q.put(spec)
    for _ in devices:
        specs_q.put(None)  # one end mark per worker
    control_qs = [ctx.Queue() for _ in devices]
    procs = [
        ctx.Process(
            target=_worker,
            name=f"bstui-worker-{i}",
            args=(
                i,
                device,
                settings,
                dataset,
                slice_samples,
                emitter.clock.start,
                specs_q,
                events_q,
                control_qs[i],
                run_dir,
                os.getpid(),
            ),
        )
        for i, device in enumerate(devices)
    ]
    seen_version = _pass_on(controls, control_qs) if controls is not None else -1  # a stop before the start
    for p in procs:
        p.start()
    by_id = {s.run_id: s for s in specs}
    current: dict[int, RemoteRun] = {}  # worker -> the run it trains now
    done: set[int] = set()  # workers whose last message arrived (they may still be exiting)
    interrupted: BaseException | None = None
    try:
        while True:
            try:
                while (event := _get(events_q, POLL_S)) is not None:
                    _forward(event, emitter, by_id, runs, current, done, log)
                    if controls is not None and controls.version != seen_version:
                        seen_version = _pass_on(controls, control_qs)
                if controls is not None and controls.version != seen_version:
                    seen_version = _pass_on(controls, control_qs)
                if any(p.exitcode is not None and i in current for i, p in enumerate(procs)):
                    _drain(
                        events_q, emitter, by_id, runs, current, done, log
                    )  # its last events come before its fate
                    _reap(procs, devices, current)
                # A worker's last message means all its events are here: no need to wait for it to exit.
                if all(i in done or p.exitcode is not None for i, p in enumerate(procs)):
                    break
            except KeyboardInterrupt as exc:  # stop the workers, keep their last events, then re-raise
                interrupted = exc
                for q in control_qs:
                    q.put({"cmd": "stop"})
    finally:
        for i, p in enumerate(procs):
            # A done worker is only tearing down its interpreter: let it, without waiting.
            p.join(timeout=0.05 if i in done else 5)
            if p.is_alive() and i not in done:
                p.terminate()
        _drain(events_q, emitter, by_id, runs, current, done, log)
        _reap(procs, devices, current)
    order = {s.run_id: i for i, s in enumerate(specs)}
    runs.sort(key=lambda r: order[r.run_id])
    if interrupted is not None:
        raise interrupted
    if controls is not None and controls.stop:
        raise StopRequested()  # the sweep ends as stopped, as in one process
    for run in runs:  # every worker has ended; a run none of them finished cannot go on
        run.finish("failed", f"its worker on {run.device} ended without finishing it")


def _get(q: Any, timeout: float) -> Event | None:
    try:
        return q.get(timeout=timeout)
    except queue_mod.Empty:
        return None


def _drain(
    events_q: Any,
    emitter: Emitter,
    by_id: dict[str, RunSpec],
    runs: list[RemoteRun],
    current: dict[int, RemoteRun],
    done: set[int],
    log: Callable[[str], None],
) -> None:
    """Forward every event already sent. A worker that has exited has flushed its queue, so after
    this its run_finished, if it sent one, has been seen."""
    while (event := _get(events_q, 0.05)) is not None:
        _forward(event, emitter, by_id, runs, current, done, log)


def _forward(
    event: Event,
    emitter: Emitter,
    by_id: dict[str, RunSpec],
    runs: list[RemoteRun],
    current: dict[int, RemoteRun],
    done: set[int],
    log: Callable[[str], None],
) -> None:
    """Hand a worker's event to the sinks, keeping track of which worker trains which run."""
    worker = event.pop("_worker", None)
    if event.get("type") == "_worker_done":  # not a contract event: the worker's last message
        done.add(worker)
        return
    if event.get("type") == "_worker_failed":  # not a contract event: the worker itself broke
        run = current.pop(worker, None)
        if run is not None:
            run.finish("failed", event.get("reason", "the worker failed"), event.get("traceback", ""))
        else:  # before any run: the other workers take its share
            log(f"{event.get('reason', 'a worker failed')}; the other workers take its runs")
        return
    kind, run_id = event.get("type"), event.get("run")
    if kind == "run_started" and run_id in by_id:
        run = RemoteRun(by_id[run_id], emitter, worker, str(event.get("device", "")))
        runs.append(run)
        current[worker] = run
        event["worker"] = worker
    for sink in emitter.sinks:
        sink.emit(event)
    if kind == "run_finished":
        run = current.get(worker)
        if run is not None and run.run_id == run_id:
            run.recorded(event)
            current.pop(worker, None)


def _pass_on(controls: Controls, control_qs: list) -> int:
    """Send the app's control state to every worker; returns the version sent."""
    version = controls.version
    msgs: list[dict[str, Any]] = [{"cmd": "pause" if controls.paused else "resume"}]
    if controls.split_chunks:
        msgs.append({"cmd": "split", "enabled": controls.split_chunks > 1, "chunks": controls.split_chunks})
    if controls.stop:
        msgs.append({"cmd": "stop", "reason": controls.stop_reason})
    for q in control_qs:
        for msg in msgs:
            q.put(msg)
    return version


def _reap(procs: list, devices: list[str], current: dict[int, RemoteRun]) -> None:
    """A worker that ended without finishing its run (killed, crashed): that run failed."""
    for i, p in enumerate(procs):
        if p.exitcode is not None and i in current:
            run = current.pop(i)
            run.finish(
                "failed",
                f"the worker process on {devices[i]} ended (exit code {p.exitcode}) before the run finished",
            )


class _WorkerSink(QueueSink):
    """Events to the parent, tagged with the worker's index; never drops (the queue is unbounded)."""

    def __init__(self, queue: Any, worker: int) -> None:
        super().__init__(queue)
        self.worker = worker

    def emit(self, event: Event) -> None:
        self.queue.put({**event, "_worker": self.worker})


def _worker(
    index: int,
    device_name: str,
    settings: RunSettings,
    dataset: Dataset,
    slice_samples: int,
    clock_start: float,
    specs_q: Any,
    events_q: Any,
    control_q: Any,
    run_dir: str,
    parent_pid: int,
) -> None:
    """One GPU's process: takes runs from the queue until the end mark, or until stopped."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the parent; it sends stop
    sink = _WorkerSink(events_q, index)
    try:
        device = torch.device(device_name)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        else:
            torch.set_num_threads(settings.perf.cpu_threads or 1)
        controls = Controls()
        listen(control_q, controls)
        # A SIGTERM/SIGHUP to the whole process group (a batch scheduler) stops this worker's run cleanly
        # too, as the parent's.
        StopSignals(REQUEST_SIGNALS).install().stop_via(controls)
        # Stop when the sweep's process is gone (killed), instead of training on for nobody.
        watch_parent(parent_pid, lambda: controls.apply({"cmd": "stop"}), until=lambda: controls.stop)
        emitter = Emitter([sink], Clock(clock_start))
        test = prepare_test(dataset, device)
        while not controls.stop and (spec := specs_q.get()) is not None:
            run = Run(spec, settings, dataset, device, emitter, test, controls)
            if run_dir:
                run.on_epoch_end = CheckpointWriter(run_dir)
            try:
                run.start()
                group = Group([run])
                while not group.finished:
                    group.advance(slice_samples)
            except StopRequested:
                run.finish("stopped", controls.stop_reason or "stopped by the user")
    except Exception as exc:  # noqa: BLE001 - the parent ends this worker's run as failed, with why
        sink.emit(
            {
                "type": "_worker_failed",
                "reason": f"worker on {device_name}: {type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
            }
        )
    finally:
        sink.emit({"type": "_worker_done"})
