"""The one merge of the config: `--set` overrides into the file's tables, a [[variants]] table into
the sections (harlequin's merge_profile_with_cli). Raw TOML dicts in, new dicts out."""

from __future__ import annotations

from typing import Any


def merge_value(old: Any, new: Any) -> Any:
    """`new` written over `old`: tables merge key by key (recursively), anything else is replaced.

    The one merge of the config: --set into the file, a [[variants]] table into the sections."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return new
    out = dict(old)
    for k, v in new.items():
        out[k] = merge_value(out.get(k), v)
    return out


def deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [deep_copy(v) for v in value]
    return value


def key_paths(value: Any, prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
    """`prefix` and, for a table, the key paths inside it."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(key_paths(v, prefix + (k,)))
    return out
