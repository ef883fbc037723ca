"""The value rules of a config: ranges, choices, devices, paths, and the rules across keys.

Each message names the value and what is allowed. A value out of its range marks its key bad,
so no later rule (a divisor search over a batch size of 10**30, say) ever sees it: every rule
here runs in time bounded by the sizes that `bounds` allows.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING, Any

from trainer.config.bounds import DEVICE_RULE, MAX_RUNS, PATH_KEYS, RANGES, is_device, path_problem
from trainer.config.messages import did_you_mean, num, nums, q
from trainer.config.schema import (
    BUILTIN_MODEL_ARGS,
    CHOICES,
    FACTORY_KEYS,
    FOLDER_PREFIX,
    Config,
    is_factory,
    is_folder,
)

if TYPE_CHECKING:
    from trainer.config.builder import BuilderBase as Builder

BETAS_RULE = "must be two numbers in [0, 1) (e.g. [0.9, 0.999])"


def check_values(b: Builder, cfg: Config) -> None:
    """Every rule beyond types, in the order their problems are reported."""
    for dotted in CHOICES:
        section, name = dotted.split(".")
        _choice(b, dotted, getattr(getattr(cfg, section), name))
    for dotted in RANGES:
        _range(b, cfg, dotted)
    s = cfg.sweep
    as_cuda = s.device.replace("gpu", "cuda")  # "gpu" is a common guess; it should not suggest "cpu"
    guess = as_cuda if is_device(as_cuda) else did_you_mean(s.device, ["auto", "cpu", "cuda"])
    b.check(
        "sweep.device",
        is_device(s.device),
        f"{q(s.device)} is not allowed; {DEVICE_RULE}" + (f"; did you mean {q(guess)}?" if guess else ""),
    )
    b.check("output.dir", bool(cfg.output.dir), 'must not be empty; use "." for the current directory')
    _check_model_args(b, cfg)
    for dotted in PATH_KEYS:
        section, name = dotted.split(".")
        value = getattr(getattr(cfg, section), name)
        problem = path_problem(value) if value else None
        b.check(dotted, problem is None, f"{q(value)} {problem}")
    b.check("optim.betas", len(cfg.optim.betas) == 2, f"{BETAS_RULE}, got [{nums(cfg.optim.betas)}]")
    _check_lrs(b, cfg)
    _check_batch_sizes(b, cfg)
    _check_augment(b, cfg)


#: The built-in datasets' image side: data.augment = "crop_flip" takes 32x32 images only.
BUILTIN_SIDES = {
    "mnist": 28,
    "fashion-mnist": 28,
    "kmnist": 28,
    "synthetic-digits": 28,
    "cifar10": 32,
    "cifar100": 32,
}


def _check_augment(b: Builder, cfg: Config) -> None:
    """crop_flip on a built-in dataset of 28x28 images is refused here (a factory's or a folder's shape is
    checked once loaded: trainer.data.datasets.check_augment)."""
    d = cfg.data
    side = BUILTIN_SIDES.get(d.dataset)
    if d.augment == "crop_flip" and side is not None and side != 32 and not b.is_bad("data.augment"):
        b.problem(
            "data.augment",
            f'"crop_flip" takes 32x32 images, but {d.dataset} holds {side}x{side} ones; '
            'set data.augment = "none" or use a 32x32 dataset (cifar10, cifar100)',
        )


def _check_model_args(b: Builder, cfg: Config) -> None:
    """[model.args]: anything for a factory (its own call checks them); a built-in's named arguments, whole numbers >= 1."""
    m = cfg.model
    if not m.args or is_factory(m.name) or m.name not in BUILTIN_MODEL_ARGS:
        return
    takes = BUILTIN_MODEL_ARGS[m.name]
    unknown = [k for k in m.args if k not in takes]
    if unknown:
        allowed = f"it takes {', '.join(takes)}" if takes else "it takes none"
        b.problem(
            "model.args",
            f"{q(m.name)} takes no argument {q(unknown[0])}; {allowed} ([model.args] of a "
            'factory, model.name = "package.module:factory", are passed as given)',
        )
        return
    bad = [
        k for k, v in m.args.items() if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 4096
    ]
    b.check("model.args", not bad, f"{bad[0] if bad else ''} must be a whole number from 1 to 4096")


