"""What to call a run: the settings that tell it apart from the other runs of its sweep.

"bs 10" three times in a 3-lr sweep says nothing; "bs 10 lr 0.0548" does. The batch size is
always named (it is what the study is about); lr, seed, [[variants]] arm and split-backward
chunks only when they differ between runs. Pure: titles, legend, table, timing panel,
crosshair line and scaling view all call `run_labels`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from trainer.analysis.figures import setting


@dataclass(frozen=True)
class RunKey:
    """The settings of a run that can tell it apart (RunState has them all)."""

    run: str
    batch_size: int
    lr: float
    seed: int | None = None
    variant: str = ""
    split_chunks: int = 1
    schedule: str = ""  # a scheduled run's batch sizes, "16→64→128"


def fmt_lr(lr: float, digits: int = 3) -> str:
    """An lr as written in the config (0.0548, 0.02, 1.5, 3e-5), else to `digits` significant digits."""
    if lr != lr:  # NaN: unknown
        return "?"
    if digits <= 3:
        return setting(lr)  # as written in the config; a computed (grid) lr in 3 significant figures
    text = f"{lr:.{digits}g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


def _label(key: RunKey, parts: set[str], lr_digits: int) -> str:
    words = [f"bs {key.schedule or key.batch_size}"]
    if "lr" in parts:
        words.append(f"lr {fmt_lr(key.lr, lr_digits)}")
    if "seed" in parts:
        words.append(f"s{key.seed}" if key.seed is not None else "s?")
    if "variant" in parts and key.variant:
        words.append(key.variant)
    if "split" in parts:
        words.append(f"÷{key.split_chunks}" if key.split_chunks > 1 else "plain")
    return " ".join(words)


def run_labels(runs: Iterable[RunKey]) -> dict[str, str]:
    """run id -> label, naming only what differs between the runs.

    The lr gets more digits when 3 do not tell two lrs apart; runs that still share a
    label (the same settings twice) get their run id added.
    """
    keys = list(runs)
    parts = {
        name
        for name, values in (
            ("lr", {k.lr for k in keys}),
            ("seed", {k.seed for k in keys}),
            ("variant", {k.variant for k in keys}),
            ("split", {k.split_chunks for k in keys}),
        )
        if len(values) > 1
    }
    labels: dict[str, str] = {}
    for digits in (3, 4, 5, 6):
        labels = {k.run: _label(k, parts, digits) for k in keys}
        if len(set(labels.values())) == len(labels) or "lr" not in parts:
            break
    seen: dict[str, int] = {}
    for label in labels.values():
        seen[label] = seen.get(label, 0) + 1
    return {run: (f"{label} ({run})" if seen[label] > 1 else label) for run, label in labels.items()}
