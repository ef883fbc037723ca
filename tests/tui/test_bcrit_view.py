"""The B_crit-over-training view (key b) and a scheduled run's batch-size changes, on a replayed fixture
(tests/tui/fixtures/make_schedule_fixture.py)."""

from __future__ import annotations

import pytest

from tests.tui.conftest import FIXTURE_DIR, fake_system, settle
from tui.assemble import make_app
from tui.feeds.event_reader import read_all
from tui.render.bcrit import curve_chart, facts_text
from tui.render.plotdata import x_at
from tui.state.sweep import SweepState

SCHEDULE = FIXTURE_DIR.parent / "run_schedule"


def _state() -> SweepState:
    state = SweepState()
    state.apply_all(read_all(SCHEDULE)[0])
    assert state.skipped == 0
    return state


@pytest.fixture
def schedule_app(monkeypatch):
    monkeypatch.chdir(SCHEDULE.parent)
    return make_app(replay=SCHEDULE.name, follow=False, system=fake_system(gpus=False))


def press(*keys: str):
    async def run(pilot):
        await settle(pilot)
        await pilot.press(*keys)
        await settle(pilot)

    return run


def test_the_view_draws_bcrit_and_bsimple_with_their_bands_and_the_schedule():
    state = _state()
    chart = curve_chart(state, 80, 20)
    labels = [line.label for line in chart.lines if line.label]
    assert labels == ["B_simple", "B_crit", "schedule"]
    crit = next(line for line in chart.lines if line.label == "B_crit")
    assert list(crit.x) == [8192, 16384, 24576]
    bars = [line for line in chart.lines if not line.label and line.x[0] == line.x[1] == 24576]
    assert any(
        round(10 ** line.y[0]) == 96 and round(10 ** line.y[1]) == 240 for line in bars
    )  # B_crit's 95%
    steps = next(line for line in chart.lines if line.label == "schedule")
    assert [round(10**y) for y in steps.y] == [16, 16, 64, 64, 128, 128]
    text = facts_text(state).plain
    assert "150 (96–240)" in text and "66 (53–82)" in text
    assert '--step-batch-size-schedule "0:16 8192:64 16384:128"' in text
    assert "The schedule 16 -> 64 -> 128 reached 80.0% accuracy" in text and "did not save time" in text


def test_an_empty_sweep_says_no_branch_point_yet():
    chart = curve_chart(SweepState(), 80, 20)
    assert chart.message == "no branch point yet" and not chart.lines


def test_a_scheduled_run_counts_each_stage_at_its_batch_size_and_marks_the_changes():
    state = _state()
    run = state.runs["sched16-64-128"]
    assert run.batch_stages == [(0, 0, 16), (512, 8192, 64), (640, 16384, 128)]
    assert run.batch_size == 128 and "sched16-64-128" in state.scheduled_runs
    assert run.schedule == "16→64→128" and run.planned_iters == 512 + 128 + 64  # an epoch at each size
    # the samples after iterations 1, 512 (the last at 16), 513 (the first at 64) and 641 (the first at 128)
    assert list(x_at(run, "samples", [0, 511, 512, 640])) == [16, 8192, 8256, 16512]
    from tui.render.plotdata import loss_series
    from tui.state.view import View

    series = loss_series(run, View(x_axis="samples"), None, 100)
    assert series.batch_marks == [(8192.0, 64), (16384.0, 128)]  # at the samples where each change came


def test_bcrit_view_80x24(snap_compare, schedule_app):
    assert snap_compare(schedule_app, terminal_size=(80, 24), run_before=press("b"))


def test_bcrit_view_160x48(snap_compare, schedule_app):
    assert snap_compare(schedule_app, terminal_size=(160, 48), run_before=press("b"))


def test_scheduled_run_in_the_grid_with_its_batch_changes_160x48(snap_compare, schedule_app):
    assert snap_compare(schedule_app, terminal_size=(160, 48), run_before=settle)
