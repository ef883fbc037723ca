"""The sweep: every batch size of the config, interleaved or one after another.

Interleaved (the default) advances all runs together in slices of about equal
samples, so every curve grows at once in the app; only one run trains at a
time, so each slice's timing is its own. Sequential runs them in order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from trainer.analysis.scaling import analyse
from trainer.config import Config, config_to_dict
from trainer.config.batch_schedule import PROPOSED_SOURCE
from trainer.data.datasets import Dataset, as_inputs
from trainer.engine import fuse
from trainer.engine.checkpoint import CheckpointWriter
from trainer.engine.ddp import DistContext
from trainer.engine.evaluation import prepare_test
from trainer.engine.group import Group
from trainer.engine.run import Run, SweepRun
from trainer.plan import RunSettings, slice_samples
from trainer.process.title import set_title, trainer_title
from trainer.runlog import Emitter
from trainer.runlog.controls import Controls, StopRequested
from trainer.runlog.shards import ShardInfo
from trainer.sweep import branch, calibrate, gpu_pool, scheduled
from trainer.sweep.prepare import PreparedSweep, device_name, prepare, resolve_device
from trainer.sweep.resume import Resume


@dataclass
class SweepResult:
    status: str  # done | stopped | failed
    summaries: list[dict[str, Any]] = field(default_factory=list)
    scaling: dict[str, Any] = field(
        default_factory=dict
    )  # sweep_finished.scaling (trainer.analysis.scaling.analyse)

    @property
    def any_failed(self) -> bool:
        return any(s.get("status") == "failed" for s in self.summaries)


def run_sweep(
    cfg: Config,
    emitter: Emitter,
    *,
    device: torch.device | None = None,
    dataset: Dataset | None = None,
    controls: Controls | None = None,
    log: Callable[[str], None] = lambda msg: None,
    run_dir: str = "",
    resume: Resume | None = None,
    ddp: DistContext | None = None,
    shard: ShardInfo | None = None,
) -> SweepResult:
    """Prepare the sweep of `cfg` (trainer.sweep.prepare: the device, by default sweep.device's, the
    dataset, loaded unless given, and the model, checked) and train it: `run_prepared`. For callers that
    hold a config and nothing resolved yet; the entry points prepare first, before the run directory is
    made, and call run_prepared."""
    prepared = prepare(
        cfg,
        device=device if device is not None else resolve_device(cfg.sweep.device),
        dataset=dataset,
        log=log,
        shard=shard,
    )
    return run_prepared(
        prepared, emitter, controls=controls, log=log, run_dir=run_dir, resume=resume, ddp=ddp
    )


def run_prepared(
    prepared: PreparedSweep,
    emitter: Emitter,
    *,
    controls: Controls | None = None,
    log: Callable[[str], None] = lambda msg: None,
    run_dir: str = "",
    resume: Resume | None = None,
    ddp: DistContext | None = None,
) -> SweepResult:
    """Train every run of the prepared sweep; events go to `emitter`. Returns the summaries.

    A run that diverges, runs out of memory or fails ends alone; the sweep goes on. Ctrl-C or a
    stop control ends every unfinished run as `stopped`; KeyboardInterrupt is re-raised
    after the run directory's events are complete.

    With `run_dir`, each run saves a checkpoint at each epoch end. With `resume` (trainer.sweep.resume),
    the sweep continues one recorded in run_dir: finished runs are kept, the others restart from
    their checkpoints, and `sweep_resumed` is emitted instead of `sweep_started`. Under torchrun,
    `ddp` is this process's place in the job (trainer.engine.ddp): every run trains data parallel. A
    shard's sweep (trainer.runlog.shards) trains only that shard's runs; its sweep_started lists them and
    says which shard it is.
    """
    cfg, given, device, dataset = prepared.cfg, prepared.given, prepared.device, prepared.dataset
    fast_path, specs, shard = prepared.fast_path, prepared.specs, prepared.shard
    # On the CPU each run sets its own threads by the work of its steps (trainer.engine.threads; 1 thread for
    # tiny batches, every core for larger ones); perf.cpu_threads overrides.
    if cfg.data.pipeline != given.data.pipeline:
        log(f"data.pipeline: {prepared.pipeline_reason}")
    data_fields = prepared.data_fields()
    if ddp is None or ddp.is_main:
        set_title(trainer_title(run_dir, [s.batch_size for s in specs], len(specs)))
    settings = RunSettings.from_config(cfg)
    slice_n = slice_samples(cfg, prepared.n_train)

    # sweep.parallel: runs spread over the GPUs, one worker process each; a resumed sweep
    # and a torchrun rank train in their own process.
    devices = (
        []
        if resume is not None or ddp is not None
        else gpu_pool.parallel_devices(
            cfg.sweep.parallel, device, torch.cuda.device_count() if device.type == "cuda" else 0
        )
    )
    if resume is not None:
        resume.announce(
            emitter,
            device=device_name(device),
            torch=str(torch.__version__),
            fast_path=fast_path,
            **data_fields,
        )
    else:
        emitter.emit(
            "sweep_started",
            config=config_to_dict(given),  # as configured; `pipeline` says what trains
            config_path=cfg.source,
            run_dir=run_dir,
            dataset=dataset.name,
            dataset_note=dataset.note,
            dataset_source=dataset.source,
            train_samples=int(dataset.train.labels.shape[0]),
            test_samples=int(dataset.test.labels.shape[0]),
            input_shape=list(
                as_inputs(dataset.train.images[:1]).shape[1:]
            ),  # one sample, as the model gets it
            classes=dataset.num_classes,
            device=device_name(device),
            torch=str(torch.__version__),
            fast_path=fast_path,
            runs=[s.as_event() for s in specs],
            parallel_devices=devices,
            started_at=time.time(),  # wall time at t = 0: the shards of a sweep are merged on it
            **({"shard": {"index": shard.index, "count": shard.count}} if shard is not None else {}),
            **data_fields,
        )
    test = prepare_test(dataset, device)
    runs: list[SweepRun] = []  # in sweep order: the runs trained here, or the records of a GPU pool's
    local: list[Any] = []  # what this process advances: groups (of one run, or fused), scheduled runs
    interrupted: BaseException | None = None
    status = "done"
    # A [branch] table (trainer.sweep.branch): the base run keeps its checkpoints at the branch points, and the
    # branches train from them once it is done.
    base = branch.base_spec(cfg, specs) if cfg.branch.epochs else None  # None in a shard without it
    keeper = branch.PointKeeper(cfg.branch.epochs, run_dir) if base is not None else None
    if keeper is not None and resume is not None:  # the branches are measured again, from the kept points
        for e in resume.events:
            if e.get("run") == base.run_id:
                keeper.take(e)
        keeper.recover(base.run_id)
    try:
        if devices:  # every run trains in a worker; `runs` fills with their records
            pooled: list[gpu_pool.RemoteRun] = []
            try:
                gpu_pool.run_parallel(
                    settings, specs, emitter, devices, dataset, controls, run_dir, pooled, slice_n, log
                )
            finally:
                runs.extend(pooled)
        # Runs of one batch size that can share their steps train as one fused group (trainer.engine.fuse); each
        # run's run_started says whether it is fused, with which runs, or why not.
        units = [] if devices else fuse.plan_units(specs, settings, device, fast_path, ddp=ddp is not None)
        planned: list[tuple[fuse.Unit, list[Run]]] = []
        for unit in units:
            members = []
            for spec in unit.specs:
                if resume is not None and resume.is_kept(spec.run_id):
                    continue
                watched = (
                    keeper.watch(emitter, spec.run_id) if keeper and spec.run_id == base.run_id else emitter
                )
                run = Run(spec, settings, dataset, device, watched, test, controls, ddp)
                if spec.schedule:
                    run.started_extra = scheduled.started_fields(spec, scheduled.CONFIGURED)
                if run_dir:
                    run.on_epoch_end = CheckpointWriter(run_dir)
                if keeper is not None and spec.run_id == base.run_id:
                    keeper.inner, run.on_epoch_end = run.on_epoch_end, keeper
                runs.append(run)
                members.append(run)
            planned.append((unit, members))
        # Time alone (trainer.sweep.calibrate): each kind of step timed alone once, before any run trains and outside
        # their clocks (a resumed sweep reuses the recorded times); under torchrun every run trains alone anyway.
        # The runs exist already, so a stop or Ctrl-C here records each of them stopped.
        n_train = int(dataset.train.labels.shape[0])
        times = calibrate.StepTimes(resume.events if resume is not None else ()) if ddp is None else None
        if times is not None:
            alone = times.ensure(
                [r.spec for _, members in planned for r in members if not r.spec.schedule],
                settings,
                dataset,
                device,
                test,
                emitter,
                controls,
            )
            for r in runs:
                if r.spec.schedule:  # each stage's batch size, timed alone
                    r.price_alone = scheduled.price_alone(
                        r.spec,
                        n_train,
                        settings.epochs,
                        scheduled.stage_calibrations(
                            times, r.spec, settings, dataset, device, test, emitter, controls
                        ),
                    )
                else:
                    r.step_alone = alone.get(r.run_id)
        for n_unit, (unit, members) in enumerate(planned):
            restorers = {r.run_id: resume.restorer(r.run_id) if resume is not None else None for r in members}
            started = [  # a scheduled run follows its stages
                scheduled.wrap(g, emitter)
                for g in fuse.start_unit(
                    unit, members, restorers, label=f"fused{n_unit}-bs{unit.specs[0].batch_size}"
                )
            ]
            local.extend(started)
            if cfg.sweep.schedule == "sequential":
                for trained in started:
                    while not trained.finished:
                        trained.advance(slice_n)
        if cfg.sweep.schedule == "interleaved":
            while any(not r.finished for r in local):
                for trained in local:
                    trained.advance(slice_n)
        if keeper is not None:
            result = branch.run_branches(
                cfg, settings, keeper, base, dataset, device, emitter, test, controls, run_dir, runs, log
            )
            if scheduled.is_proposed(cfg):  # the schedule the branches proposed, trained now
                spec = scheduled.proposed_spec(cfg, result)
                if spec is None:
                    log("batch_schedule: the branches proposed no schedule (no point determined its B_crit)")
                else:
                    run = Run(spec, settings, dataset, device, emitter, test, controls)
                    run.started_extra = scheduled.started_fields(spec, PROPOSED_SOURCE)
                    run.fused_reason = "its batch size changes as it trains (sweep.batch_schedule)"
                    if run_dir:
                        run.on_epoch_end = CheckpointWriter(run_dir)
                    if times is not None:
                        run.price_alone = scheduled.price_alone(
                            spec,
                            n_train,
                            settings.epochs,
                            scheduled.stage_calibrations(
                                times, spec, settings, dataset, device, test, emitter, controls
                            ),
                        )
                    runs.append(run)
                    run.start()
                    trained = scheduled.wrap(Group([run]), emitter)
                    local.append(trained)
                    while not trained.finished:
                        trained.advance(slice_n)
    except StopRequested:
        status = "stopped"
    except KeyboardInterrupt as exc:
        status = "stopped"
        interrupted = exc
    if interrupted is not None:
        why = "interrupted (Ctrl-C)"
    else:  # the app's stop, or a SIGTERM/SIGHUP turned into one (trainer.runlog.controls.StopSignals)
        why = (controls.stop_reason if controls is not None else "") or "stopped by the user"
    for run in runs:
        if not run.finished:
            run.finish("stopped", why)
    for group in local:  # a fused group the stop ended records its time too
        group.close()
    summaries = [r.summary() for r in runs]
    if resume is not None:
        summaries = resume.merge_summaries([s.run_id for s in specs], summaries)
    if status == "done" and any(s["status"] == "failed" for s in summaries):
        status = "failed"
    if cfg.variants:  # one analysis per variant: their runs share batch sizes and maybe lrs
        scaling = {
            "variants": {
                v.name: analyse(
                    [s for s in summaries if s.get("variant") == v.name], v.optim.lr, v.optim.base_batch_size
                )
                for v in cfg.variants
            }
        }
    else:  # the sweep's own runs: branches are measured apart (trainer.sweep.branch)
        own = {spec.run_id for spec in specs if not spec.schedule}  # a scheduled run is compared apart
        scaling = analyse(
            [s for s in summaries if s.get("run") in own], cfg.optim.lr, cfg.optim.base_batch_size
        )
    emitter.emit("sweep_finished", status=status, summaries=summaries, scaling=scaling)
    if interrupted is not None:
        raise interrupted
    return SweepResult(status=status, summaries=summaries, scaling=scaling)
