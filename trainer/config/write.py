"""Writing a resolved config back as TOML (a run directory's config.toml), with tomli-w.

`config_from_toml(to_toml(config_to_dict(cfg))) == cfg` for every Config that loads: the
sections as tables, then the variants as written (their overrides, not their resolved settings).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import tomli_w

from trainer.config.coerce import sections
from trainer.config.merge import deep_copy
from trainer.config.schema import VARIANTS, Config


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """The resolved config as plain TOML-able tables (sections, then variants if any; not `source`)."""
    out: dict[str, Any] = {name: dataclasses.asdict(getattr(cfg, name)) for name in sections(Config)}
    if cfg.variants:
        out[VARIANTS] = [deep_copy(v.overrides) for v in cfg.variants]
    return out


def to_toml(d: dict[str, Any]) -> str:
    """TOML text for a dict of TOML types (str, int, float, bool, lists, tables); TypeError for
    anything else (None, say). tomllib.loads(to_toml(d)) == d."""
    return tomli_w.dumps(d)
