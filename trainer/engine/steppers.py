"""Who takes a group's step (trainer.engine.group): chosen once per group, again only when it shrinks to one.

- `OwnSteps`: each member takes its own step (trainer.engine.steps: eager, split-backward, gradient
  accumulation, CUDA graph, data parallel). A group of one trains this way, and so do fused members while
  the app's split switch is on (split-backward needs each run's k chunk steps).
- `StackedSteps`: the members' weights stacked in one `StackedSGD` (trainer.engine.stacked), one vmapped
  step for all K, replayed as one CUDA graph (trainer.engine.stacked_graph) where the members' own steps
  would replay graphs (resident data on a GPU); while split-backward is on it lets each member take its
  own steps (`OwnSteps`), on the same weights (their parameters are views of the stacked rows).

A stepper's `step(members, items)` returns each member's loss (device tensors: no host sync) and the
samples each counts; `grads(members, row)` is a member's gradient of that step, for its probes.
"""

from __future__ import annotations

from typing import Any

import torch

from trainer.data.datasets import as_inputs
from trainer.engine.run import Run
from trainer.engine.stacked import FuseUnavailable, StackedSGD, model_reason
from trainer.engine.stacked_graph import StackedGraph
from trainer.engine.stops import is_oom


class OwnSteps:
    """Each member steps with its own Step."""

    stacked = False

    def step(self, members: list[Run], items: list[Any]) -> tuple[list[torch.Tensor], int]:
        results = [m.parts.step(item) for m, item in zip(members, items)]
        return [loss for loss, _ in results], results[0][1]

    def grads(self, members: list[Run], row: int) -> list[torch.Tensor]:
        return members[row].parts.step.last_grads()

    def warm_up(self, iteration: int) -> None:
        """Nothing: each member's own step reads the lr its optimizer holds (Run.warm_up)."""

    def keep(self, rows: list[int]) -> None:
        """Nothing: no state is shared among the members."""


class StackedSteps:
    """K >= 2 prepared members of one batch size trained by one StackedSGD. FuseUnavailable when they
    cannot (then each trains in a group of its own)."""

    stacked = True
    graph: StackedGraph | None  # the CUDA graph of the stacked step (None: eager stacked steps)

    def __init__(self, members: list[Run]) -> None:
        if len(members) < 2:
            raise FuseUnavailable("a group needs two runs")
        check_members(members)
        self.members = list(members)
        self.own = OwnSteps()
        self._split = False  # whether the last step was the members' own (split-backward on)
        self.graph = None
        hyper = [(m.parts.lr, m.parts.optim_cfg.momentum, m.parts.optim_cfg.weight_decay) for m in members]
        try:
            self.stack = StackedSGD(
                members[0].parts.model,
                [m.parts.model for m in members],
                [m.parts.optimizer for m in members],
                hyper,
            )
            self.stack.set_warmup([m.parts.lr for m in members], [m.parts.warmup_iters for m in members])
            self._try(members[0])
            self.graph = graph_for(self.stack, members)
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

    def _try(self, m: Run) -> None:
        """Run the fused gradient once on two training samples (no update): a model torch.func cannot batch
        fails here, before anything trains, and its runs train alone."""
        x = as_inputs(m.dataset.train.images[:2]).to(m.device)
        y = m.dataset.train.labels[:2].to(m.device, torch.long)
        k = self.stack.k
        losses, _ = self.stack.losses_and_grads(
            x.unsqueeze(0).expand(k, *x.shape), y.unsqueeze(0).expand(k, 2)
        )
        if losses.shape != (k,):
            raise FuseUnavailable(f"the fused step gave losses of shape {tuple(losses.shape)}, not ({k},)")

    def step(self, members: list[Run], items: list[Any]) -> tuple[list[torch.Tensor], int]:
        self._split = members[0].split_chunks > 1
        if self._split:  # the app's split switch: each member takes its own k chunk steps
            return self.own.step(members, items)
        if self.graph is not None:  # the runs' batch indices into the data they share
            return list(self.graph.step(items).unbind(0)), int(items[0].shape[0])
        batches = [m.parts.step.batch(item) for m, item in zip(members, items)]
        xs = torch.stack([x for x, _ in batches])
        ys = torch.stack([y for _, y in batches])
        return list(self.stack.step(xs, ys).unbind(0)), int(ys.shape[1])

    def grads(self, members: list[Run], row: int) -> list[torch.Tensor]:
        return self.own.grads(members, row) if self._split else self.stack.last_grads(row)

    def warm_up(self, iteration: int) -> None:
        self.stack.warm_up(iteration)

    def keep(self, rows: list[int]) -> None:
        """Keep the members at `rows`: the stacked tensors are remade, so every graph that wrote the old
        ones is captured again (the group's, and each member's own from split-backward steps)."""
        self.stack.keep(rows)
        self.members = [self.members[i] for i in rows]
        if self.graph is not None:
            self.graph.reset()
        for m in self.members:
            graph = getattr(m.parts.step, "graph", None)
            if graph is not None:
                graph.reset()

    @property
    def fast_path(self) -> str:
        return "cuda_graph" if self.graph is not None else "eager"


def graph_for(stack: StackedSGD, members: list[Run]) -> StackedGraph | None:
    """The CUDA graph of the stacked step where every member's own step would replay one (they gather
    their batches by index from the same resident data); None elsewhere (eager stacked steps)."""
    graphs = [getattr(m.parts.step, "graph", None) for m in members]
    if any(g is None for g in graphs):
        return None
    first = graphs[0]
    if any(g.images is not first.images or g.labels is not first.labels for g in graphs):
        return None
    return StackedGraph(stack, first.images, first.labels, members[0].parts.batch_size, capture=first.capture)


def check_members(members: list[Run]) -> None:
    """FuseUnavailable unless these prepared runs can share stacked steps."""
    first = members[0]
    for m in members:
        if m.parts.model is None or m.parts.step is None:
            raise FuseUnavailable(f"run {m.run_id} has no model (it did not start)")
        if m.parts.fast_path != first.parts.fast_path:
            raise FuseUnavailable(
                f"its runs step differently ({first.run_id}: {first.parts.fast_path}, {m.run_id}: {m.parts.fast_path})"
            )
        if m.ledger.totals.iters != first.ledger.totals.iters:
            raise FuseUnavailable(
                f"its runs resume from different points ({first.run_id} at iteration "
                f"{first.ledger.totals.iters}, {m.run_id} at {m.ledger.totals.iters})"
            )
    reason = model_reason(first.parts.model)
    if reason:
        raise FuseUnavailable(reason)
