"""Split-backward's k as the app offers it: only chunk counts that divide a batch of the sweep, and
what a switch does to each batch size, said before the trainer answers (pure: tests call it).

The trainer splits a run's batch into k chunks only where k divides it (trainer.engine.steps.split_request);
the others train on plain. So `+`/`-` step through the k that divide at least one batch size still to
train, and `s` says which batch sizes switched and which stay plain, in one message.
"""

from __future__ import annotations

from typing import Iterable

#: The chunk counts a viewer may ask for (trainer.runlog.controls accepts 2-64).
MIN_CHUNKS, MAX_CHUNKS = 2, 64


def chunk_choices(batch_sizes: Iterable[int]) -> list[int]:
    """Every k in 2..64 that divides at least one of `batch_sizes` (all of 2..64 when none is known)."""
    sizes = {b for b in batch_sizes if b > 0}
    ks = range(MIN_CHUNKS, MAX_CHUNKS + 1)
    return [k for k in ks if any(b % k == 0 for b in sizes)] if sizes else list(ks)


def step_chunks(k: int, delta: int, batch_sizes: Iterable[int]) -> int:
    """The next k up (delta > 0) or down from `k` among chunk_choices; `k` itself at either end."""
    choices = chunk_choices(batch_sizes)
    if not choices:
        return k
    if delta > 0:
        return next((c for c in choices if c > k), max(k, choices[-1]) if k in choices else choices[-1])
    return next((c for c in reversed(choices) if c < k), min(k, choices[0]) if k in choices else choices[0])


def _sizes(sizes: list[int]) -> str:
    return "batch " + ", ".join(str(b) for b in sizes)


def split_outcome(k: int, batch_sizes: Iterable[int]) -> tuple[str, bool, bool]:
    """(message, partial, none) for switching split-backward on with k chunks over these batch sizes:
    which switch, and which stay plain because k does not divide them."""
    sizes = sorted({b for b in batch_sizes if b > 0})
    takes = [b for b in sizes if b % k == 0]
    plain = [b for b in sizes if b % k != 0]
    if not takes:
        return (
            f"split ÷{k}: {k} divides none of the batch sizes left to train ({', '.join(map(str, sizes))}), "
            "so nothing switched; +/- pick a k that divides one",
            False,
            True,
        )
    if not plain:
        return f"split ÷{k} on for {_sizes(takes)}", False, False
    them = "it" if len(plain) == 1 else "them"
    return (
        f"split ÷{k} on for {_sizes(takes)}; {_sizes(plain)} stay{'s' if len(plain) == 1 else ''} plain "
        f"({k} does not divide {them})",
        True,
        False,
    )