def _choice(b: Builder, dotted: str, value: str) -> None:
    allowed = CHOICES[dotted]
    own = dotted in FACTORY_KEYS  # also takes the user's own "package.module:factory"
    if own and is_factory(value):
        return
    if dotted == "data.dataset" and is_folder(value):
        b.check(
            dotted,
            bool(value[len(FOLDER_PREFIX) :].strip()),
            f'{q(value)} names no folder; write "folder:PATH" (PATH holds one subfolder of images per class)',
        )
        return
    guess = did_you_mean(value, [a for a in allowed if a])
    hint = f"; did you mean {q(guess)}?" if guess else ""
    mine = (
        ' or your own as "package.module:factory" (a module, a colon, the function that returns it)'
        if own
        else ""
    )
    b.check(
        dotted,
        value in allowed,
        f"{q(value)} is not allowed; use one of {', '.join(map(q, allowed))}{mine}{hint}",
    )


def _range(b: Builder, cfg: Config, dotted: str) -> None:
    """`dotted` within RANGES[dotted] (for a list, each item); out of range marks the key bad."""
    if b.is_bad(dotted):
        return
    node: Any = cfg
    for part in dotted.split("."):
        node = getattr(node, part)
    rng = RANGES[dotted]
    if isinstance(node, list):
        out = [v for v in node if v not in rng]
        if not out:
            return
        if dotted == "optim.betas":
            message = f"{BETAS_RULE}, got [{nums(node)}]"
        else:  # "every batch size must be >= 1, got 0"
            noun = {
                "sweep.batch_sizes": "batch size",
                "sweep.lrs": "lr",
                "branch.epochs": "epoch",
                "branch.batch_sizes": "batch size",
                "branch.lr_factors": "lr factor",
            }[dotted]
            message = f"every {noun} {rng.rule(out[0])}, got {nums(out)}"
    elif node in rng:
        return
    else:
        message = f"{rng.rule(node)}, got {num(node)}"
    b.problem(dotted, message)
    b.bad.add(dotted)


def _check_lrs(b: Builder, cfg: Config) -> None:
    s, grid = cfg.sweep, cfg.sweep.lr_grid
    twice = sorted(lr for lr, n in Counter(s.lrs).items() if n > 1)
    b.check("sweep.lrs", not twice, f"{nums(twice)} listed more than once")
    if grid.points <= 0 or any(b.is_bad(f"sweep.lr_grid.{k}") for k in ("min", "max", "points")):
        return
    b.check("sweep.lr_grid.min", grid.min > 0, f"must be > 0 (a log-scale grid), got {grid.min}")
    b.check(
        "sweep.lr_grid.max",
        grid.max >= grid.min,
        f"must be >= sweep.lr_grid.min = {grid.min}, got {grid.max}",
    )
    b.check("sweep.lr_grid", not s.lrs, "give either sweep.lrs or sweep.lr_grid, not both")
    if grid.min > 0 and grid.max > grid.min and grid.points > 1:
        # The grid's lrs are rounded to 6 significant digits; two that round alike would be one run twice.
        distinct = len(set(grid.values()))
        b.check(
            "sweep.lr_grid.points",
            distinct == grid.points,
            f"{grid.points} points from {grid.min} to {grid.max} give only {distinct} different "
            f"lr{'s' if distinct > 1 else ''} at 6 "
            "significant digits; use fewer points or a wider range",
        )


