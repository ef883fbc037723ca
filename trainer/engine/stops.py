"""How a training step ends early: a stop from the app inside a long step, or out of memory.

`stop_inside_steps` makes a stop interrupt a step between two layers; `is_oom` tells an out-of-memory
error from other failures (a run that does not fit ends `oom`, any other failure `failed`), and
`oom_reason` is what the user is told then.
"""

from __future__ import annotations

from typing import Any

import torch

from trainer.engine.accumulate import suggest_micro_batch
from trainer.runlog.controls import Controls, StopRequested

#: Steps of at least this many samples look for a stop inside the step too (`stop_inside_steps`): one
#: of them can take seconds on a CPU (batch 6000: 4-8 s on one core), and a stop is due within 2 s.
STOP_INSIDE_MIN_BATCH = 512


def stop_inside_steps(model: Any, controls: Controls) -> list[Any]:
    """Make a stop interrupt a training step between two layers: a forward pre-hook on every leaf
    module and a gradient hook on every parameter raise StopRequested once `controls.stop` is set
    (in training mode: an evaluation is never cut short). The step is abandoned before
    its optimizer update, so the weights stay those after the last whole step. Returns the hooks'
    handles (`.remove()` each). Costs a few microseconds a step: for large batches only. A gradient
    probe before the step (trainer.measure.probes, torch.func) is cut short the same way."""

    def forward(module: torch.nn.Module, _args: Any) -> None:
        if controls.stop and module.training:  # eval mode: an evaluation, never cut short
            raise StopRequested()

    def backward(*_: Any) -> None:  # a gradient hook runs in a backward pass only (with grad mode off)
        if controls.stop:
            raise StopRequested()

    handles = [
        m.register_forward_pre_hook(forward) for m in model.modules() if next(m.children(), None) is None
    ]
    handles += [p.register_hook(backward) for p in model.parameters() if p.requires_grad]
    return handles


def is_oom(exc: BaseException) -> bool:
    """True for CUDA (or host) out-of-memory errors."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()
    )


def oom_reason(batch_size: int, micro_batch: int, device: torch.device, exc: BaseException) -> str:
    """What to tell the user when a batch size does not fit in memory."""
    where = "GPU" if device.type == "cuda" else "host"
    # Gradient accumulation gives the same step with less memory: suggest a micro-batch
    # a quarter the size of what did not fit.
    micro = suggest_micro_batch(batch_size, micro_batch or batch_size)
    accumulate = f"sweep.micro_batch = {micro} (the same step from micro-batches that fit), " if micro else ""
    return (
        f"batch size {batch_size} does not fit in {where} memory ({type(exc).__name__}); "
        f"try {accumulate}a smaller batch size, or data.pipeline = \"dataloader\" to keep the dataset off the device"
    )
