"""A scheduled run (sweep.batch_schedule) in the scaling view: its own labelled row under the batch x lr
matrix, ■ at its mean batch size on the steps chart, never a cell of a fixed batch size and never a point of
the fit. Replays tests/tui/fixtures/run_schedule (make_schedule_fixture.py): batch 16, 64 and 256 fixed and
the ramp 16 -> 64 -> 128, which reaches the target after 544-576 steps, 10,240-12,288 samples."""

from __future__ import annotations

import math

import pytest

from tests.tui.conftest import FIXTURE_DIR, fake_system, settle
from tui.assemble import make_app
from tui.feeds.event_reader import read_all
from tui.render.matrix import matrix_text, scheduled_text
from tui.render.scaling import curve_chart, facts_text
from tui.state.arms import arms_of, scheduled_of
from tui.state.sweep import SweepState

SCHEDULE = FIXTURE_DIR.parent / "run_schedule"
SCHED = "sched16-64-128"


def _state(until_finished: bool = True) -> SweepState:
    events = read_all(SCHEDULE)[0]
    if not until_finished:  # caught while the ramp trains: up to its third evaluation
        evals = [i for i, e in enumerate(events) if e["type"] == "evaluation" and e.get("run") == SCHED]
        events = events[: evals[2] + 1]
    state = SweepState()
    state.apply_all(events)
    assert state.skipped == 0
    return state


def test_the_ramp_is_one_labelled_entry_with_its_intervals_to_the_target():
    (entry,) = scheduled_of(_state())
    assert entry.label == "ramp 16→64→128" and entry.lr_label == "lr 0.025→0.05→0.0707"
    assert entry.status == "reached"
    assert entry.steps == (544, 576) and entry.samples == (10240, 12288)
    assert entry.time == pytest.approx((2.336, 2.624))  # each stage's batches at their own step time alone
    assert entry.mean_batch == pytest.approx(12288 / 576)
    assert entry.to_target() == "steps 544–576 · samples 10,240–12,288 · time alone 2.34–2.62 s"


def test_the_ramp_is_never_a_cell_of_batch_16_nor_a_point_of_the_fit():
    state = _state()
    arm = arms_of(state)[""]
    steps = arm.matrix("steps")
    assert steps.batch_sizes == [16, 64, 256]
    assert steps.cell(16, 0.025).value == 768  # batch 16's own crossing, not the ramp's 576
    assert {p["batch_size"] for p in arm.analysis["points"]} == {16, 64, 256}
    assert arm.analysis["b_crit"]["batch_sizes"] == [16, 64, 256]
    assert steps.answer == (256, 0.1)  # the best fixed batch size: the ramp is no candidate


def test_the_matrix_shows_the_ramp_as_its_own_row_for_every_metric():
    state = _state()
    arms, scheduled = arms_of(state), scheduled_of(state)
    for metric, shown in (
        ("time", "2.34–2.62"),
        ("steps", "544–576"),
        ("accuracy", "84.9%"),
        ("loss", "0.738"),
        ("status", "reached"),
    ):
        text = matrix_text(arms[""], metric, 78).plain + scheduled_text(arms, scheduled, metric, 78).plain
        rows = text.splitlines()
        ramp = next(i for i, row in enumerate(rows) if row.startswith("ramp 16→64→128"))
        assert rows[ramp].split() == ["ramp", "16→64→128", shown, "lr", "0.025→0.05→0.0707"]
        assert "544–576" not in rows[ramp - 1] and rows[ramp - 1].split()[0] == "256"  # after the grid
        assert rows[ramp + 1].strip().startswith("to target: steps 544–576 · samples 10,240–12,288")
    wide = scheduled_text(arms, scheduled, "steps", 158).plain.strip()  # room for one line
    assert wide.startswith("ramp 16→64→128  544–576  lr") and wide.endswith("time alone 2.34–2.62 s")


def test_the_steps_chart_marks_the_ramp_at_its_mean_batch_apart_from_the_measured_line():
    state = _state()
    arms, scheduled = arms_of(state), scheduled_of(state)
    chart = curve_chart(arms, "steps", 80, 20, scheduled)
    (mark,) = [p for p in chart.points if p[2] == "■"]
    assert mark[0] == pytest.approx(math.log10(12288 / 576))
    measured = next(line for line in chart.lines if line.label.startswith("measured"))
    assert [round(10**x) for x in measured.x] == [16, 64, 256]  # the ramp is not on the measured line
    bar = [line for line in chart.lines if not line.label and line.x[0] == line.x[1] == mark[0]]
    assert [round(10**y) for y in bar[0].y] == [544, 576]  # its crossing interval
    without = curve_chart(arms, "steps", 80, 20)
    assert not [p for p in without.points if p[2] == "■"]
    samples = curve_chart(arms, "samples", 80, 20, scheduled)
    (mark,) = [p for p in samples.points if p[2] == "■"]
    assert mark[0] == pytest.approx(math.log10(12288 / 576))


def test_the_facts_say_the_ramp_is_not_in_the_fit_and_give_its_verdict():
    state = _state()
    arms, scheduled = arms_of(state), scheduled_of(state)
    text = facts_text(state, arms, scheduled).plain
    assert "ramp 16→64→128 (scheduled): its batch size changes, so it is not in the B_crit fit" in text
    assert "The schedule 16→64→128 reached 80.0% accuracy" in text and "best fixed batch (256" in text
    assert "■ scheduled" in text
    assert "■" not in facts_text(state, arms).plain


def test_a_ramp_still_training_shows_as_running_with_no_figure_to_the_target():
    state = _state(until_finished=False)
    (entry,) = scheduled_of(state)
    assert entry.status == "running" and entry.steps is None and entry.best_acc is not None
    arms = arms_of(state)
    assert scheduled_text(arms, [entry], "steps", 78).plain.split("\n")[1].split()[2] == "running"
    text = facts_text(state, arms, [entry]).plain
    assert "is not in the B_crit fit" in text and "The schedule" not in text  # no verdict yet
    chart = curve_chart(arms, "steps", 80, 20, [entry])
    assert not [p for p in chart.points if p[2] == "■"]


@pytest.fixture
def schedule_app(monkeypatch):
    monkeypatch.chdir(SCHEDULE.parent)
    return make_app(replay=SCHEDULE.name, follow=False, system=fake_system(gpus=False))


def _open(*keys: str):
    async def run(pilot):
        await settle(pilot)
        await pilot.press("c", *keys)
        await settle(pilot)

    return run


def test_scaling_view_with_a_ramp_80x24(snap_compare, schedule_app):
    assert snap_compare(schedule_app, terminal_size=(80, 24), run_before=_open())


def test_scaling_view_with_a_ramp_steps_160x48(snap_compare, schedule_app):
    assert snap_compare(schedule_app, terminal_size=(160, 48), run_before=_open("m"))
