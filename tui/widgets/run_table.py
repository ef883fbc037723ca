"""One row per run: its label, status, progress, last and best accuracy, time to target, noise scale...

Sorted by `S` (the sweep's order, best accuracy, time to target, status); runs hidden from the plots
(`h`) stay, dimmed. Where the labels name the lr, the lr column shows only the lr x k of split-backward.

Columns that do not fit the table's width are dropped, least needed first (DROP_ORDER),
so the table never scrolls sideways on an 80-column terminal; the last and the best
accuracy are never dropped (a run that peaked and fell back shows both).
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from trainer.analysis.figures import pct
from tui.render.looks import sweep_looks
from tui.render.palette import STATUS_STYLES, rgb
from tui.render.plotdata import compact
from tui.state.labels import fmt_lr
from tui.state.progress import duration, run_progress, sweep_progress
from tui.state.run import opt_float
from tui.state.sweep import RunState, SweepState
from tui.widgets.timing_panel import seconds

#: (key, header) in display order.
COLUMNS = (
    ("run", "run"),
    ("lr", "lr"),
    ("status", "status"),
    ("progress", "done"),
    ("left", "left"),
    ("epoch", "epoch"),
    ("loss", "loss"),
    ("acc", "acc"),
    ("best", "best"),
    ("target", "target"),
    ("b_simple", "B_simple"),
    ("osc", "osc"),
    ("gcos", "gcos"),
    ("speed", "samples/s"),
)
#: Columns dropped, in this order, while the table is wider than its room (the timing
#: panel shows speed; the label names the lr when lrs differ; acc and best always stay).
DROP_ORDER = ("speed", "gcos", "osc", "epoch", "lr", "loss", "left", "b_simple")
CELL_PADDING = 2  # DataTable's cell_padding 1 on each side
SCROLLBAR = 2  # room kept for the vertical scrollbar a long sweep brings


def visible_columns(widths: dict[str, int], room: int) -> tuple[str, ...]:
    """The column keys to show in `room` cells, given each column's widest content (pure: tests call it)."""
    keys = [k for k, _ in COLUMNS]
    for key in DROP_ORDER:
        if sum(widths[k] + CELL_PADDING for k in keys) <= room:
            break
        keys.remove(key)
    return tuple(keys)


def lr_cell(run: RunState) -> Text:
    """The lr (3 significant digits, as in the run labels); with split-backward on, also the lr x k
    it behaves like (SEED.md)."""
    if run.split_chunks > 1:
        return Text.assemble(fmt_lr(run.lr), ("→", "dim"), (fmt_lr(run.effective_lr), "yellow"))
    return Text(fmt_lr(run.lr))


def b_simple_cell(run: RunState) -> Text:
    """B_simple: the noise probe's window with its 95% interval ("642 [420-980]"), "undef." when the
    window cannot see the gradient above its noise; without the probe, the in-batch estimate of the
    last epoch end (dim: no interval, and it depends on the batch size; docs/science.md, B_simple)."""
    p = run.probe
    if p is not None and p.readings:
        if p.b_simple is None:
            return Text("undef.", style="dim", justify="right")
        if p.lo is None:  # too few readings for an interval yet
            return Text(f"{compact(p.b_simple)} [?]", justify="right")
        hi = compact(p.hi) if p.hi is not None else "∞"
        return Text.assemble(compact(p.b_simple), (f" [{compact(p.lo)}-{hi}]", "dim"), justify="right")
    in_batch = run.latest("b_simple")
    return Text(compact(in_batch), style="dim" if in_batch is not None else "", justify="right")


def target_cell(run: RunState) -> Text:
    """Time to target alone (batches to it x the step time alone, so fused and lone runs compare), else the
    measured time; with sub-epoch evaluations, the interval from the last miss to the hit."""
    alone = run.time_alone_to_target()
    if alone is not None:
        lo, t = alone
        if lo is not None and lo < t:
            return Text(f"{seconds(lo)}-{seconds(t)}", justify="right")
        return Text(seconds(t), justify="right")
    t = run.time_to_target_s
    if t is None:
        return Text("-", justify="right")
    lo = opt_float(run.target.get("wall_s_lo")) if run.target else None
    if lo is not None and lo < t:
        return Text(f"{seconds(lo)}-{seconds(t)}", justify="right")
    return Text(seconds(t), justify="right")


