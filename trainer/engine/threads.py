"""How many CPU threads a run's steps use: chosen by the work of one step, unless perf.cpu_threads says.

Measured on a 2-core VM (simple_cnn, plain steps, median of 3 alternating rounds, µs per sample with 1
vs 2 threads): batch 1 893 vs 1632 (one thread 1.8x faster: the step is too small to share out and the
second thread only spins), batch 6 252 vs 229, batch 16 150 vs 122, batch 32 120 vs 87, batch 60 107
vs 70 (two threads 1.5x faster). So a step of fewer than MIN_SHARED_BATCH samples runs on one thread and
a larger one on every core torch would use by itself (its default: the physical cores).
"""

from __future__ import annotations

import torch

MIN_SHARED_BATCH = 16  # samples per forward pass from which every core helps (see the module's figures)
DEFAULT_THREADS = max(1, torch.get_num_threads())  # torch's own choice, read before the trainer sets any


def cpu_threads(
    batch_size: int, micro_batch: int = 0, configured: int = 0, cores: int = DEFAULT_THREADS
) -> int:
    """Threads for CPU steps of `batch_size` samples (`micro_batch` of them per pass when set);
    `configured` (perf.cpu_threads) wins when it is not 0."""
    if configured:
        return configured
    per_pass = min(batch_size, micro_batch) if micro_batch else batch_size
    return max(1, cores) if per_pass >= MIN_SHARED_BATCH else 1


def use_threads(n: int) -> None:
    """Set torch's intra-op threads to `n` (0: leave them), only when they differ: runs and fused groups of
    other batch sizes may have set others in between."""
    if n and torch.get_num_threads() != n:
        torch.set_num_threads(n)
