"""The sweep: every batch size of the config, interleaved or one after another.

Interleaved (the default) advances all runs together in slices of about equal
samples, so every curve grows at once in the app; only one run trains at a
time, so each slice's timing is its own. Sequential runs them in order.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import torch

from trainer.checkpoint import CheckpointWriter
from trainer.config import Config, config_to_dict, sweep_lrs
from trainer.controls import Controls
from trainer.data import Dataset, load_dataset
from trainer.runlog import Emitter
from trainer.fastpath import FastPathUnavailable, resolve_fast_path
from trainer.loop import Run, RunSpec, StopRequested
from trainer.scaling import analyse

if TYPE_CHECKING:
    from trainer.resume import Resume

SLICE_SAMPLES = 6000  # samples per run per round of the interleaved schedule (1/10 of an MNIST epoch)


@dataclass
class SweepResult:
    status: str  # done | stopped | failed
    summaries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def any_failed(self) -> bool:
        return any(s.get("status") == "failed" for s in self.summaries)


def resolve_device(name: str) -> torch.device:
    """auto -> cuda when available, else cpu. An explicit cuda without a GPU is refused."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable(
            f"device {name!r} was asked for but no CUDA GPU is visible to PyTorch "
            f"(torch {torch.__version__}); use --device cpu or sweep.device = \"auto\""
        )
    return device


class DeviceUnavailable(Exception):
    """The configured device cannot be used (a user error: exit 2)."""


def preflight(cfg: Config) -> torch.device:
    """The device to train on, after checking the fast path can run there (DeviceUnavailable if not)."""
    device = resolve_device(cfg.sweep.device)
    try:
        resolve_fast_path(cfg.perf.fast_path, device, cfg.data.pipeline)
    except FastPathUnavailable as exc:
        raise DeviceUnavailable(str(exc)) from exc
    return device


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"


def run_specs(cfg: Config) -> list[RunSpec]:
    """One spec per (batch size, variant, lr, seed). Ids: bs60, bs6000-lars with [[variants]] (issue 7),
    bs60-lr0.05 with several lrs, -s1 with seeds."""
    many_lrs = bool(cfg.sweep.lrs) or cfg.sweep.lr_grid.points > 1
    arms: list[tuple[str, Config, list[int]]] = [
        (v.name, dataclasses.replace(cfg, optim=v.optim, split_backward=v.split_backward), v.batch_sizes)
        for v in cfg.variants
    ] or [("", cfg, cfg.sweep.batch_sizes)]
    specs = []
    for b in cfg.sweep.batch_sizes:
        for variant, arm, sizes in arms:
            if b not in sizes:
                continue
            chunks = arm.split_backward.chunks if arm.split_backward.enabled else 1
            for lr in sweep_lrs(arm, b):
                for i in range(cfg.sweep.seeds):
                    run_id = (f"bs{b}" + (f"-{variant}" if variant else "") + (f"-lr{lr:g}" if many_lrs else "")
                              + (f"-s{i}" if cfg.sweep.seeds > 1 else ""))
                    specs.append(RunSpec(
                        run_id=run_id,
                        batch_size=b,
                        lr=lr,
                        momentum=arm.optim.momentum,
                        split_chunks=chunks,
                        split_method=arm.split_backward.method,
                        seed=cfg.sweep.seed + i,
                        optim=arm.optim,
                        variant=variant,
                    ))
    return specs


