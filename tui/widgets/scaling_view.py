"""The scaling screen's body: the batch x lr matrix first (a scheduled run as its own row under it), then the
steps-to-target curve with its regimes, the lr rule and samples to target (braille charts), and the
facts. Everything is built by tui.render.scaling from the sweep state (trainer.analysis.answer's
answer); this file only lays it out and draws it.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid, VerticalScroll
from textual.css.query import NoMatches
from textual.widget import Widget
from textual.widgets import Static

from trainer.analysis.answer import METRICS, Scheduled
from tui.render.matrix import matrix_text, scheduled_text
from tui.render.scaling import curve_chart, facts_text, lr_chart
from tui.state.arms import Analysis, Arm, arms_of, scheduled_of
from tui.state.sweep import SweepState
from tui.widgets.chart import BrailleChart


class ScalingView(Widget):
    """The matrix (m cycles its metric), the curve, the lr rule, samples to target and the facts."""

    DEFAULT_CSS = """
    ScalingView {
        height: 1fr;
        layout: vertical;
    }
    ScalingView #scaling-matrix {
        height: auto;
        max-height: 50%;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    ScalingView > Grid {
        grid-size: 2 2;
        grid-gutter: 0 1;
        height: 1fr;
    }
    ScalingView #scaling-facts-box {
        height: 1fr;
        padding: 0 1;
    }
    ScalingView #scaling-facts {
        width: 100%;
        height: auto;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._drawn: tuple[object, ...] | None = None
        self.metric = METRICS[0]
        self._chosen = False  # m pressed: show its metric even where it has nothing to show
        self.lower = "samples"  # v: the lower chart shows samples or time to target
        #: What was last drawn, one Arm per arm of the sweep (tests read them).
        self.arm_views: dict[str, Arm] = {}
        #: The scheduled runs last drawn (sweep.batch_schedule): own rows, never cells of the matrix.
        self.scheduled: list[Scheduled] = []

    @property
    def arms(self) -> dict[str, Analysis]:
        """The analyses last drawn, per arm."""
        return {name: arm.analysis for name, arm in self.arm_views.items()}

    def compose(self) -> ComposeResult:
        yield Static("", id="scaling-matrix")
        with Grid():
            yield BrailleChart(id="scaling-steps")
            yield BrailleChart(id="scaling-lr")
            yield BrailleChart(id="scaling-samples")
            with VerticalScroll(id="scaling-facts-box"):
                yield Static("", id="scaling-facts")

    def cycle_metric(self) -> str:
        """m: the matrix's next metric (time → steps → accuracy → loss → status)."""
        shown = self.shown_metric()
        self.metric = METRICS[(METRICS.index(shown) + 1) % len(METRICS)]
        self._chosen = True
        self._draw_matrix()
        return self.metric

    def cycle_lower(self) -> str:
        """v: the lower chart between samples and time to target."""
        self.lower = "time" if self.lower == "samples" else "samples"
        arms, lower, scheduled = self.arm_views, self.lower, self.scheduled
        self.query_one("#scaling-samples", BrailleChart).show(
            lambda w, h: curve_chart(arms, lower, w, h, scheduled)
        )
        return self.lower

    def shown_metric(self) -> str:
        """The metric the matrix shows: the chosen one, else time to target, or best accuracy while no
        cell has a time (none reached the target, or none yet: it says more)."""
        if (
            self._chosen
            or not self.arm_views
            or any(
                c.value is not None
                for arm in self.arm_views.values()
                for c in arm.matrix(self.metric).cells.values()
            )
        ):
            return self.metric
        return "accuracy"

    def on_resize(self) -> None:
        self._draw_matrix()

    def _draw_matrix(self) -> None:
        try:
            box = self.query_one("#scaling-matrix", Static)
        except NoMatches:
            return
        width = max(20, (self.size.width or 80) - 2)
        metric = self.shown_metric()
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, (name, arm) in enumerate(self.arm_views.items()):
            if i:
                text.append("\n")
            if name:
                text.append(f"{name}: ", style="bold")
            text.append_text(matrix_text(arm, metric, width))
        if self.scheduled:
            text.append_text(scheduled_text(self.arm_views, self.scheduled, metric, width))
        box.update(text)

    def update_from(self, state: SweepState) -> None:
        """Recompute from the state if what the analysis reads changed since the last call (tens of ms
        for a large grid: not on every loss)."""
        # What the analysis reads: runs' statuses, epochs (final loss) and summaries, not every loss.
        runs = tuple((r.run, r.status, len(r.epochs), len(r.summary)) for r in state.run_list())
        key = (id(state), runs, state.scaling is not None, self.metric, self.size.width)
        if key == self._drawn:
            return
        try:
            steps = self.query_one("#scaling-steps", BrailleChart)
            samples = self.query_one("#scaling-samples", BrailleChart)
            lr = self.query_one("#scaling-lr", BrailleChart)
            facts = self.query_one("#scaling-facts", Static)
        except NoMatches:  # a redraw came before the view's children mounted; the next one draws
            return
        self._drawn = key
        arms = self.arm_views = arms_of(state)
        scheduled = self.scheduled = scheduled_of(state)
        self._draw_matrix()
        steps.show(lambda w, h: curve_chart(arms, "steps", w, h, scheduled))
        lower = self.lower
        samples.show(lambda w, h: curve_chart(arms, lower, w, h, scheduled))
        lr.show(lambda w, h: lr_chart(arms, w, h))
        facts.update(facts_text(state, arms, scheduled))

    def facts(self) -> Text:
        """The facts panel's text (tests read it)."""
        return self.query_one("#scaling-facts", Static).render()  # type: ignore[return-value]

    def matrix(self) -> Text:
        """The matrix's text (tests read it)."""
        return self.query_one("#scaling-matrix", Static).render()  # type: ignore[return-value]
