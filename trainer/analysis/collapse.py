"""Collapse: a run that lost what it learned, or never learned at all.

A pure function of a run's evaluations (test accuracy, and the mean training loss between
evaluations), so the run loop can ask after every evaluation and the report can ask of a finished
run's recorded epochs. No torch.

Two verdicts, both reported as the status `collapsed` with a reason that tells them apart:

- **fell back** (`kind="fell_back"`): the run's accuracy is back within `NEAR_CHANCE` (5 points) of
  chance (1 / classes) after an earlier evaluation at least `WELL_ABOVE` (25 points) above chance, it has
  stayed there up to the last evaluation, and that is confirmed: by `CONFIRM_EVALS` (2) evaluations in a
  row near chance, or, at the run's last evaluation (`final`: no further one will come), by the training
  loss before it agreeing (at least `ln(classes)` less `LOSS_BAND`: the loss of a network that guesses,
  or worse). One evaluation alone is not enough: on MNIST a run at batch 64 and lr 0.4 dipped
  0.35 -> 0.09 and was back at 0.43 at the next evaluation before it really collapsed, while a network
  that has lost what it learned (dead ReLUs, a saturated softmax) stays at chance: the study's batch 1 and
  batch 16 at lr 0.2 (92.6% -> 82.9% -> 76.2% -> 11.35%) never came back. Where: the first evaluation of
  that last stretch near chance. A run that climbs back above chance is not collapsed.
- **never learned** (`kind="never_learned"`): every evaluation so far is within `NEAR_CHANCE` of chance,
  there are at least `STUCK_MIN_EVALS` (3) of them, every training loss recorded is within `LOSS_BAND`
  (3%) of ln(classes) (the loss of a uniform guess), and the loss has not fallen by `MIN_FALL` (0.05% of
  ln(classes), 0.0012 nats for 10 classes) from the first evaluation to the last. The last condition is
  what keeps a slow learner out: measured on CPU (synthetic-digits, 12,000 samples, SimpleModel, momentum
  0.5), batch 1,200 at lr 0.02 sat at 10% accuracy with its epoch loss falling 2.3068 -> 2.3058 -> 2.3049
  (learning, slowly), while batch 60 at lr 0.8 sat at 10% with 2.3047 -> 2.3084 -> 2.3085 (dead). A loss
  that fell at every evaluation is learning too, however little: batch 200 on 600 samples at lr 0.02 (3
  steps an epoch) fell 2.30957 -> 2.30900 -> 2.30845, 0.0011 nats in 9 steps, under MIN_FALL. Without
  losses no never-learned verdict is given: accuracy alone cannot tell slow from dead. Where: the
  evaluation at which the conditions first held. A later climb above chance clears it; the loop should
  therefore mark such a run and let it train on rather than end it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

NEAR_CHANCE = 0.05  # "within a few points of chance": accuracy <= 1/classes + 5 points
WELL_ABOVE = 0.25  # "well above chance": accuracy >= 1/classes + 25 points (35% for 10 classes)
STUCK_MIN_EVALS = 3  # evaluations at chance before "never learned" can be said
CONFIRM_EVALS = 2  # evaluations in a row near chance that confirm a fall back
LOSS_BAND = 0.03  # "loss at ln(classes)": within 3% of it
MIN_FALL = 0.0005  # a loss that fell by more than this share of ln(classes) is still learning


@dataclass(frozen=True)
class Collapse:
    """Where and how a run collapsed."""

    index: int  # the evaluation (0-based, in the order given) where the collapse is established
    kind: str  # "fell_back" | "never_learned"
    reason: str  # in words, with the figures


def _finite(value: float | None) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def find_collapse(
    test_acc: Sequence[float],
    train_loss: Sequence[float | None] | None = None,
    n_classes: int = 10,
    final: bool = False,
) -> Collapse | None:
    """The collapse in a run's evaluations so far, or None (see the module docstring).

    test_acc: accuracy (0..1) at each evaluation, oldest first. train_loss: the mean training loss of
    the stretch before each evaluation (same length; None where unknown), or None. final: the last
    evaluation is the run's last (a fall back seen there once is confirmed by its training loss).
    """
    if n_classes < 2:
        raise ValueError(f"collapse needs at least 2 classes, got {n_classes}")
    if train_loss is not None and len(train_loss) != len(test_acc):
        raise ValueError(f"{len(test_acc)} accuracies but {len(train_loss)} training losses")
    chance = 1.0 / n_classes
    near, well = chance + NEAR_CHANCE, chance + WELL_ABOVE
    accs = [a if _finite(a) else None for a in test_acc]
    if not accs or accs[-1] is None or accs[-1] > near:
        return None
    start = len(accs) - 1  # first evaluation of the last stretch at chance
    while start > 0 and accs[start - 1] is not None and accs[start - 1] <= near:
        start -= 1
    peak = max((a for a in accs[:start] if a is not None), default=None)
    if peak is not None and peak >= well:
        stretch = len(accs) - start
        if stretch >= CONFIRM_EVALS:
            confirmed = f"{stretch} evaluations in a row"
        else:
            loss = train_loss[-1] if final and train_loss is not None else None
            ln_c = math.log(n_classes)
            if not (_finite(loss) and loss >= (1 - LOSS_BAND) * ln_c):
                return None  # not confirmed yet: the next evaluation may be back above chance
            confirmed = (
                f"at the last evaluation, with the training loss at {loss:.3f} (ln({n_classes}) = {ln_c:.3f})"
            )
        return Collapse(
            start,
            "fell_back",
            f"test accuracy fell back to {accs[start]:.1%} (chance {chance:.0%}) after reaching {peak:.1%} "
            f"({confirmed})",
        )
    if start != 0 or train_loss is None:
        return None
    return _never_learned(accs, train_loss, n_classes, chance)


def _never_learned(
    accs: list[float | None], losses: Sequence[float | None], n_classes: int, chance: float
) -> Collapse | None:
    """The first evaluation at which a run at chance throughout shows a flat loss at ln(classes)."""
    ln_c = math.log(n_classes)
    in_band = [_finite(v) and abs(v - ln_c) <= LOSS_BAND * ln_c for v in losses]
    if not all(in_band):
        return None  # a loss away from ln(classes) (or unknown) is not the flat loss of a dead network
    for n in range(STUCK_MIN_EVALS, len(accs) + 1):
        fall = losses[0] - losses[n - 1]
        falling = all(later < earlier for earlier, later in zip(losses[: n - 1], losses[1:n]))
        if fall <= MIN_FALL * ln_c and not falling:
            return Collapse(
                n - 1,
                "never_learned",
                f"test accuracy stayed at chance ({max(a for a in accs[:n] if a is not None):.1%} at best, "
                f"chance {chance:.0%}) with the training loss flat at ln({n_classes}) = {ln_c:.3f} "
                f"({losses[0]:.4f} -> {losses[n - 1]:.4f}) over {n} evaluations",
            )
    return None
