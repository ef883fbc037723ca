"""The config of a branched measurement made later from a run directory (`python -m trainer branch DIR`):
the resolved config.toml of DIR, whose base run already trained, with a new [branch] table (a file's, and the
command's options over it) and the sweep narrowed to that base run, the one run the new directory holds
beside its branches. Pure: no torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainer.config.keylines import key_lines, variant_lines
from trainer.config.load import config_from_raw, parse_toml
from trainer.config.merge import deep_copy
from trainer.config.messages import nums
from trainer.config.schema import Config, ConfigError

BRANCH = "branch"

#: The command's options for the common [branch] keys: option -> key.
OPTION_KEYS = {
    "--epochs": "epochs",
    "--batch-sizes": "batch_sizes",
    "--lr-factors": "lr_factors",
    "--decrease": "decrease",
    "--max-samples": "max_samples",
    "--eval-every": "eval_every",
}


@dataclass
class Option:
    """One option the command was given: its key's value (already typed) and the text given, for messages."""

    key: str
    value: Any
    text: str


def branch_config(
    dir_text: str,
    dir_source: str,
    base_batch_size: int,
    kept: list[int],
    *,
    file_text: str | None = None,
    file_source: str = "",
    options: list[Option] | None = None,
) -> tuple[Config, list[str]]:
    """DIR's config (`dir_text`, read from `dir_source`) with a new [branch] table: the one of `file_text` when
    given, else DIR's own; `options` over it; branch.epochs = the `kept` points where it names none. The sweep
    is narrowed to its base run (batch `base_batch_size`, no batch schedule). Returns the Config and notes for
    the user; ConfigError (each problem naming where the key was given and the fix) otherwise."""
    raw = parse_toml(dir_text, dir_source)
    origins = {p: f"{dir_source}:{n}" for p, n in key_lines(dir_text).items() if p[0] != BRANCH}
    notes: list[str] = []
    table = raw.get(BRANCH, {})
    if file_text is not None:
        given = parse_toml(file_text, file_source)
        table = given.get(BRANCH)
        if not isinstance(table, dict):
            raise ConfigError(
                f"{file_source}: no [branch] table; the measurement takes its settings from one (e.g. "
                "[branch] with batch_sizes = [16, 32, 64, 128, 256]), or give them as options"
            )
        others = sorted(k for k in given if k != BRANCH)
        if others:
            notes.append(
                f"note: only the [branch] table of {file_source} is used; "
                + ", ".join(f"[{k}]" for k in others)
                + f" come from {dir_source}, which the base run trained with"
            )
        origins.update({p: f"{file_source}:{n}" for p, n in key_lines(file_text).items() if p[0] == BRANCH})
    elif BRANCH in raw:
        origins.update({p: f"{dir_source}:{n}" for p, n in key_lines(dir_text).items() if p[0] == BRANCH})
    table = deep_copy(table) if isinstance(table, dict) else {}
    for option in options or []:
        table[option.key] = option.value
        origins[(BRANCH, option.key)] = option.text
    if "epochs" not in table:  # every point the base run kept
        table["epochs"] = list(kept)
        origins[(BRANCH, "epochs")] = f"{dir_source} (the kept points)"
    epochs = table["epochs"]
    if isinstance(epochs, list) and all(isinstance(e, int) and not isinstance(e, bool) for e in epochs):
        late = sorted(set(epochs) - set(kept))
        if late:
            raise ConfigError(
                f"{origins[(BRANCH, 'epochs')]}: branch.epochs: the base run kept no checkpoint after "
                f"epoch{'s' if len(late) > 1 else ''} {nums(late)}; it kept {nums(kept)}: choose among them "
                "(a point it did not keep needs a new sweep with it in its [branch] epochs)"
            )
    base = table.get("base_batch_size", 0)
    if base not in (0, base_batch_size):
        where = origins.get((BRANCH, "base_batch_size"), "")
        raise ConfigError(
            f"{where}: branch.base_batch_size: {base}, but the base run of the run directory trained at batch "
            f"{base_batch_size}: leave the key out or set it to {base_batch_size}"
        )
    table["base_batch_size"] = base_batch_size
    raw[BRANCH] = table
    sweep = raw.setdefault("sweep", {})
    if isinstance(sweep, dict):  # the new directory's one run: the base run (its branches are measured apart)
        sweep["batch_sizes"] = [base_batch_size]
        sweep["batch_schedule"] = ""
    cfg = config_from_raw(
        raw, origins, source=dir_source, variant_origins=variant_lines(dir_text, dir_source)
    )
    return cfg, notes
