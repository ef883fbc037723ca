"""The stacked step of K fused runs as one CUDA graph, replayed per iteration (perf.fuse_runs on a GPU).

A fused step already does the work of K runs in one pass of batched kernels; replaying it as a CUDA graph
also removes the launch of each of those kernels from Python, so an lr grid on a GPU gets both savings.
`StackedGraph` does for `StackedSGD` (trainer.engine.stacked) what `GraphStep` (trainer.engine.cuda_graph)
does for one run's step:

- Static inputs: an index buffer [K, B] (each run's batch indices into the resident data the runs share;
  one copy per iteration), the gather of images and labels inside the graph, the losses written to a
  static [K] buffer. The per-run lr (-lr, [K]) is a device tensor the warm-up overwrites in place
  (StackedSGD.warm_up), momentum and weight decay are [K] tensors too, so no value is baked into the graph.
- The first `warmup` full-size steps are eager (on a side stream, as capture requires), then the next
  one captures and every later full-size one replays. A smaller last batch of an epoch steps eagerly.
- `reset` drops the graph when the stacked tensors are remade (a member left: StackedSGD.keep); the next
  full-size steps warm up and capture again.
- A capture that fails (not out of memory) leaves the steps eager (`capture_error` says why): the graph
  can only ever cost speed, never a run.

On a CPU (or with `capture=False`) nothing is captured: after the warm-up the same static-buffer body the
graph would capture runs eagerly, so CI checks that logic without a GPU.
"""

from __future__ import annotations

import torch

from trainer.engine.stacked import StackedSGD


class StackedGraph:
    """The fused step of `stack` on batches gathered from `images`/`labels` by index (see the module)."""

    def __init__(
        self,
        stack: StackedSGD,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        *,
        warmup: int = 3,
        capture: bool | None = None,
    ) -> None:
        if warmup < 1:
            raise ValueError(f"warmup must be >= 1, got {warmup}: eager steps come before the capture")
        self.stack, self.images, self.labels = stack, images, labels
        self.batch_size, self.warmup = batch_size, warmup
        self.device = images.device
        self.capture = self.device.type == "cuda" if capture is None else capture
        if self.capture and self.device.type != "cuda":
            raise ValueError(f"capture=True needs the data on a CUDA device, not {self.device}")
        self._side = torch.cuda.Stream(self.device) if self.capture else None
        self.capture_error = ""
        self.replays = 0  # steps done by the static-buffer body (replayed, or eagerly without capture)
        self.eager_steps = 0
        self.reset()

    def reset(self) -> None:
        """Forget the graph and its static buffers (the stacked tensors were remade, K may differ)."""
        k = self.stack.k
        self._idx = torch.zeros(k, self.batch_size, dtype=torch.long, device=self.device)
        self._losses = torch.zeros(k, dtype=torch.float32, device=self.device)
        self._graph: torch.cuda.CUDAGraph | None = None
        self._eager_done = 0

    @property
    def captured(self) -> bool:
        return self._graph is not None

    def gather(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The runs' batches [K, B, ...] and labels [K, B] at indices [K, B]."""
        return self.images[idx], self.labels[idx]

    def step(self, items: list[torch.Tensor]) -> torch.Tensor:
        """One fused step on each run's batch indices (`items[i]`: run i's); returns the runs' losses ([K],
        a device tensor later steps do not overwrite: no host sync)."""
        if items[0].shape[0] != self.batch_size or self.capture_error:
            return self._eager(torch.stack(items), side=False)
        if self._eager_done < self.warmup:
            self._eager_done += 1
            return self._eager(torch.stack(items), side=self.capture)
        torch.stack(items, out=self._idx)
        if not self.capture:
            self._body()
        else:
            if self._graph is None:
                self._graph = self._capture()
                if self._graph is None:  # the capture failed: eager from here
                    return self._eager(self._idx.clone(), side=False)
            self._graph.replay()
        self.replays += 1
        return self._losses.clone()

    def _eager(self, idx: torch.Tensor, *, side: bool) -> torch.Tensor:
        self.eager_steps += 1
        if not side:
            return self.stack.step(*self.gather(idx))
        current = torch.cuda.current_stream(self.device)
        self._side.wait_stream(current)
        with torch.cuda.stream(self._side):
            losses = self.stack.step(*self.gather(idx))
        current.wait_stream(self._side)
        losses.record_stream(current)  # made on the side stream, read on the current one
        return losses

    def _body(self) -> None:
        """What the graph captures: gather by the static indices, the fused step, the losses to the buffer."""
        self._losses.copy_(self.stack.step(*self.gather(self._idx)))

    def _capture(self) -> torch.cuda.CUDAGraph | None:
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self._body()
        except torch.cuda.OutOfMemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - the eager fused step still trains correctly
            if "out of memory" in str(exc).lower():
                raise
            self.capture_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            self.stack.grads = {}  # may point into the abandoned capture's memory
            return None
        return graph
