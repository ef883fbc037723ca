"""Widgets redraw on their own (resize, a deferred draw) from a state that grew in place since the
last frame: runs that appeared in between must be drawn, never a KeyError (seen under load in
test_d_in_a_live_sweep_stops_it_and_follows_a_detached_resume: a frame of the new, empty state
after a feed reset, then events applied, then a resize before the next frame)."""

from __future__ import annotations

from textual.app import App, ComposeResult

from tests.tui.conftest import fixture_events
from tui.state.sweep import SweepState
from tui.state.view import View
from tui.widgets.loss_grid import LossGrid
from tui.widgets.run_table import RunTable
from tui.widgets.timing_panel import TimingPanel


class Widgets(App):
    def compose(self) -> ComposeResult:
        yield LossGrid()
        yield RunTable()
        yield TimingPanel()


async def test_a_run_started_since_the_last_frame_is_drawn_on_resize():
    events = fixture_events()
    state = SweepState()  # as after a feed reset: nothing applied yet
    app = Widgets()
    async with app.run_test(size=(120, 40)) as pilot:
        grid, table, timing = app.query_one(LossGrid), app.query_one(RunTable), app.query_one(TimingPanel)
        grid.update_view(state, View())
        table.update_from(state)
        timing.update_from(state)
        await pilot.pause()
        state.apply_all(events[:12])  # the sweep and its runs start; no frame drawn
        assert len(state.run_list()) == 5
        grid.on_resize()
        table.on_resize()
        timing.on_resize()
        await pilot.pause()
        assert table.row_count == 5
        assert "bs 6000" in str(timing.render())