def row_cells(
    run: RunState, label: str, color: str, epochs_total: int | None, left_s: float | None = None
) -> dict[str, Text | str]:
    """The table cells of one run (pure: tests call it)."""
    epochs_total = run.epochs_total or epochs_total
    epoch = f"{run.epoch}/{epochs_total}" if epochs_total else str(run.epoch)
    status = Text(run.status, style=STATUS_STYLES.get(run.status, ""))
    progress = run_progress(run)
    frac = progress.fraction
    # Its time left in the sweep (tui.state.progress.sweep_progress, as the header's ETA adds them up); the run's
    # own training time left where the caller has no sweep.
    left = (
        duration(left_s if left_s is not None else progress.left_s)
        if run.status in ("waiting", "running")
        else ""
    )
    return {
        "run": Text(label, style=f"bold {color}"),
        "lr": lr_cell(run),
        "status": status,
        "progress": Text("-" if frac is None else f"{frac:.0%}", justify="right"),
        "left": Text(left, justify="right"),
        "epoch": Text(epoch, justify="right"),
        "loss": Text(compact(run.last_loss), justify="right"),
        "acc": Text(pct(run.test_acc), justify="right"),
        "best": Text(pct(run.best_acc), justify="right"),
        "target": target_cell(run),
        "b_simple": b_simple_cell(run),
        "osc": Text(compact(run.latest("loss_diff_std")), justify="right"),
        "gcos": Text(signed(run.latest("grad_cos")), justify="right"),
        "speed": Text(compact(run.samples_per_s), justify="right"),
    }


STATUS_ORDER = (
    "running",
    "waiting",
    "done",
    "stopped",
    "interrupted",
    "collapsed",
    "diverged",
    "oom",
    "failed",
)


def sorted_runs(runs: list[RunState], sort: str) -> list[RunState]:
    """The runs in the table's order: the sweep's, best accuracy first, soonest to the target first
    (never reached last), or by status (training first, failures last); ties keep the sweep's order."""
    if sort == "best":
        return sorted(runs, key=lambda r: -(r.best_acc if r.best_acc is not None else -1.0))
    if sort == "target":
        return sorted(
            runs, key=lambda r: r.time_to_target_s if r.time_to_target_s is not None else float("inf")
        )
    if sort == "status":
        order = {s: i for i, s in enumerate(STATUS_ORDER)}
        return sorted(runs, key=lambda r: order.get(r.status, len(order)))
    return list(runs)


def signed(v: float | None) -> str:
    """A cosine in 5 cells: +0.12, -0.98."""
    return "-" if v is None else f"{v:+.2f}"


class RunTable(DataTable):
    """The sweep's table; rows keyed by run id, cells updated in place."""

    DEFAULT_CSS = """
    RunTable {
        height: auto;
        max-height: 12;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False, show_cursor=False)
        self._run_ids: tuple[str, ...] = ()
        self._columns: tuple[str, ...] = ()
        self._state: SweepState | None = None
        self._hidden: frozenset[str] = frozenset()
        self._sort = "sweep"

    def on_mount(self) -> None:
        self._set_columns(tuple(k for k, _ in COLUMNS))

    def _set_columns(self, keys: tuple[str, ...]) -> None:
        self.clear(columns=True)
        headers = dict(COLUMNS)
        for key in keys:
            self.add_column(headers[key], key=key)
        self._columns = keys
        self._run_ids = ()

    def update_from(
        self, state: SweepState, hidden: frozenset[str] = frozenset(), sort: str = "sweep"
    ) -> None:
        """The rows of `state` in the order `sort` (tui.state.view.SORTS); runs in `hidden` dimmed and marked."""
        self._state, self._hidden, self._sort = state, hidden, sort
        epochs_total = state.epochs
        looks = sweep_looks(state.run_list())  # now, also on resize: the state grows in place
        runs = sorted_runs(state.run_list(), sort)
        # Where the labels name the lr (several lrs), the lr column says only what they do not: lr x k.
        lr_in_label = len({r.lr for r in runs}) > 1
        rows = []
        lefts = sweep_progress(state).left_s
        for run in runs:
            cells = row_cells(
                run, looks[run.run][0], rgb(looks[run.run][1]), epochs_total, lefts.get(run.run)
            )
            if lr_in_label:
                cells["lr"] = (
                    Text.assemble(("→", "dim"), (fmt_lr(run.effective_lr), "yellow"))
                    if run.split_chunks > 1
                    else Text("")
                )
            if run.run in hidden:
                cells["run"] = Text.assemble((looks[run.run][0], "dim"), (" hidden", "dim italic"))
            rows.append(cells)
        room = self.size.width - SCROLLBAR
        if room > 0:
            widths = {
                k: max([len(h)] + [r[k].cell_len if isinstance(r[k], Text) else len(r[k]) for r in rows])
                for k, h in COLUMNS
            }
            keys = visible_columns(widths, room)
            if lr_in_label and not any(r.split_chunks > 1 for r in runs):
                keys = tuple(k for k in keys if k != "lr")
            if keys != self._columns:
                self._set_columns(keys)
        ids = tuple(r.run for r in runs)
        if ids != self._run_ids:
            self.clear()
            for run, cells in zip(runs, rows):
                self.add_row(*(cells[k] for k in self._columns), key=run.run)
            self._run_ids = ids
            return
        for run, cells in zip(runs, rows):
            for key in self._columns:
                self.update_cell(run.run, key, cells[key], update_width=True)

    def on_resize(self) -> None:
        if self._state is not None:
            self.update_from(self._state, self._hidden, self._sort)
