"""The rules of a [branch] table (branched B_crit): one base run to branch from, points it reaches,
enough batch sizes for a fit. Pure: no torch."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from trainer.config import batch_schedule
from trainer.config.bounds import MAX_BATCH
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
    one = len(s.lrs) <= 1 and s.lr_grid.points <= 1 and s.seeds == 1 and not cfg.variants
    b.check(
        "branch",
        one,
        "branches start from one base run: give the sweep one lr (no lr grid), sweep.seeds = 1 and no [[variants]]",
    )
    if b.is_bad("sweep.batch_sizes") or b.is_bad("branch.base_batch_size"):
        return
    if br.base_batch_size:
        b.check(
            "branch.base_batch_size",
            br.base_batch_size in s.batch_sizes,
            f"{br.base_batch_size} is not one of sweep.batch_sizes ({nums(s.batch_sizes)}): the base run is one "
            "of the sweep's runs",
        )
    else:
        b.check(
            "branch.base_batch_size",
            len(s.batch_sizes) == 1,
            f"sweep.batch_sizes lists {len(s.batch_sizes)} batch sizes: name the one the branches start from "
            f"(e.g. branch.base_batch_size = {s.batch_sizes[0]})",
        )


def base_batch_size(cfg: Config) -> int:
    """The batch size of the run the branches start from."""
    return cfg.branch.base_batch_size or cfg.sweep.batch_sizes[0]


def check_schedule(b: Builder, cfg: Config) -> None:
    """sweep.batch_schedule: a schedule that parses, within the data, with something to compare it to."""
    s, key = cfg.sweep, "sweep.batch_schedule"
    if not s.batch_schedule.strip():
        return
    try:
        stages = batch_schedule.parse(s.batch_schedule)
    except batch_schedule.ScheduleError as exc:
        b.problem(key, str(exc))
        return
    if s.batch_schedule.strip() == batch_schedule.PROPOSED:
        b.check(
            key,
            bool(cfg.branch.epochs),
            '"proposed" trains the schedule the sweep\'s branches propose: add a [branch] table with epochs, '
            "or give the schedule (e.g. \"0:32 24000:64\")",
        )
    sizes = [st.batch_size for st in stages]
    train = cfg.data.train_samples
    big = [n for n in sizes if n > MAX_BATCH or (train > 0 and n > train)]
    b.check(
        key, not big, f"batch sizes {nums(big)} larger than the training set (data.train_samples = {train})"
    )
    b.check(
        key,
        not cfg.variants,
        "a scheduled run is compared with the sweep's fixed batch sizes; drop the [[variants]] or the schedule",
    )
    b.check(
        key,
        s.parallel == "off",
        'a scheduled run changes its batch size in the sweep\'s own process: set sweep.parallel = "off"',
    )
    b.check(
        key,
        s.seeds == 1,
        "the scheduled run trains once: set sweep.seeds = 1 (the intervals come from the evaluations)",
    )
