"""One row per batch size: lr, status, epoch, last loss, accuracy, time to target, speed."""
from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from tui.palette import STATUS_STYLES, run_rich_color
from tui.plotdata import compact
from tui.state import RunState, SweepState
from tui.widgets.timing_panel import seconds

#: (key, header) in display order; narrow enough for 80 columns.
COLUMNS = (
    ("batch", "batch"),
    ("lr", "lr"),
    ("status", "status"),
    ("epoch", "epoch"),
    ("loss", "loss"),
    ("acc", "acc"),
    ("best", "best"),
    ("target", "target"),
    ("speed", "samples/s"),
)


def pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def lr_cell(run: RunState) -> Text:
    """The lr; with split-backward on, also the lr x k it behaves like (SEED.md)."""
    if run.split_chunks > 1:
        return Text.assemble(f"{run.lr:g}", ("→", "dim"), (f"{run.effective_lr:g}", "yellow"))
    return Text(f"{run.lr:g}")


def row_cells(run: RunState, index: int, epochs_total: int | None) -> dict[str, Text | str]:
    """The table cells of one run (pure: tests call it)."""
    epoch = f"{run.epoch}/{epochs_total}" if epochs_total else str(run.epoch)
    target = seconds(run.time_to_target_s) if run.time_to_target_s is not None else "-"
    status = Text(run.status, style=STATUS_STYLES.get(run.status, ""))
    return {
        "batch": Text(str(run.batch_size), style=f"bold {run_rich_color(index)}", justify="right"),
        "lr": lr_cell(run),
        "status": status,
        "epoch": Text(epoch, justify="right"),
        "loss": Text(compact(run.last_loss), justify="right"),
        "acc": Text(pct(run.test_acc), justify="right"),
        "best": Text(pct(run.best_acc), justify="right"),
        "target": Text(target, justify="right"),
        "speed": Text(compact(run.samples_per_s), justify="right"),
    }


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

    def on_mount(self) -> None:
        for key, header in COLUMNS:
            self.add_column(header, key=key)

    def update_from(self, state: SweepState) -> None:
        epochs_total = state.epochs
        runs = state.run_list()
        ids = tuple(r.run for r in runs)
        if ids != self._run_ids:
            self.clear()
            for i, run in enumerate(runs):
                cells = row_cells(run, i, epochs_total)
                self.add_row(*(cells[k] for k, _ in COLUMNS), key=run.run)
            self._run_ids = ids
            return
        for i, run in enumerate(runs):
            for key, value in row_cells(run, i, epochs_total).items():
                self.update_cell(run.run, key, value, update_width=True)
