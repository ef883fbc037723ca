"""How a run looks on screen: its label and its colour by its place in the sweep."""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable, Protocol

from tui.render.palette import run_color
from tui.state.labels import RunKey, run_labels


def looks(keys: list[RunKey]) -> dict[str, tuple[str, tuple[int, int, int]]]:
    """run id -> (label, colour), the colour by the run's place in the sweep."""
    labels = run_labels(keys)
    return {k.run: (labels[k.run], run_color(i, len(keys))) for i, k in enumerate(keys)}


class Keyed(Protocol):
    def key(self) -> RunKey: ...


def sweep_looks(runs: Iterable[Keyed]) -> dict[str, tuple[str, tuple[int, int, int]]]:
    """`looks` of the runs as they are now (cached by their keys; treat the dict as read-only).

    Widgets call this at draw time rather than keeping the looks of an earlier frame: the state
    they draw grows in place, and a run that started since has no entry in older looks."""
    return _cached_looks(tuple(r.key() for r in runs))


@lru_cache(maxsize=16)
def _cached_looks(keys: tuple[RunKey, ...]) -> dict[str, tuple[str, tuple[int, int, int]]]:
    return looks(list(keys))
