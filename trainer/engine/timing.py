"""Honest timers: epoch wall time and pure compute time (forward + backward + step).

On CUDA, kernels run asynchronously: a host clock around a step measures only the
launch. Compute time is therefore the sum of CUDA-event intervals recorded around
each step, read back once per slice (one sync), and wall time is a host clock read
after `torch.cuda.synchronize()` at both ends. On CPU both are `perf_counter`.

data time = wall - compute: everything in the epoch that is not the step itself
(data loading, per-sample transforms, host-to-device copies, Python overhead).
"""

from __future__ import annotations

import time

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class WallClock:
    """Accumulates synchronised host time over start/stop intervals."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.total = 0.0
        self._t0: float | None = None

    @property
    def running(self) -> bool:
        return self._t0 is not None

    def start(self) -> None:
        if self._t0 is None:
            synchronize(self.device)
            self._t0 = time.perf_counter()

    def stop(self) -> None:
        if self._t0 is not None:
            synchronize(self.device)
            self.total += time.perf_counter() - self._t0
            self._t0 = None

    def take(self) -> float:
        """Return the accumulated seconds and reset (the clock must be stopped)."""
        total, self.total = self.total, 0.0
        return total


class ComputeTimer:
    """Sums the time of the steps between `begin()` and `end()` calls.

    CUDA: a pool of event pairs, recorded on the current stream (no host sync);
    `collect()` synchronises once and adds up the elapsed times. CPU: perf_counter.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.total = 0.0
        self._t0 = 0.0
        self._pool: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self._used = 0

    def begin(self) -> None:
        if self.cuda:
            if self._used == len(self._pool):
                self._pool.append(
                    (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                )
            self._pool[self._used][0].record()
        else:
            self._t0 = time.perf_counter()

    def end(self) -> None:
        if self.cuda:
            self._pool[self._used][1].record()
            self._used += 1
        else:
            self.total += time.perf_counter() - self._t0

    def collect(self) -> None:
        """Fold recorded CUDA intervals into `total` (one sync); free on CPU."""
        if self.cuda and self._used:
            self._pool[self._used - 1][1].synchronize()
            ms = 0.0
            for start, end in self._pool[: self._used]:
                ms += start.elapsed_time(end)
            self.total += ms / 1000.0
            self._used = 0

    def take(self) -> float:
        self.collect()
        total, self.total = self.total, 0.0
        return total
