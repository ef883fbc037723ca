"""Fused runs: K runs of one batch size train as one stacked model (perf.fuse_runs, issue 15).

An lr grid (and seeds) multiplies a sweep's cost by lrs x seeds, yet a small-batch step leaves the
device nearly idle: its time is per-kernel overhead, not arithmetic. Runs that share a batch size, a
model and plain SGD can take their steps together: their weights are stacked ([K, ...] per parameter),
one `torch.func.vmap` of `grad_and_value(functional_call(...))` gives every run's loss and gradient in
one pass of batched kernels, and one SGD update with per-run lr, momentum and weight decay as [K]
tensors moves them all. Each run keeps its own data order (its seed), warm-up, losses, evaluations,
probes, events and checkpoint: a `FusedGroup` drives its member `Run`s iteration by iteration and lets
each do its own bookkeeping.

- Weights, buffers and momentum live in the group's stacked tensors; each member's model parameters and
  its optimizer's momentum buffers are views of its row, so evaluation, the probes, a checkpoint, or a
  step the member takes alone (split-backward) read and write the same numbers.
- A member that ends (diverged, collapsed, out of epochs) leaves the group: the stacked tensors keep the
  others' rows only. A group down to one run hands it back to its own loop.
- Split-backward (the app's switch) needs each run's k chunk steps: while it is on, the members step one
  after the other with their own steps, in the same loop.
- Timing: the group's wall and compute time are measured once and shared equally among the runs that
  were training (each run's epoch time and compute time are its share: the cost of that run when K train
  together); the group's own totals are in the `fused_group` event at its end.

The update reproduces torch.optim.SGD (momentum buffer m <- mu m + g + wd w; w <- w - lr m, the buffer
starting at the first gradient). Results equal training each run alone up to float rounding (batched
kernels add in another order): tests/trainer/test_fuse.py checks per-iteration losses and accuracies.
"""

from __future__ import annotations

import dataclasses
import math
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

from trainer.data.datasets import as_inputs
from trainer.engine.run import STOP_INSIDE_MIN_BATCH, Run, is_oom, oom_reason
from trainer.engine.threads import cpu_threads, use_threads
from trainer.engine.timing import ComputeTimer, WallClock
from trainer.models.grads import batch_norms
from trainer.models.optim import lr_at
from trainer.plan import RunSettings, RunSpec
from trainer.runlog import EventType, RunDirWriteError
from trainer.runlog.controls import Controls, StopRequested

#: perf.fuse_runs = "auto" on a CPU fuses runs of batches up to this size. bench/fuse.py on a 2-core VM
#: (samples/s of all runs, fused / separate, 2 threads): K = 16: batch 1 3.7x, 6 2.3x, 16 1.6x, 60 0.98x;
#: K = 4: 1.3x, 1.4x, 1.3x, 0.84x. From batch 60 the arithmetic dominates and vmap's batched convolutions
#: are no faster than K plain ones.
CPU_AUTO_MAX_BATCH = 16


class FuseUnavailable(Exception):
    """These runs cannot train fused; str(exc) says why (run_started's fused_reason)."""


@dataclass
class Unit:
    """Runs of a sweep that start together: a fused group when `fused` (2 or more specs), else one run.
    `reason` is why a spec trains alone ("" when fusion is off or it is fused)."""

    specs: list[RunSpec]
    fused: bool = False
    reason: str = ""