def _check_batch_sizes(b: Builder, cfg: Config) -> None:
    sizes, sb, train = cfg.sweep.batch_sizes, cfg.split_backward, cfg.data.train_samples
    if b.is_bad("sweep.batch_sizes"):
        return
    if not sizes:
        b.problem("sweep.batch_sizes", "must list at least one batch size, e.g. [6, 60]")
        return
    twice = sorted(n for n, k in Counter(sizes).items() if k > 1)
    b.check("sweep.batch_sizes", not twice, f"{nums(twice)} listed more than once; each batch size runs once")
    big = [n for n in sizes if n > train]
    b.check(
        "sweep.batch_sizes",
        train <= 0 or b.is_bad("data.train_samples") or not big,
        f"batch size{'s' if len(big) > 1 else ''} {nums(big)} larger than data.train_samples = {train}; "
        "a batch cannot exceed the training set (raise data.train_samples, 0 = all, or drop them)",
    )
    _check_micro_batch(b, cfg)
    if not sb.enabled or b.is_bad("split_backward.chunks"):
        return
    odd = [n for n in sizes if n % sb.chunks]
    if odd:
        gcd = math.gcd(*sizes)
        # Small divisors only: batch sizes can be huge, and nobody splits into 1000 chunks.
        fits = [k for k in range(2, min(gcd, 64) + 1) if gcd % k == 0] + ([gcd] if gcd > 64 else [])
        fix = (
            f"chunks that divide every batch size: {nums(fits)}"
            if fits
            else f"no chunks > 1 divides them all; drop {nums(odd)} or choose other batch sizes"
        )
        where = "split_backward.chunks" if b.given(("split_backward", "chunks")) else "split_backward.enabled"
        b.problem(
            where,
            f"with split_backward.enabled = true, chunks = {sb.chunks} must divide every batch size, "
            f"but does not divide {nums(odd)} (sweep.batch_sizes); {fix}",
        )


def _check_micro_batch(b: Builder, cfg: Config) -> None:
    """sweep.micro_batch must cut every batch larger than itself into equal micro-batches.

    Bounded: batch sizes are at most bounds.MAX_BATCH, so the divisor search below takes at most
    sqrt(MAX_BATCH) ~ 3,200 steps."""
    m, sizes = cfg.sweep.micro_batch, cfg.sweep.batch_sizes
    if m <= 0 or b.is_bad("sweep.micro_batch"):
        return
    odd = [n for n in sizes if n > m and n % m]
    if not odd:
        return
    # Nearby values that work: divisors of the big batch sizes' gcd, at most m, largest first.
    g = math.gcd(*[n for n in sizes if n > m])
    divisors = {d for i in range(1, math.isqrt(g) + 1) if g % i == 0 for d in (i, g // i)}
    fits = sorted(
        (d for d in divisors if 1 < d <= m and all(n % d == 0 for n in sizes if n > d)), reverse=True
    )
    fix = f"micro-batch sizes that do: {nums(fits[:4])}" if fits else "only 1 does; choose other batch sizes"
    b.problem(
        "sweep.micro_batch",
        f"{m} must divide every batch size larger than it (each batch is cut into equal micro-batches), "
        f"but does not divide {nums(odd)} (sweep.batch_sizes); {fix}",
    )


def check_run_count(b: Builder, cfg: Config) -> None:
    """At most MAX_RUNS runs: batch sizes (per variant) x lrs x seeds, counted, never listed."""
    s = cfg.sweep
    if any(b.is_bad(k) for k in ("sweep.batch_sizes", "sweep.lrs", "sweep.lr_grid.points", "sweep.seeds")):
        return
    arms = sum(len(v.batch_sizes) for v in cfg.variants) if cfg.variants else len(s.batch_sizes)
    lrs = len(s.lrs) or max(1, s.lr_grid.points)
    runs = arms * lrs * s.seeds
    if runs <= MAX_RUNS:
        return
    factors = {
        "sweep.batch_sizes": len(s.batch_sizes),
        "sweep.lrs": len(s.lrs),
        "sweep.lr_grid.points": s.lr_grid.points,
        "sweep.seeds": s.seeds,
    }
    biggest = max(
        (k for k in factors if b.given(tuple(k.split(".")))),
        key=factors.__getitem__,
        default="sweep.batch_sizes",
    )
    shape = f"{arms} batch size{'s' if arms > 1 else ''}{' (over the variants)' if cfg.variants else ''}"
    b.problem(
        biggest,
        f"the sweep would train {runs} runs ({shape} x {lrs} lr{'s' if lrs > 1 else ''} x "
        f"{s.seeds} seed{'s' if s.seeds > 1 else ''}); at most {MAX_RUNS} runs make one sweep: "
        "use fewer batch sizes, lrs, seeds or variants",
    )
