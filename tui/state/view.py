"""What the user chose to look at: the view keys' state, as one immutable value.

Pure: the main screen holds a `View`, each key replaces it with the next one, and the loss
grid draws from it. Nothing here knows about Textual.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

#: x axes (`x`), with the unit shown under the plots. Samples first: when the runs differ in batch size
#: it is the default (an iteration of batch 6000 is not one of batch 1), epochs one key away.
X_AXES = ("samples", "epoch", "iteration", "wall")
X_LABELS = {"iteration": "iteration", "epoch": "epoch", "samples": "samples", "wall": "train time (s)"}
#: What the plots show (`a`): training loss per iteration, test accuracy, test loss.
METRICS = ("loss", "acc", "test_loss")
METRIC_NAMES = {"loss": "train loss", "acc": "test accuracy", "test_loss": "test loss"}
SHORT_NAMES = {"loss": "loss", "acc": "acc", "test_loss": "test-loss"}
#: Smoothing (`m`): EMA over a faint min/max band where the raw series is denser than the plot (auto),
#: the raw series always, or the EMA always.
SMOOTHING = ("auto", "raw", "ema")
#: x window (`w`): everything, the last 10% of it, or the last TAIL_ITERS iterations.
WINDOWS = ("full", "last10", "tail")
TAIL_ITERS = 1000
WINDOW_NAMES = {"full": "full", "last10": "last 10%", "tail": f"last {TAIL_ITERS:,} it"}
#: The table's orders (`S`), with the words the controls line shows.
SORTS = ("sweep", "best", "target", "status")
SORT_NAMES = {"sweep": "", "best": "by best acc", "target": "by time to target", "status": "by status"}
#: Crosshair steps: the crosshair moves by 1/CURSOR_STEPS of the x range (1/8 with shift).
CURSOR_STEPS = 100


def _next(values: tuple[str, ...], current: str) -> str:
    return values[(values.index(current) + 1) % len(values)]


@dataclass(frozen=True)
class View:
    """The view keys' state (x l m o a w y h H S Tab ← → PgUp PgDn)."""

    x_axis: str = "iteration"
    metric: str = "loss"
    log_y: bool = False
    smoothing: str = "auto"
    overlay: bool = False
    window: str = "full"
    #: True: every plot on one y range (compare at a glance); False: each plot its own.
    shared_y: bool = True
    #: The run in focus (Tab): drawn last and bright in the overlay, its plot title highlighted.
    focus: str | None = None
    #: Crosshair position as a fraction of the x range (None: off).
    cursor: float | None = None
    #: Page of the small multiples when they do not all fit.
    page: int = 0
    #: The user chose the x axis (`x`): the sweep's default no longer applies.
    x_chosen: bool = False
    #: Runs hidden from the plots and the overlay (`h` on the focused run, `H` shows every run).
    hidden: frozenset[str] = frozenset()
    #: The table's order (`S`): the sweep's order, or by best accuracy, time to target or status.
    sort: str = "sweep"

    def cycle_x(self) -> View:
        return replace(self, x_axis=_next(X_AXES, self.x_axis), x_chosen=True)

    def for_sweep(self, batch_sizes: set[int]) -> View:
        """The default x axis for the sweep: samples when its runs differ in batch size (comparing them
        per iteration hides the large batches), else iteration; a chosen axis stays."""
        if self.x_chosen:
            return self
        axis = "samples" if len(batch_sizes) > 1 else "iteration"
        return self if axis == self.x_axis else replace(self, x_axis=axis)

    def cycle_metric(self) -> View:
        return replace(self, metric=_next(METRICS, self.metric))

    def cycle_smoothing(self) -> View:
        return replace(self, smoothing=_next(SMOOTHING, self.smoothing))

    def cycle_sort(self) -> View:
        return replace(self, sort=_next(SORTS, self.sort))

    def toggle_hidden(self, run: str) -> View:
        return replace(self, hidden=self.hidden ^ {run}, page=0)

    def show_all(self) -> View:
        return replace(self, hidden=frozenset(), page=0)

    def cycle_window(self) -> View:
        return replace(self, window=_next(WINDOWS, self.window))

    def toggle(self, name: str) -> View:
        return replace(self, **{name: not getattr(self, name)})

    def cycle_focus(self, runs: list[str], step: int = 1) -> View:
        """Next run in focus; past the last one, none (every run alike)."""
        order: list[str | None] = [None, *runs]
        here = order.index(self.focus) if self.focus in order else 0
        return replace(self, focus=order[(here + step) % len(order)])

    def move_cursor(self, steps: int) -> View:
        """Crosshair `steps` steps right (negative: left); the first press puts it at the right end."""
        if self.cursor is None:
            return replace(self, cursor=1.0)
        return replace(self, cursor=min(1.0, max(0.0, self.cursor + steps / CURSOR_STEPS)))

    def turn_page(self, step: int, pages: int) -> View:
        return replace(self, page=min(max(0, pages - 1), max(0, self.page + step)))

    def describe(self) -> str:
        """The view in a few words, for the controls line."""
        words = [SHORT_NAMES[self.metric], f"x:{self.x_axis}", "log" if self.log_y else "lin"]
        if self.metric == "loss":
            words.append(self.smoothing)
        if self.window != "full":
            words.append(WINDOW_NAMES[self.window])
        if not self.shared_y:
            words.append("own y")
        if self.overlay:
            words.append("overlay")
        if self.hidden:
            words.append(f"{len(self.hidden)} hidden")
        if self.sort != "sweep":
            words.append(f"table {SORT_NAMES[self.sort]}")
        return " ".join(words)
