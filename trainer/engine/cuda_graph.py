"""The fast path: the whole training step as one CUDA graph per run, replayed per iteration.

On a modern GPU the study's tiny model spends almost all of an iteration launching ~50 small kernels
from Python. Capturing the step once - gather of the batch from the resident data by index, forward,
NLL loss, backward, SGD-with-momentum update, loss written to a device buffer - and replaying it costs
one launch per iteration, while computing exactly what the eager step computes.

How `GraphStep` keeps the results of the eager path:
- The first `warmup` full-size steps of each mode (plain, or split-backward with k chunks) ARE the eager
  steps (`trainer.engine.split.plain_step` / `split_step`, on a side stream as capture requires), so the
  optimizer's momentum buffers exist; the next full-size call captures and replays; later calls copy
  the batch's indices into the graph's static index buffer and replay.
- The graph updates the parameters and the optimizer's own momentum buffers in place, so eager steps
  (a partial last batch, warm-up of another mode) and graph replays continue one training run.
- torch.optim.SGD turns a Tensor lr into a Python number (`_to_scalar`, a host sync that capture
  forbids and that would bake the value into the graph), so the graph does the SGD-with-momentum
  update itself with `torch._foreach_*` ops (`sgd_momentum_update`) reading lr from a device tensor;
  `set_lr` (warm-up) changes that tensor without re-capture. The ops are torch.optim.SGD's multi-tensor
  ones except the last (p - lr*buf as two roundings where SGD may fuse them): equal up to float rounding.
- Capture failures other than out-of-memory fall back to eager steps for that mode (`capture_errors`
  says why), so the fast path can only ever cost speed, never a run.

On CPU (or with `capture=False`) no graph is captured: the first `warmup` calls are eager and later
full-size calls run the same static-buffer body the graph would capture, eagerly - so CI checks the
captured logic (index buffer, device lr, own SGD, loss buffer) without a GPU.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from trainer.config import FAST_PATHS, PRECISIONS, SPLIT_METHODS
from trainer.engine.split import plain_step, split_step
from trainer.models.grads import chunk_gradients


class FastPathUnavailable(ValueError):
    """perf.fast_path = "cuda_graph" was asked for where CUDA graphs cannot run."""


def graph_supported(device: torch.device | str, pipeline: str) -> bool:
    """True where the graph path can run: a CUDA device and the resident pipeline.

    The dataloader pipeline hands the step fresh host batches each iteration; only resident data can
    be gathered inside a graph by a static index tensor.
    """
    device = torch.device(device)
    return device.type == "cuda" and pipeline == "resident" and torch.cuda.is_available()


def resolve_fast_path(setting: str, device: torch.device | str, pipeline: str = "resident") -> str:
    """perf.fast_path -> "cuda_graph" or "eager" for this device and data pipeline.

    "auto": cuda_graph on CUDA with the resident pipeline, eager elsewhere. "cuda_graph" where it
    cannot run raises FastPathUnavailable naming the cause and the fix.
    """
    if setting not in FAST_PATHS:
        raise ValueError(f"perf.fast_path = {setting!r} is not one of: {', '.join(FAST_PATHS)}")
    if setting == "eager":
        return "eager"
    if graph_supported(device, pipeline):
        return "cuda_graph"
    if setting == "auto":
        return "eager"
    device = torch.device(device)
    if device.type != "cuda":
        cause = f"the device is {device.type}" + ("" if torch.cuda.is_available() else " (no CUDA GPU found)")
    else:
        cause = f'data.pipeline = "{pipeline}" hands each step new host batches'
    raise FastPathUnavailable(
        f'perf.fast_path = "cuda_graph" needs a CUDA device and data.pipeline = "resident", but {cause}; '
        'set perf.fast_path = "auto" (graphs where possible) or "eager"'
    )


def index_batches(perm: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    """Consecutive index slices of an epoch's permutation (views: no copy, no host sync).

    The same slices ResidentBatches gathers its batches by; the last may be smaller.
    """
    for start in range(0, perm.shape[0], batch_size):
        yield perm[start : start + batch_size]


@torch.no_grad()
def sgd_momentum_update(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    bufs: list[torch.Tensor],
    lr: torch.Tensor,
    *,
    momentum: float,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
) -> None:
    """torch.optim.SGD's update with lr read from a 0-d tensor on the parameters' device.

    Updates `params` and the momentum buffers `bufs` in place (the optimizer's own state tensors, so
    eager steps and graph replays share them). Buffers must already exist (made by a first eager
    step); with momentum 0 `bufs` is ignored. Capturable: no host sync, lr is read at replay time.
    """
    if weight_decay != 0:
        grads = torch._foreach_add(grads, params, alpha=weight_decay)
    if momentum != 0:
        # torch.optim.SGD's multi-tensor ops, in its order.
        torch._foreach_mul_(bufs, momentum)
        torch._foreach_add_(bufs, grads, alpha=1 - dampening)
        grads = torch._foreach_add(grads, bufs, alpha=momentum) if nesterov else bufs
    torch._foreach_sub_(params, torch._foreach_mul(grads, lr))


def _check_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[nn.Parameter]:
    """The trainable parameters, after checking the optimizer is one the graph can reproduce."""
    if type(optimizer) is not torch.optim.SGD:
        raise ValueError(f"GraphStep reproduces torch.optim.SGD only, got {type(optimizer).__name__}")
    if len(optimizer.param_groups) != 1:
        raise ValueError(f"GraphStep needs one parameter group, got {len(optimizer.param_groups)}")
    group = optimizer.param_groups[0]
    if group.get("maximize") or isinstance(group.get("weight_decay"), torch.Tensor):
        raise ValueError("GraphStep does not reproduce SGD with maximize=True or a Tensor weight_decay")
    params = [p for p in model.parameters() if p.requires_grad]
    group_params = list(group["params"])
    if len(params) != len(group_params) or any(a is not b for a, b in zip(params, group_params)):
        raise ValueError("the optimizer must hold exactly the model's trainable parameters, in model order")
    return params


class GraphStep:
    """One training step of a run, as a replayed CUDA graph where possible (see module docstring).

    `step(idx)` trains on images[idx], labels[idx] and returns the batch's mean loss as a device tensor
    later steps do not overwrite (no host sync); other sizes (a partial last batch) run eagerly. The graph
    updates the model's and optimizer's tensors in place: replacing them needs `reset`.

    precision "bf16" runs forward (and backward) under bf16 autocast; channels_last converts the model
    (in place) and each batch to channels-last format. Both are off by default (they change results).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        *,
        split_chunks: int = 1,
        split_method: str = "vectorized",
        warmup: int = 3,
        precision: str = "fp32",
        channels_last: bool = False,
        capture: bool | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if warmup < 1:
            raise ValueError(
                f"warmup must be >= 1, got {warmup}: eager steps make the optimizer's momentum "
                "buffers before the graph is captured"
            )
        if split_method not in SPLIT_METHODS:
            raise ValueError(
                f"unknown split-backward method {split_method!r}; choose one of: {', '.join(SPLIT_METHODS)}"
            )
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r} is not one of: {', '.join(PRECISIONS)}")
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"images hold {images.shape[0]} samples but labels hold {labels.shape[0]}")
        self.device = images.device
        if capture is None:
            capture = self.device.type == "cuda"
        if capture and self.device.type != "cuda":
            raise ValueError(f"capture=True needs the data on a CUDA device, not {self.device}")
        self.params = _check_optimizer(model, optimizer)
        self.model = model
        self.optimizer = optimizer
        self.images = images
        self.labels = labels
        self.batch_size = batch_size
        self.split_method = split_method
        self.warmup = warmup
        self.precision = precision
        self.channels_last = channels_last
        self.capture = capture
        if channels_last:
            model.to(memory_format=torch.channels_last)

        group = optimizer.param_groups[0]
        self._lr_value = float(group["lr"])
        # float32 like the parameters: eager SGD also applies lr as a float32 alpha.
        self._lr = torch.tensor(self._lr_value, device=self.device, dtype=torch.float32)
        self._idx = torch.zeros(batch_size, dtype=torch.long, device=self.device)
        self._loss = torch.zeros((), device=self.device, dtype=torch.float32)
        self._side = torch.cuda.Stream(self.device) if capture else None

        self.split_chunks = 1
        self._eager_done: dict[int, int] = {}  # mode (chunks) -> full-size eager steps taken
        self._graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self._static_grads: dict[int, list[torch.Tensor]] = {}  # keep graph outputs alive
        self._last_chunk_grads: dict[int, list[torch.Tensor]] = {}  # mode -> the body's last-chunk grads
        self._last_from_body = False  # whether the latest step ran the body (replay) or an eager step
        self.capture_errors: dict[int, str] = {}  # mode -> why its capture failed (eager then)
        self.replays = 0  # steps done by the graph body (replayed, or run eagerly without capture)
        self.eager_steps = 0  # steps done by plain_step / split_step
        self.set_split(split_chunks)

    # -- public ------------------------------------------------------------------------------

    @property
    def captured_modes(self) -> list[int]:
        """Split chunk counts with a captured graph (1 = the plain step)."""
        return sorted(self._graphs)

    def last_grads(self) -> list[torch.Tensor]:
        """The gradient of the latest step (its last chunk's in split mode), one tensor per parameter.

        After a replay these are the graph's static tensors (overwritten by the next replay: read
        or copy them before stepping again); after an eager step, the parameters' .grad.
        """
        if self._last_from_body:
            return self._last_chunk_grads[self.split_chunks]
        return [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]

    def reset(self) -> None:
        """Forget the captured graphs (the model's parameters or the optimizer's momentum buffers are other
        tensors now: a fused group remade its stacked tensors); each mode warms up and captures again."""
        self._graphs.clear()
        self._static_grads.clear()
        self._last_chunk_grads.clear()
        self._eager_done.clear()
        self._last_from_body = False

    def set_lr(self, lr: float) -> None:
        """Change the learning rate of later steps, eager and graph alike (no re-capture)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self._sync_lr(lr)

    def set_split(self, chunks: int) -> None:
        """Switch to split-backward with `chunks` chunks (1 = plain step); each mode has its own graph."""
        if not isinstance(chunks, int) or isinstance(chunks, bool) or chunks < 1:
            raise ValueError(f"split-backward chunks must be a whole number >= 1, got {chunks!r}")
        if self.batch_size % chunks != 0:
            raise ValueError(f"split-backward chunks={chunks} does not divide batch size {self.batch_size}")
        self.split_chunks = chunks

    def gather(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch at these indices of the resident data, in the model's memory format."""
        x = self.images.index_select(0, idx)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self.labels.index_select(0, idx)

    def step(self, idx: torch.Tensor) -> torch.Tensor:
        """One training step on the samples at `idx`; returns their mean loss (device tensor)."""
        # The loop's warm-up sets the group's lr, as it does for eager steps; follow it for free.
        lr = self.optimizer.param_groups[0]["lr"]
        if lr != self._lr_value:
            self._sync_lr(lr)
        mode = self.split_chunks
        self._last_from_body = False
        if idx.shape[0] != self.batch_size:
            return self._eager(idx, on_side_stream=False)
        if mode in self.capture_errors:
            return self._eager(idx, on_side_stream=False)
        done = self._eager_done.get(mode, 0)
        if done < self.warmup:
            self._eager_done[mode] = done + 1
            return self._eager(idx, on_side_stream=self.capture)
        self._idx.copy_(idx, non_blocking=True)
        if not self.capture:
            self._body(mode)
        else:
            graph = self._graphs.get(mode)
            if graph is None:
                graph = self._capture(mode)
                if graph is None:  # capture failed: this mode stays eager
                    return self._eager(idx, on_side_stream=False)
            graph.replay()
        self.replays += 1
        self._last_from_body = True
        return self._loss.clone()

    # -- internals -------------------------------------------------------------------------------

    def _sync_lr(self, lr: float) -> None:
        self._lr_value = float(lr)
        self._lr.fill_(self._lr_value)  # a kernel on the device, no host sync

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "bf16":
            # The autocast weight cache must be off inside CUDA graphs (PyTorch CUDA graphs notes).
            return torch.autocast(self.device.type, dtype=torch.bfloat16, cache_enabled=False)
        return contextlib.nullcontext()

    def _eager(self, idx: torch.Tensor, *, on_side_stream: bool) -> torch.Tensor:
        """An eager step: exactly trainer.engine.split's plain_step / split_step (as the eager loop does)."""
        self.eager_steps += 1
        if not on_side_stream:
            return self._eager_step(idx)
        # Warm-up before capture runs on a side stream, as torch.cuda.graph requires.
        current = torch.cuda.current_stream(self.device)
        self._side.wait_stream(current)
        with torch.cuda.stream(self._side):
            loss = self._eager_step(idx)
        current.wait_stream(self._side)
        loss.record_stream(current)  # made on the side stream, read on the current one
        return loss

    def _eager_step(self, idx: torch.Tensor) -> torch.Tensor:
        x, y = self.gather(idx)
        k = self.split_chunks
        with self._autocast():
            if k > 1 and x.shape[0] % k == 0:
                return split_step(self.model, self.optimizer, x, y, k, self.split_method)
            return plain_step(self.model, self.optimizer, x, y)

    def _momentum_buffers(self) -> list[torch.Tensor]:
        group = self.optimizer.param_groups[0]
        if group["momentum"] == 0:
            return []
        bufs = [self.optimizer.state[p].get("momentum_buffer") for p in self.params]
        if any(b is None for b in bufs):
            raise RuntimeError("the optimizer has no momentum buffers yet: an eager step must come first")
        return bufs

    def _body(self, chunks: int) -> None:
        """The step the graph captures: reads the static index buffer and lr, writes the static loss."""
        group = self.optimizer.param_groups[0]
        bufs = self._momentum_buffers()
        x, y = self.gather(self._idx)
        if chunks == 1:
            for p in self.params:
                p.grad = None  # inside capture: backward allocates the graph's static grads
            with self._autocast():
                loss = F.nll_loss(self.model(x), y)
            loss.backward()
            chunk_grads = [[p.grad for p in self.params]]
        else:
            with self._autocast():
                loss, stacked = chunk_gradients(self.model, x, y, chunks, self.split_method)
            # k steps in chunk order, every chunk's gradient taken at the same parameters (as split_step).
            chunk_grads = [[g[i] for g in stacked] for i in range(chunks)]
        for grads in chunk_grads:
            sgd_momentum_update(
                self.params,
                grads,
                bufs,
                self._lr,
                momentum=group["momentum"],
                dampening=group["dampening"],
                weight_decay=group["weight_decay"],
                nesterov=group["nesterov"],
            )
        self._loss.copy_(loss.detach())
        self._last_chunk_grads[chunks] = list(chunk_grads[-1])
        if self.capture:
            self._static_grads[chunks] = [g for grads in chunk_grads for g in grads]

    def _capture(self, chunks: int) -> torch.cuda.CUDAGraph | None:
        """Capture the body of this mode (its own memory pool); None if capture failed (not OOM)."""
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self._body(chunks)
        except torch.cuda.OutOfMemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - the eager step still trains correctly
            if "out of memory" in str(exc).lower():
                raise
            self.capture_errors[chunks] = f"{type(exc).__name__}: {exc}".splitlines()[0]
            self._static_grads.pop(chunks, None)
            for p in self.params:
                p.grad = None  # may point into the abandoned capture's memory
            return None
        self._graphs[chunks] = graph
        return graph
