"""[[variants]]: each table is checked as the config it makes (the sections with its
overrides merged in), through the same builder; its problems are named after the variant."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trainer.config.bounds import MAX_VARIANT_NAME, MAX_VARIANTS
from trainer.config.coerce import Mismatch, coerce, leaf_keys
from trainer.config.merge import deep_copy, key_paths, merge_value
from trainer.config.messages import describe, did_you_mean, key, nums
from trainer.config.schema import VARIANT_KEYS, VARIANT_NAME_RE, VARIANTS, Config, ConfigError, VariantConfig

if TYPE_CHECKING:
    from trainer.config.builder import BuilderBase as Builder


def build_variants(b: Builder, value: Any, base: Config) -> list[VariantConfig]:
    """The variants of `value` (the raw [[variants]] array); problems go to `b`."""
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        b.problem(
            (VARIANTS,),
            f"expected an array of tables ([[variants]] with a name and overrides), got {describe(value)}",
        )
        return []
    if len(value) > MAX_VARIANTS:
        b.problem((VARIANTS,), f"{len(value)} variants; at most {MAX_VARIANTS} make one sweep")
        return []
    # Line numbers per variant only when the variants are the file's (not replaced by a --set).
    in_file = not b.origins.get((VARIANTS,), "").startswith("--set")
    start = b.known_raw()
    out: list[VariantConfig] = []
    taken: dict[str, str] = {}  # file-name form -> name
    for i, table in enumerate(value):
        lines = b.variant_origins[i] if in_file and i < len(b.variant_origins) else {}
        here = lines.get((), b.origins.get((VARIANTS,), b.file))
        variant = _variant(b, i, table, base, start, lines, here, taken)
        if variant is not None:
            out.append(variant)
    return out


def _file_form(name: str) -> str:
    """How a name ends up in file names (checkpoints/<run id>.pt: "+" becomes "_"), on a file system
    that may ignore case: two names with the same form would share a checkpoint."""
    return name.replace("+", "_").lower()


def _variant(
    b: Builder,
    i: int,
    table: dict[str, Any],
    base: Config,
    start: dict[str, Any],
    lines: dict[tuple[str, ...], str],
    here: str,
    taken: dict[str, str],
) -> VariantConfig | None:
    def say(name: str, message: str) -> None:
        where = lines.get((name,), here)
        label = f"variants[{i + 1}].{key((name,))}"
        if b.full:
            b.omitted += 1
        else:
            b.problems.append(f"{where}: {label}: {message}" if where else f"{label}: {message}")

    name = table.get("name")
    ok = True
    if not isinstance(name, str) or not VARIANT_NAME_RE.fullmatch(name) or len(name) > MAX_VARIANT_NAME:
        got = "missing" if name is None else f"got {describe(name)}"
        say(
            "name",
            f"every variant needs a name of letters, digits and _ . + - (it goes into run ids "
            f"such as bs6000-lars), at most {MAX_VARIANT_NAME} characters; {got}",
        )
        name, ok = f"#{i + 1}", False
    elif _file_form(name) in taken:
        earlier = taken[_file_form(name)]
        say(
            "name",
            f'"{name}" is used by an earlier variant; each variant needs its own name'
            if earlier == name
            else f'"{name}" and the earlier "{earlier}" would share checkpoint files (names may not differ only '
            "in case or in + against _); rename one",
        )
        ok = False
    else:
        taken[_file_form(name)] = name
    for name_ in table:
        if name_ in VARIANT_KEYS:
            continue
        moved = [".".join(leaf) for leaf in leaf_keys() if leaf[-1] == name_ and leaf[0] in VARIANT_KEYS]
        guess = moved[0] if moved else did_you_mean(name_, VARIANT_KEYS)
        say(
            name_,
            f"unknown key; a variant takes {', '.join(VARIANT_KEYS)}"
            + (f"; did you mean {guess}?" if guess else ""),
        )
        ok = False
    sizes = table.get("batch_sizes")
    if sizes is not None:
        try:
            sizes = coerce(sizes, list[int], "sweep.batch_sizes")
        except Mismatch as err:
            say("batch_sizes", str(err))
            sizes, ok = None, False
    if sizes is not None:
        foreign = [n for n in sizes if n not in base.sweep.batch_sizes]
        if foreign or not sizes:
            say(
                "batch_sizes",
                f"must name some of sweep.batch_sizes ({nums(base.sweep.batch_sizes)}), a variant "
                f"runs at a subset of them; {'got ' + nums(foreign) if foreign else 'got none'}",
            )
            ok = False
    # The config this variant makes: the sections that loaded, with the variant's overrides merged in.
    merged = dict(start)
    origins = dict(b.origins)
    for section in ("optim", "split_backward"):
        if section in table:
            merged[section] = merge_value(merged.get(section), table[section])
            for sub in key_paths(table[section], (section,)):
                origins[sub] = lines.get(sub, here)
    if sizes:
        merged["sweep"] = {**merged.get("sweep", {}), "batch_sizes": sizes}
        origins[("sweep", "batch_sizes")] = lines.get(("batch_sizes",), here)
    # Built twice, with and without the variant's label, to keep only problems the variant adds
    # (the sections' own problems are already reported once).
    plain = type(b)(merged, origins, b.file, whole=False)
    named = type(b)(merged, origins, b.file, label=f'variant "{name}": ', whole=False)
    cfg = None
    for builder in (named, plain):
        try:
            cfg = builder.build()
        except ConfigError:
            cfg = None
    for p, n in zip(plain.problems, named.problems):
        if p not in b.problems:
            if b.full:
                b.omitted += 1
            else:
                b.problems.append(n)
    if cfg is None or not ok:
        return None
    return VariantConfig(
        name=name,
        optim=cfg.optim,
        split_backward=cfg.split_backward,
        batch_sizes=list(cfg.sweep.batch_sizes),
        overrides=deep_copy(table),
    )