def static_reason(
    spec: RunSpec,
    settings: RunSettings,
    device: torch.device,
    fast_path: str,
    *,
    ddp: bool = False,
    parallel: bool = False,
) -> str:
    """Why `spec` cannot join a fused group whatever the other runs are ("" if it can)."""
    mode = settings.perf.fuse_runs
    optim = spec.optim if spec.optim is not None else settings.optim
    if ddp:
        return "torchrun: data parallel runs train alone"
    if parallel:
        return "sweep.parallel: each run trains in its own GPU worker"
    if optim.name != "sgd":
        return f'optim.name = "{optim.name}": fused steps reproduce SGD only'
    if spec.split_chunks > 1:
        return "split-backward is on from the start: each run takes its own k chunk steps"
    if 0 < settings.micro_batch < spec.batch_size:
        return f"sweep.micro_batch = {settings.micro_batch}: gradient accumulation trains each run alone"
    if settings.perf.precision != "fp32":
        return f'perf.precision = "{settings.perf.precision}": fused steps are fp32 only'
    if settings.perf.channels_last:
        return "perf.channels_last: fused steps use the default memory format only"
    if spec.batch_size >= STOP_INSIDE_MIN_BATCH:
        return f"batch {spec.batch_size} >= {STOP_INSIDE_MIN_BATCH}: a step is long enough alone (and must stop within 2 s)"
    if mode == "auto":
        if device.type == "cpu" and spec.batch_size > CPU_AUTO_MAX_BATCH:
            return (
                f"batch {spec.batch_size} > {CPU_AUTO_MAX_BATCH}: on a CPU fused steps of larger batches are slower than "
                'separate ones (bench/fuse.py); perf.fuse_runs = "on" fuses them anyway'
            )
        if fast_path == "cuda_graph":
            return (
                'the CUDA-graph fast path trains each run (fusing inside a graph is not built); perf.fuse_runs = "on" '
                "fuses them eagerly instead"
            )
    return ""


def group_key(spec: RunSpec) -> tuple[Any, ...]:
    """Runs with equal keys may train as one group (lr, momentum, weight decay and warm-up may differ)."""
    return (spec.batch_size, spec.split_chunks, spec.split_method)


def plan_units(
    specs: list[RunSpec],
    settings: RunSettings,
    device: torch.device,
    fast_path: str,
    *,
    ddp: bool = False,
    parallel: bool = False,
) -> list[Unit]:
    """The sweep's runs as units in sweep order: each fused group where its first run stands, the other
    runs one by one. perf.fuse_runs = "off" gives one unit per run and no reasons."""
    if settings.perf.fuse_runs == "off":
        return [Unit([s]) for s in specs]
    reasons = {
        s.run_id: static_reason(s, settings, device, fast_path, ddp=ddp, parallel=parallel) for s in specs
    }
    groups: dict[tuple[Any, ...], list[RunSpec]] = {}
    for s in specs:
        if not reasons[s.run_id]:
            groups.setdefault(group_key(s), []).append(s)
    units: list[Unit] = []
    placed: set[str] = set()
    for s in specs:
        if s.run_id in placed:
            continue
        members = groups.get(group_key(s), []) if not reasons[s.run_id] else []
        if len(members) > 1:
            units.append(Unit(list(members), fused=True))
            placed.update(m.run_id for m in members)
        else:
            reason = reasons[s.run_id] or f"no other run of batch {s.batch_size} can train with it"
            units.append(Unit([s], reason=reason))
            placed.add(s.run_id)
    return units


def member_settings(settings: RunSettings, unit: Unit) -> RunSettings:
    """The settings a unit's runs train with: a fused group's runs step eagerly (perf.fuse_runs = "on" on a
    device whose fast path is a CUDA graph: fusing replaces the graph)."""
    if unit.fused and settings.perf.fast_path != "eager":
        return dataclasses.replace(settings, perf=dataclasses.replace(settings.perf, fast_path="eager"))
    return settings


def model_reason(model: nn.Module) -> str:
    """Why this model cannot train fused ("" if it can): vmap cannot update batch norm's running statistics
    in place per run, and dropout's random masks would differ from a run trained alone."""
    if batch_norms(model):
        return "the model has batch norm: its running statistics are updated in place, which the fused step cannot do per run"
    if any(isinstance(m, nn.modules.dropout._DropoutNd) for m in model.modules()):
        return "the model has dropout: fused runs would draw other random masks than runs trained alone"
    return ""


