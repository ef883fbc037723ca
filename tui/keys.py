"""Every key of the app with what it does: one list for the help screen, `bstui --help` and docs/app.md.

Pure data (no Textual) so `bstui --help` stays instant; a test checks that every binding
of the app is listed here and in docs/app.md's key table.
"""

from __future__ import annotations

KEYS: list[tuple[str, str]] = [
    (
        "a",
        "metric: training loss → test accuracy (with the target line, ◆ where each run crossed it) → test loss",
    ),
    (
        "x",
        "x axis: samples seen (the default when batch sizes differ) → epoch → iteration → training time (s); one x range for every plot",
    ),
    ("w", "x window: full → each run's own last 10% → its own last 1,000 iterations (live tail)"),
    ("l", "log / linear y axis"),
    ("y", "one y range for every plot / each plot its own"),
    (
        "m",
        "smoothing: auto (EMA over a faint min/max band where the raw loss is denser than the plot) → raw → EMA",
    ),
    ("o", "one overlaid plot of all runs (legend beside it) / one plot each"),
    ("Tab", "focus the next run (shift+Tab: previous): drawn last and bright, the others dimmed"),
    ("h", "hide the focused run from the plots and the overlay (again: show it); H shows every run"),
    ("H", "show every hidden run"),
    ("S", "sort the table: sweep order → best accuracy → time to target → status"),
    (
        "← →",
        "crosshair (shift: bigger steps): every shown run's value at that x, in a line under the plots; Esc hides it",
    ),
    ("PgUp PgDn", "page through the plots when they do not all fit (\"runs 1-4 of 9\")"),
    (
        "c",
        "scaling view: the batch x lr matrix (m: its metric), steps to target with regimes and B_crit, the lr rule, samples or (v) time to target",
    ),
    (
        "b",
        "B_crit over training ([branch]): branched B_crit and B_simple with their intervals, the proposed schedule, and a scheduled run's verdict",
    ),
    ("e", "save a screenshot (SVG) of the screen into the run directory"),
    ("s", "split-backward on/off for the running sweep (or the Switch); says which batch sizes switched"),
    ("+ -", "chunks k for the next split-backward switch: only k that divide a batch size still to train"),
    ("p", "pause / resume the trainer"),
    ("r", "restart the sweep (replay: read the run directory again)"),
    ("d", "detach: quit the viewer, the sweep trains on; bstui --attach DIR comes back"),
    ("t", "table / timing panel (narrow terminals)"),
    ("?", "this help"),
    ("q", "quit and stop the sweep cleanly (resumable)"),
]


def keys_help(indent: str = "  ") -> str:
    """The key list as plain text (argparse epilog)."""
    width = max(len(k) for k, _ in KEYS)
    return "\n".join(f"{indent}{k:<{width}}  {what}" for k, what in KEYS)