def slice_samples(cfg: Config, n_train: int) -> int:
    """Samples per run per interleaved round: a tenth of an epoch, at least one biggest batch."""
    return max(max(cfg.sweep.batch_sizes), min(SLICE_SAMPLES, max(1, n_train // 10)))


def prepare_test(dataset: Dataset, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The test split, resident on the device (evaluation is not part of any timing)."""
    x = dataset.test.images.to(device=device, dtype=torch.float32).div_(255.0).unsqueeze(1)
    y = dataset.test.labels.to(device=device, dtype=torch.long)
    return x, y


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
) -> SweepResult:
    """Train every run of the sweep; events go to `emitter`. Returns the summaries.

    Raises DatasetUnavailable / DeviceUnavailable before anything trains. A run that
    diverges, runs out of memory or fails ends alone; the sweep goes on. Ctrl-C or a
    stop control ends every unfinished run as `stopped`; KeyboardInterrupt is re-raised
    after the run directory's events are complete.

    With `run_dir`, each run saves a checkpoint at each epoch end. With `resume` (trainer.resume),
    the sweep continues one recorded in run_dir: finished runs are kept, the others restart from
    their checkpoints, and `sweep_resumed` is emitted instead of `sweep_started`.
    """
    device = device or resolve_device(cfg.sweep.device)
    if device.type == "cpu":
        # Intra-op threads only fight over a model this small (seen: 170 ms vs 2 ms per batch-1 step
        # with 2 threads vs 1 on a busy 2-core machine); perf.cpu_threads overrides.
        torch.set_num_threads(cfg.perf.cpu_threads or 1)
    try:
        fast_path = resolve_fast_path(cfg.perf.fast_path, device, cfg.data.pipeline)
    except FastPathUnavailable as exc:
        raise DeviceUnavailable(str(exc)) from exc
    if dataset is None:
        dataset = load_dataset(cfg.data, seed=cfg.sweep.seed, log=log)
    specs = run_specs(cfg)
    # sweep.parallel (issue 7): runs spread over the GPUs, one worker process each; a resumed sweep
    # and a torchrun rank train in their own process.
    from trainer import distributed, parallel

    devices = [] if resume is not None or distributed.current() is not None else parallel.parallel_devices(
        cfg.sweep.parallel, device, torch.cuda.device_count() if device.type == "cuda" else 0)
    if resume is not None:
        resume.announce(emitter, device=device_name(device), torch=torch.__version__, fast_path=fast_path)
    else:
        emitter.emit(
            "sweep_started",
            config=config_to_dict(cfg),
            config_path=cfg.source,
            run_dir=run_dir,
            dataset=dataset.name,
            dataset_note=dataset.note,
            dataset_source=dataset.source,
            train_samples=int(dataset.train.labels.shape[0]),
            test_samples=int(dataset.test.labels.shape[0]),
            device=device_name(device),
            torch=torch.__version__,
            fast_path=fast_path,
            runs=[s.as_event() for s in specs],
            parallel_devices=devices,
        )
    test_xy = prepare_test(dataset, device)
    runs: list[Run] = []
    interrupted: BaseException | None = None
    status = "done"
    try:
        if devices:  # every run trains in a worker; `runs` fills with their records
            parallel.run_parallel(cfg, specs, emitter, devices, dataset, controls, run_dir, runs, log)
        for spec in [] if devices else specs:
            if resume is not None and resume.is_kept(spec.run_id):
                continue
            run = Run(spec, cfg, dataset, device, emitter, test_xy, controls)
            if run_dir:
                run.on_epoch_end = CheckpointWriter(run_dir)
            runs.append(run)
            run.start(restore=resume.restorer(spec.run_id) if resume is not None else None)
            if cfg.sweep.schedule == "sequential" and not run.finished:
                while not run.finished:
                    run.advance(slice_samples(cfg, int(dataset.train.labels.shape[0])))
        if cfg.sweep.schedule == "interleaved":
            step = slice_samples(cfg, int(dataset.train.labels.shape[0]))
            while any(not r.finished for r in runs):
                for run in runs:
                    run.advance(step)
    except StopRequested:
        status = "stopped"
    except KeyboardInterrupt as exc:
        status = "stopped"
        interrupted = exc
    for run in runs:
        if not run.finished:
            run.finish("stopped", "stopped by the user" if interrupted is None else "interrupted (Ctrl-C)")
    summaries = [r.summary() for r in runs]
    if resume is not None:
        summaries = resume.merge_summaries([s.run_id for s in specs], summaries)
    if status == "done" and any(s["status"] == "failed" for s in summaries):
        status = "failed"
    if cfg.variants:  # one analysis per variant: their runs share batch sizes and maybe lrs
        scaling = {"variants": {v.name: analyse([s for s in summaries if s.get("variant") == v.name],
                                                v.optim.lr, v.optim.base_batch_size) for v in cfg.variants}}
    else:
        scaling = analyse(summaries, cfg.optim.lr, cfg.optim.base_batch_size)
    emitter.emit("sweep_finished", status=status, summaries=summaries, scaling=scaling)
    if interrupted is not None:
        raise interrupted
    return SweepResult(status=status, summaries=summaries)