class StackedSGD:
    """The stacked weights, buffers and momentum of K models of one architecture, and their fused SGD step.

    `base` is one of the models (its structure is used by functional_call; its tensors are swapped for
    the stacked ones during the call). Members' parameters and momentum buffers become views of their row.
    """

    def __init__(
        self,
        base: nn.Module,
        models: list[nn.Module],
        optimizers: list[torch.optim.Optimizer],
        hyper: list[tuple[float, float, float]],
    ) -> None:
        self.base = base
        self.names = [n for n, _ in base.named_parameters()]
        self.buffer_names = [n for n, _ in base.named_buffers()]
        self.models, self.optimizers = list(models), list(optimizers)
        with torch.no_grad():
            self.params = {
                n: torch.stack([dict(m.named_parameters())[n].detach() for m in models]) for n in self.names
            }
            self.buffers = {
                n: torch.stack([dict(m.named_buffers())[n] for m in models]) for n in self.buffer_names
            }
            self.momentum = {
                n: torch.stack(
                    [self._buffer_of(o, dict(m.named_parameters())[n]) for m, o in zip(models, optimizers)]
                )
                for n in self.names
            }
        device = next(iter(self.params.values())).device
        lr, mu, wd = zip(*hyper)
        self.neg_lr = -torch.tensor(lr, dtype=torch.float32, device=device)
        self.mu = torch.tensor(mu, dtype=torch.float32, device=device)
        self.wd = torch.tensor(wd, dtype=torch.float32, device=device)
        self.decay = any(w != 0 for w in wd)
        self._warmup: torch.Tensor | None = (
            None  # [iterations, K] of -lr while a member warms up (set_warmup)
        )
        self.warmup_end = 0
        self.grads: dict[str, torch.Tensor] = {}
        self._point()

        def loss(
            params: dict[str, torch.Tensor],
            buffers: dict[str, torch.Tensor],
            x: torch.Tensor,
            y: torch.Tensor,
        ) -> torch.Tensor:
            return F.nll_loss(functional_call(self.base, (params, buffers), (x,)), y)

        self._grad_and_loss = vmap(grad_and_value(loss))

    @staticmethod
    def _buffer_of(optimizer: torch.optim.Optimizer, p: torch.Tensor) -> torch.Tensor:
        buf = optimizer.state.get(p, {}).get("momentum_buffer")
        return buf.detach() if isinstance(buf, torch.Tensor) else torch.zeros_like(p)

    @property
    def k(self) -> int:
        return len(self.models)

    def _point(self) -> None:
        """Make each member's parameters, buffers and momentum buffers views of its row."""
        for i, (model, opt) in enumerate(zip(self.models, self.optimizers)):
            params = dict(model.named_parameters())
            for n in self.names:
                p = params[n]
                p.data = self.params[n][i]
                # A zero buffer steps like torch's first one (mu * 0 + g = g).
                opt.state[p]["momentum_buffer"] = self.momentum[n][i]
            buffers = dict(model.named_buffers())
            for n in self.buffer_names:
                buffers[n].data = self.buffers[n][i]

    def keep(self, rows: list[int]) -> None:
        """Keep the members at `rows` only (a member left the group)."""
        idx = torch.tensor(rows, device=self.neg_lr.device)
        with torch.no_grad():
            for table in (self.params, self.buffers, self.momentum):
                for n in table:
                    table[n] = table[n].index_select(0, idx)
        self.neg_lr, self.mu, self.wd = self.neg_lr[idx], self.mu[idx], self.wd[idx]
        if self._warmup is not None:
            self._warmup = self._warmup[:, idx]
        self.models = [self.models[i] for i in rows]
        self.optimizers = [self.optimizers[i] for i in rows]
        self.grads = {}
        self._point()

    def set_warmup(self, lrs: list[float], warmups: list[int]) -> None:
        """The members' linear warm-ups (trainer.models.optim.lr_at) as one device table of -lr per iteration, made
        once: a step's lrs are then a row of it (`warm_up(it)`), not a host-to-device copy per iteration
        (one that would wait for the device on CUDA). The same float64 arithmetic as lr_at, then float32."""
        self.warmup_end = max(warmups, default=0)
        if self.warmup_end <= 0:
            self._warmup = None
            return
        it = torch.arange(self.warmup_end + 1, dtype=torch.float64)[:, None]
        base = torch.tensor(lrs, dtype=torch.float64)[None, :]
        w = torch.tensor(warmups, dtype=torch.float64)[None, :]
        table = torch.where(it < w, base * (it + 1) / w, base)
        self._warmup = (-table.to(torch.float32)).to(self.neg_lr.device)

    def warm_up(self, iteration: int) -> None:
        """Use the warm-up's lrs of `iteration` for the next step (nothing to do past the warm-ups)."""
        if self._warmup is not None and iteration <= self.warmup_end:
            self.neg_lr = self._warmup[iteration]

    def losses_and_grads(
        self, xs: torch.Tensor, ys: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Each member's mean loss on its batch (xs[i], ys[i]) and its gradient, at the current weights."""
        grads, losses = self._grad_and_loss(self.params, self.buffers, xs, ys)
        return losses, grads

    def step(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        """One SGD step of every member; returns their losses ([K], detached: no host sync)."""
        losses, grads = self.losses_and_grads(xs, ys)
        with torch.no_grad():
            for n in self.names:
                p, g, m = self.params[n], grads[n], self.momentum[n]
                shape = (self.k,) + (1,) * (p.dim() - 1)
                if self.decay:
                    g = g.addcmul(p, self.wd.view(shape))  # grad + wd * w, rounded as SGD's add(alpha=wd)
                m.mul_(self.mu.view(shape)).add_(g)
                p.addcmul_(m, self.neg_lr.view(shape))
        self.grads = grads
        return losses.detach()

    def last_grads(self, row: int) -> list[torch.Tensor]:
        """Member `row`'s gradient of the last fused step, in its parameters' order."""
        return [self.grads[n][row] for n in self.names]


class _SharedWall:
    """A member's wall clock inside a group: start/stop run the group's clock, which credits each training
    member its share of every interval (`total`)."""

    def __init__(self, group: FusedGroup, total: float) -> None:
        self.group, self.total = group, total

    @property
    def running(self) -> bool:
        return self.group.wall.running

    def start(self) -> None:
        self.group.clock_on()

    def stop(self) -> None:
        self.group.clock_off()

    def take(self) -> float:
        total, self.total = self.total, 0.0
        return total


class _SharedCompute:
    """A member's compute timer inside a group: its share of the group's step time (`total`)."""

    def __init__(self, group: FusedGroup, total: float) -> None:
        self.group, self.total = group, total

    def collect(self) -> None:
        self.group.collect_compute()

    def take(self) -> float:
        self.collect()
        total, self.total = self.total, 0.0
        return total


def _check_members(members: list[Run]) -> None:
    first = members[0]
    for m in members:
        if m.model is None or m.step is None:
            raise FuseUnavailable(f"run {m.run_id} has no model (it did not start)")
        if m.fast_path != "eager":
            raise FuseUnavailable(f"run {m.run_id} replays a CUDA graph")
        if m.ledger.totals.iters != first.ledger.totals.iters:
            raise FuseUnavailable(
                f"its runs resume from different points ({first.run_id} at iteration "
                f"{first.ledger.totals.iters}, {m.run_id} at {m.ledger.totals.iters})"
            )
    reason = model_reason(first.model)
    if reason:
        raise FuseUnavailable(reason)


class FusedGroup:
    """K prepared runs of one batch size trained in lockstep by one StackedSGD; the sweep advances it like a
    run (`advance`, `finished`). FuseUnavailable when they cannot train fused (then each trains alone)."""

    def __init__(self, members: list[Run], label: str) -> None:
        if len(members) < 2:
            raise FuseUnavailable("a group needs two runs")
        _check_members(members)
        self.label = label
        self.members = list(members)
        self.device = members[0].device
        self.controls: Controls | None = members[0].controls
        self.wall, self.compute = WallClock(self.device), ComputeTimer(self.device)
        self.group_wall = self.group_compute = 0.0  # the group's own totals (fused_group event)
        self.steps = 0
        self._seen_version = -1
        # CPU threads by the work of one fused step (batch x runs, trainer.engine.threads): bench/fuse.py measured 2
        # threads 1.4x faster than 1 at batch 6, K = 16 on 2 cores; perf.cpu_threads overrides. 0 on a GPU.
        first = members[0]
        self.threads = (
            cpu_threads(first.spec.batch_size * len(members), 0, first.settings.perf.cpu_threads)
            if self.device.type == "cpu"
            else 0
        )
        self.solo: Run | None = None  # the last member, once the others ended: trains on its own
        self.stack_members = list(members)  # the members with a row in the stacked tensors, in row order
        self._probing: list[bool] = []
        self._closed = False
        hyper = [(m.spec.lr, m.optim_cfg.momentum, m.optim_cfg.weight_decay) for m in members]
        try:
            self.stack = StackedSGD(
                members[0].model, [m.model for m in members], [m.optimizer for m in members], hyper
            )
            self.stack.set_warmup([m.spec.lr for m in members], [m.warmup_iters for m in members])
            self._try_fused_step()
        except FuseUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - a model torch.func cannot batch: the runs train alone
            if is_oom(exc):
                raise FuseUnavailable(
                    f"the stacked models do not fit in memory ({type(exc).__name__})"
                ) from exc
            raise FuseUnavailable(
                f"torch.func cannot batch this model's step ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:200] if str(exc) else ''})"
            ) from exc
        for m in members:
            m.wall = _SharedWall(self, m.wall.total)  # type: ignore[assignment]
            m.compute = _SharedCompute(self, m.compute.total)  # type: ignore[assignment]

    def _try_fused_step(self) -> None:
        """Run the fused gradient once on two training samples (no update): a model torch.func cannot batch
        fails here, before anything trains, and its runs train alone."""
        m = self.members[0]
        x = as_inputs(m.dataset.train.images[:2]).to(self.device)
        y = m.dataset.train.labels[:2].to(self.device, torch.long)
        k = self.stack.k
        losses, _ = self.stack.losses_and_grads(
            x.unsqueeze(0).expand(k, *x.shape), y.unsqueeze(0).expand(k, 2)
        )
        if losses.shape != (k,):
            raise FuseUnavailable(f"the fused step gave losses of shape {tuple(losses.shape)}, not ({k},)")

    # --- the sweep's view: a run-like unit -------------------------------------------------------------
    @property
    def active(self) -> list[Run]:
        return [m for m in self.members if not m.finished]

    @property
    def finished(self) -> bool:
        return all(m.finished for m in self.members)

    # --- shared clocks ------------------------------------------------------------------------------------
    def clock_on(self) -> None:
        self.wall.start()

    def clock_off(self) -> None:
        """Stop the group's clock and share the interval among the members training in it."""
        if not self.wall.running:
            return
        self.wall.stop()
        self._credit(self.wall.take(), "wall")

    def collect_compute(self) -> None:
        self.compute.collect()
        self._credit(self.compute.take(), "compute")

    def _credit(self, seconds: float, which: str) -> None:
        if seconds <= 0:
            return
        if which == "wall":
            self.group_wall += seconds
        else:
            self.group_compute += seconds
        training = self.active
        for m in training:
            getattr(m, which).total += seconds / len(training)

    # --- training -----------------------------------------------------------------------------------------
    def advance(self, samples: int) -> None:
        """Train every member about `samples` samples (whole batches), as Run.advance does for one."""
        if self.solo is not None:
            self.solo.advance(samples)
            return
        if self.finished:
            return
        members = self.active
        use_threads(self.threads)
        iters_left = max(1, math.ceil(samples / members[0].spec.batch_size))
        try:
            while iters_left > 0 and not self.finished and self.solo is None:
                iters_left -= self._train_iters(iters_left)
                if self.finished:
                    break
                if self.solo is not None:  # handed back at the epoch's end: that epoch ends as it would alone
                    if self.solo._iterator is None and not self.solo.finished:
                        self.solo._end_epoch()
                    break
                if all(m._iterator is None for m in self.active):
                    for m in self.active:
                        m._end_epoch()
                    self._regroup()
        except (StopRequested, RunDirWriteError):
            self.clock_off()
            for m in self.active:
                m._flush_losses()
            raise
        except Exception as exc:  # noqa: BLE001 - the group's failure ends its runs, not the sweep
            self.clock_off()
            trace = traceback.format_exc()
            for m in self.active:
                if is_oom(exc):
                    m._free()
                    m.finish(
                        "oom",
                        oom_reason(m.spec.batch_size, m.micro_batch, m.device, exc)
                        + f" (it trained fused with {len(self.members) - 1} other runs)",
                    )
                else:
                    m.finish("failed", f"{type(exc).__name__}: {exc}", trace)
        if self.solo is None and self.finished:
            self.close()

    def _train_iters(self, max_iters: int) -> int:
        """Up to max_iters lockstep iterations of the current epoch; returns how many were done."""
        members = self.stack_members
        for m in members:
            if m._iterator is None:
                m._iterator = m.step.items(m.ledger.totals.epochs)
        controls = self.controls
        done = 0
        self.clock_on()
        try:
            while done < max_iters:
                if controls is not None and controls.version != self._seen_version:
                    self._obey(controls)
                    if self.solo is not None or self.finished:
                        return done
                    members = self.stack_members
                items = []
                for m in members:
                    try:
                        items.append(next(m._iterator))
                    except StopIteration:
                        break
                if len(items) < len(members):  # the epoch's batches are all trained (the same count for all)
                    for m in members:
                        m._iterator = None
                    break
                self._before_step(members, items)
                split = members[0].split_chunks > 1
                self.compute.begin()
                if split:  # the app's split switch: each member takes its own k chunk steps
                    results = [m.step(item) for m, item in zip(members, items)]
                    losses = [loss for loss, _ in results]
                    n = results[0][1]
                else:
                    batches = [m.step.batch(item) for m, item in zip(members, items)]
                    xs = torch.stack([x for x, _ in batches])
                    ys = torch.stack([y for _, y in batches])
                    stacked = self.stack.step(xs, ys)
                    losses = list(stacked.unbind(0))
                    n = int(ys.shape[1])
                self.compute.end()
                self.steps += 1
                done += 1
                self._after_step(members, losses, n, split)
                if self.solo is not None or self.finished:
                    return done
                members = self.stack_members
        finally:
            self.clock_off()
        for m in self.active:
            m._flush_losses()
        self._regroup()
        return done

    def _before_step(self, members: list[Run], items: list[Any]) -> None:
        """Warm-up lrs and the noise-scale probes due before this step (off the clocks)."""
        it = members[0].ledger.totals.iters
        if it <= self.stack.warmup_end:
            self.stack.warm_up(it)
            for m in members:
                lr = lr_at(m.spec.lr, it, m.warmup_iters)
                for group in m.optimizer.param_groups:  # its own steps (split) and its epoch_end read it
                    group["lr"] = lr
        probing = [m.probes is not None and m.probes.enabled and m.probes.due(it) for m in members]
        if any(probing):
            self.clock_off()
            for m, item, due in zip(members, items, probing):
                if due:
                    m.probes.before_step(m.model, *m.step.batch(item))
            self.clock_on()
        self._probing = probing

    def _after_step(self, members: list[Run], losses: list[torch.Tensor], n: int, split: bool) -> None:
        """Each member's bookkeeping of the step, as Run._train_iters does it: probes, ledger, evaluations."""
        full = []
        for i, (m, loss) in enumerate(zip(members, losses)):
            probes = m.probes if m.probes is not None and m.probes.enabled else None
            if probes is not None and (self._probing[i] or probes.wants_grads):
                grads = m.step.last_grads() if split else self.stack.last_grads(i)
                probes.after_step(grads, self._probing[i])
            chunks = m.split_chunks
            full.append(m.ledger.record(loss, n, chunks if n % chunks == 0 else 1))
        if any(full):  # a block of losses to the host, off the clock (a NaN ends that run only)
            self.clock_off()
            for m, f in zip(members, full):
                if f:
                    m._flush_losses()
            self.clock_on()
        due_eval = [
            m
            for m in members
            if not m.finished
            and m.eval_every
            and m.ledger.totals.samples >= m._next_eval
            and m.ledger.epoch_iters < m.iters_per_epoch
        ]
        due_noise = [
            m
            for m in members
            if not m.finished
            and m.probes is not None
            and m.probes.noise is not None
            and m.probes.noise.due(m.ledger.totals.samples)
        ]
        if due_eval or due_noise:
            self.clock_off()
            for m in due_eval:
                m._evaluate_slice()
            for m in due_noise:
                if not m.finished:
                    m._read_noise(m.probes.noise)
            self.clock_on()
        if any(m.finished for m in members):
            self.clock_off()
            self._regroup()
            if self.solo is None and not self.finished:
                self.clock_on()

    def _obey(self, controls: Controls) -> None:
        """The app's controls for the whole group: stop, the split switch, pause."""
        self._seen_version = controls.version
        for m in self.members:
            m._seen_version = controls.version
        if controls.stop:
            raise StopRequested()
        for m in self.active:
            m.obey_split(controls.split_chunks)
        if controls.paused:
            self.clock_off()
            for m in self.active:
                m._flush_losses()
            self._regroup()
            if self.solo is not None or self.finished:
                return  # the run left trains on; its own loop pauses it
            waiting = self.stack_members[0]
            waiting.emitter.emit("paused", paused=True, run_waiting=waiting.run_id, iter=waiting.iteration)
            controls.wait_while_paused()
            waiting.emitter.emit("paused", paused=False, run_waiting=waiting.run_id, iter=waiting.iteration)
            if controls.stop:
                raise StopRequested()
            self.clock_on()

    def _regroup(self) -> None:
        """Drop the rows of members that ended; one member left trains on its own from here."""
        if self.solo is not None:
            return
        rows = [i for i, m in enumerate(self.stack_members) if not m.finished]
        if len(rows) < len(self.stack_members) and rows:
            self.stack.keep(rows)
            self.stack_members = [self.stack_members[i] for i in rows]
        if len(rows) == 1:
            self._hand_back(self.stack_members[0])
        elif not rows:
            self.close()

    def _hand_back(self, m: Run) -> None:
        """The last member trains on its own loop from where it is (its clocks become its own again)."""
        self.clock_off()
        wall, compute = WallClock(m.device), ComputeTimer(m.device)
        wall.total, compute.total = m.wall.total, m.compute.total
        m.wall, m.compute = wall, compute
        if m.cpu_threads:  # its own rule again: one run's steps
            m.cpu_threads = cpu_threads(m.spec.batch_size, m.micro_batch, m.settings.perf.cpu_threads)
        self.solo = m
        self.close(solo=m.run_id)

    def close(self, solo: str = "") -> None:
        """Emit fused_group with the group's own totals (once): when its last run ends, when one run is left to
        train alone, or when the sweep stops (the sweep calls it)."""
        if self._closed:
            return
        self._closed = True
        first = self.members[0]
        first.emitter.emit(
            EventType.FUSED_GROUP,
            group=self.label,
            runs=[m.run_id for m in self.members],
            batch_size=first.spec.batch_size,
            steps=self.steps,
            wall_s=self.group_wall,
            compute_s=self.group_compute,
            device=str(self.device),
            cpu_threads=self.threads,
            **({"continues_alone": solo} if solo else {}),
        )


def start_unit(
    unit: Unit, runs: list[Run], restorers: dict[str, Callable[[Run], None] | None], label: str
) -> list[Run | FusedGroup]:
    """Start the runs of `unit` (announcing each with run_started) and return what the sweep advances: one
    FusedGroup of the runs that train fused, and each other run on its own."""
    if not unit.fused or len(runs) < 2:
        for run in runs:
            run.fused_reason = unit.reason
            run.start(restore=restorers.get(run.run_id))
        return list(runs)
    ooms = {run.run_id: run.prepare(restorers.get(run.run_id)) for run in runs}
    ready = [r for r in runs if ooms[r.run_id] is None and r.ledger.totals.epochs < r.settings.epochs]
    group: FusedGroup | None = None
    reason = ""
    try:
        group = FusedGroup(ready, label)
    except FuseUnavailable as exc:
        reason = str(exc)
    for run in runs:
        if group is not None and run in ready:
            run.fused, run.fused_runs = label, [r.run_id for r in ready]
            run.cpu_threads = group.threads  # its steps are the group's
            if run.device.type == "cuda" and not run.fast_path_reason:
                run.fast_path_reason = "it trains fused (perf.fuse_runs): fused steps run eagerly"
        else:
            run.fused_reason = reason or (
                "it did not fit in memory" if ooms[run.run_id] else "it had trained every epoch"
            )
        run.announce(ooms[run.run_id], restored=restorers.get(run.run_id) is not None)
    if group is None:
        return list(runs)
    return [group] + [r for r in runs if r not in ready]
