"""The rules of a [branch] table (branched B_crit): one base run to branch from, points it reaches,
enough batch sizes for a fit. Pure: no torch."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from trainer.config.messages import nums
from trainer.config.schema import Config

if TYPE_CHECKING:
    from trainer.config.builder import BuilderBase as Builder

MIN_BRANCH_SIZES = 3  # a B_crit fit needs 3 batch sizes (trainer.analysis.bcrit.MIN_POINTS)


def check_branch(b: Builder, cfg: Config) -> None:
    """The [branch] table, when it lists epochs: each problem names the key and the fix."""
    br, s = cfg.branch, cfg.sweep
    if not br.epochs:
        b.check(
            "branch.batch_sizes",
            not br.batch_sizes,
            "branches need points to start from: list branch.epochs (e.g. [1, 3, 6]) or drop the table",
        )
        return
    if any(b.is_bad(k) for k in ("branch.epochs", "branch.batch_sizes", "branch.lr_factors", "sweep.epochs")):
        return
    for key, values in (
        ("branch.epochs", br.epochs),
        ("branch.batch_sizes", br.batch_sizes),
        ("branch.lr_factors", br.lr_factors),
    ):
        twice = sorted(v for v, n in Counter(values).items() if n > 1)
        b.check(key, not twice, f"{nums(twice)} listed more than once")
    late = [e for e in br.epochs if e > s.epochs]
    b.check(
        "branch.epochs",
        not late,
        f"{nums(late)} later than the base run's last epoch (sweep.epochs = "
        f"{s.epochs}); raise sweep.epochs or branch earlier",
    )
    b.check(
        "branch.batch_sizes",
        len(set(br.batch_sizes)) >= MIN_BRANCH_SIZES,
        f"needs at least {MIN_BRANCH_SIZES} batch sizes for a B_crit fit at each point, got "
        f"{len(set(br.batch_sizes))} (e.g. [16, 32, 64, 128, 256])",
    )
    b.check("branch.lr_factors", bool(br.lr_factors), "must list at least one factor (1.0: the lr rule's lr)")
    train = cfg.data.train_samples
    big = [n for n in br.batch_sizes if train > 0 and n > train]
    b.check("branch.batch_sizes", not big, f"{nums(big)} larger than data.train_samples = {train}")
    one = (
        len(s.batch_sizes) == 1
        and len(s.lrs) <= 1
        and s.lr_grid.points <= 1
        and s.seeds == 1
        and not cfg.variants
    )
    b.check(
        "branch",
        one,
        "branches start from one base run: give sweep.batch_sizes one batch size, one lr "
        "(no lr grid), sweep.seeds = 1 and no [[variants]]",
    )
