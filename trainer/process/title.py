"""The trainer's process title, so ps, htop and nvitop name it ("bstui trainer: runs/20261207-0150 bs6,60
(4 runs)") instead of "python3 -c from multiprocessing.spawn ...". Pure (setproctitle, a small C extension,
is loaded when a title is set); without setproctitle the title stays as it was."""

from __future__ import annotations

from typing import Iterable


def trainer_title(run_dir: str, batch_sizes: Iterable[int], runs: int) -> str:
    """'bstui trainer: DIR bs6,60 (4 runs)'."""
    sizes = ",".join(str(b) for b in sorted(set(batch_sizes)))
    where = run_dir or "(no run directory)"
    return f"bstui trainer: {where} bs{sizes} ({runs} run{'s' if runs != 1 else ''})"


def set_title(title: str) -> bool:
    """Set this process's title; False where setproctitle is not installed."""
    try:
        from setproctitle import setproctitle
    except ImportError:
        return False
    setproctitle(title)
    return True
