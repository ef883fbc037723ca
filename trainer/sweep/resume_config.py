"""What `python -m trainer resume` allows to differ between config.toml now and the config the sweep
recorded when it started: keys that say where things are found and how fast they go (SAFE_TO_CHANGE),
never what the runs train. Pure (stdlib only).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trainer.runlog import CONFIG
from trainer.runlog.commands import trainer_command


class ResumeError(Exception):
    """The directory cannot be resumed as it is (a user error: exit 2, nothing changed)."""


#: Keys of config.toml that may differ on resume, and what the continuation does about each: they say
#: where things are found and how fast they go, never what the runs train (the data that loads is
#: checked against the recorded sizes anyway).
SAFE_TO_CHANGE: dict[str, str] = {
    "data.root": "the data is looked for there (and checked against what the sweep trained on)",
    "data.download": "applies to loading the data now",
    "data.fallback": "applies only if the data cannot be had; the sweep must still get the data it trained on",
    "data.path": "a dataset factory's module is looked for there",
    "data.num_workers": "the DataLoader uses that many workers from now on",
    "data.pin_memory": "applies from now on",
    "model.path": "the model factory's module is looked for there",
    "sweep.device": "the runs continue on it (exactly equal losses need the device the sweep started on)",
    "sweep.parallel": "a resumed sweep trains in one process either way",
    "perf.cpu_threads": "applies from now on (speed only)",
    "output.dir": "not used by a resume (it writes into this directory)",
}


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """A config dict as dotted keys; lists (batch sizes, variants) are compared whole."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out.update(_flat(sub, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or (a != a and b != b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def config_changes(recorded: dict[str, Any], current: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, recorded value, value now) for every key of config.toml that differs from what the sweep
    recorded when it started. A key only one side has is no difference: a run directory written before
    the key existed (or after it was retired) resumes as it always did."""
    old, new = _flat(recorded), _flat(current)
    if "variants" in old or "variants" in new:  # an arm added or dropped: [[variants]] compared whole
        old.setdefault("variants", []), new.setdefault("variants", [])
    return [(k, old[k], new[k]) for k in new if k in old and not _same(old[k], new[k])]


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_config(run_dir: Path, recorded: Any, current: dict[str, Any]) -> list[str]:
    """Compare config.toml (`current`, as loaded now) with the config recorded in sweep_started.
    Raises ResumeError naming every key that changes what the runs train, with the fix; returns one
    line for each key that is safe to change, saying what the continuation does with it."""
    if not isinstance(recorded, dict):
        return []
    changes = config_changes(recorded, current)
    unsafe = [(k, a, b) for k, a, b in changes if k not in SAFE_TO_CHANGE]
    if unsafe:
        keys = "; ".join(f"{k} = {_show(b)} (recorded {_show(a)})" for k, a, b in unsafe)
        raise ResumeError(
            f"{run_dir / CONFIG} was edited since the sweep started: {keys}. These change what the runs "
            f"train, so the epochs already trained would not continue the same runs; nothing was changed. "
            f"Put the recorded value{'s' if len(unsafe) > 1 else ''} back in {run_dir / CONFIG} to resume, "
            f"or train the edited config as a new sweep: {trainer_command('run', run_dir / CONFIG, '--out', 'NEW_DIR')}"
        )
    return [f"{k} changed from {_show(a)} to {_show(b)}: {SAFE_TO_CHANGE[k]}" for k, a, b in changes]
