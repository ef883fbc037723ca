"""The scaling view (issue 4) and the table's noise-scale / oscillation columns.

Replays tests/tui/fixtures/run_scaling: an lr sweep whose steps to target follow
S = S_min (1 + B_crit / B) with B_crit = 200 (tests/tui/fixtures/make_fixture.py).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.tui.conftest import FIXTURE_DIR, fake_system, settle, wait_for
from tui.factory import make_app
from tui.replay import read_all
from tui.scaling import analyses, facts_text, log_ticks, lr_chart, target_chart
from tui.screens.main_screen import MainScreen
from tui.screens.scaling_screen import ScalingScreen
from tui.state import SweepState
from tui.widgets.run_table import COLUMNS, RunTable, visible_columns
from tui.widgets.chart import BrailleChart
from tui.widgets.scaling_view import ScalingView

SCALING_DIR = FIXTURE_DIR.parent / "run_scaling"


def scaling_events() -> list[dict]:
    events, bad = read_all(SCALING_DIR)
    assert bad == 0
    return events


def write_run(tmp_path: Path, events: list[dict]) -> Path:
    """A run directory holding just these events (a sweep caught part way)."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    shutil.copy(SCALING_DIR / "config.toml", out / "config.toml")
    return out


def view_of(app) -> ScalingView:
    return app.screen.query_one(ScalingView)


async def test_c_opens_the_scaling_view_with_the_fitted_b_crit_and_goes_back():
    app = make_app(replay=str(SCALING_DIR), follow=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ScalingScreen) and "B_crit" in view_of(app).facts().plain)
        facts = view_of(app).facts().plain
        assert "B_crit 220" in facts  # the fixture's fit (true B_crit 200, noise 5%)
        assert "B_simple 198" in facts
        assert "4 of 4 batch sizes reached 97% · 3 lrs each" in facts
        steps = app.screen.query_one("#scaling-steps", BrailleChart).chart_text().plain
        assert "steps to target vs batch" in steps and any(0x2800 < ord(ch) <= 0x28FF for ch in steps)
        assert "1000" in steps and "20" in steps  # log-axis ticks read as batch sizes
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))


async def test_with_one_point_the_view_says_why_there_is_no_fit(tmp_path):
    events = scaling_events()
    first_done = next(i for i, e in enumerate(events) if e["type"] == "run_finished")
    run = write_run(tmp_path, events[: first_done + 1])  # one run finished, the sweep still going
    app = make_app(replay=str(run), follow=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ScalingScreen) and "reached" in view_of(app).facts().plain)
        facts = view_of(app).facts().plain
        assert "1 of 1 batch sizes reached 97%" in facts
        assert "no fit: fitting the critical batch size needs at least 2 points, got 1" in facts
        assert "live: 1 of 12 runs finished" in facts


async def test_the_view_updates_live_as_runs_finish(tmp_path):
    """Opened before the runs finish, it fits B_crit once they have, from their summaries."""
    events = scaling_events()
    app = make_app(replay=str(write_run(tmp_path, events[:3])), follow=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(app.state.runs) > 0)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ScalingScreen) and "No run has finished yet" in view_of(app).facts().plain)
        with open(tmp_path / "run" / "events.jsonl", "a") as f:  # the trainer goes on, no sweep_finished
            f.writelines(json.dumps(e) + "\n" for e in events[3:] if e["type"] != "sweep_finished")
        await wait_for(pilot, lambda: "B_crit 220" in view_of(app).facts().plain)
        app.exit()


def test_live_analysis_from_summaries_matches_the_trainers_own():
    events = scaling_events()
    live = SweepState()
    live.apply_all([e for e in events if e["type"] != "sweep_finished"])
    done = SweepState()
    done.apply_all(events)
    assert done.scaling is not None
    ours, theirs = analyses(live)[""], analyses(done)[""]
    assert ours["fit_steps"]["B_crit"] == pytest.approx(theirs["fit_steps"]["B_crit"])
    assert [p["lr"] for p in ours["best"]] == [0.05, 0.1, 0.2, 0.2]
    assert ours["best"][0]["lr_sqrt_rule"] == pytest.approx(0.05)  # base lr 0.1 at batch 64


def test_a_run_directory_without_lr_in_its_summaries_says_so():
    s = SweepState()
    s.apply_all(read_all(FIXTURE_DIR)[0])  # run_small: summaries from before issue 4
    text = facts_text(s, analyses(s)).plain
    assert "carry no batch size and lr" in text
    for what in ("steps", "samples"):
        assert "no run reached it yet" in target_chart(analyses(s), what, 40, 12).title


def test_variants_get_one_analysis_each_in_the_words_and_charts():
    one = analyses(_finished_state())[""]
    s = SweepState()
    s.scaling = {"variants": {"sgd": one, "lars": {**one, "fit_steps": {"error": "too few points"}}}}
    arms = analyses(s)
    assert list(arms) == ["sgd", "lars"]
    text = facts_text(s, arms).plain
    assert "sgd" in text and "lars" in text and "no fit: too few points" in text
    assert len(lr_chart(arms, 60, 16).lines) > len(lr_chart({"sgd": one}, 60, 16).lines)


def test_log_ticks_label_values_not_logs():
    assert log_ticks(0.9, 3.2, 3) == [(1.0, "10"), (2.0, "100"), (3.0, "1000")]
    assert [label for _, label in log_ticks(1.2, 1.9, 6)] == ["20", "50"]


def test_columns_are_dropped_least_needed_first_to_fit():
    widths = {k: len(h) for k, h in COLUMNS}
    widths["run"] = len("bs 10 lr 0.0548")
    keys = [k for k, _ in COLUMNS]
    assert visible_columns(widths, 1000) == tuple(keys)
    narrow = visible_columns(widths, 78)
    assert {"run", "status", "progress", "acc", "best", "target"} <= set(narrow)  # last and best accuracy stay
    assert "speed" not in narrow and sum(widths[k] + 2 for k in narrow) <= 78


async def test_table_shows_last_and_best_accuracy_and_the_noise_scale_and_fits_80_columns(fixture_dir):
    app = make_app(replay=str(fixture_dir), follow=False, system=fake_system())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(RunTable)
        headers = [str(c.label) for c in table.columns.values()]
        assert {"acc", "best", "B_simple"} <= set(headers)
        assert table.virtual_size.width <= table.size.width  # no sideways scrolling
        row = [str(c) for c in table.get_row("bs60")]
        assert "530" in row and "96.0%" in row  # the last epoch's B_simple; the accuracy


def test_the_facts_name_the_best_run_of_each_batch_by_its_label():
    state = _finished_state()
    text = facts_text(state, analyses(state)).plain
    assert "best: bs 16 lr 0.05" in text and "bs 256 lr 0.2" in text


def _finished_state() -> SweepState:
    s = SweepState()
    s.apply_all(scaling_events())
    return s


@pytest.fixture
def scaling_app(monkeypatch):
    monkeypatch.chdir(SCALING_DIR.parent)  # a relative path: the header reads the same everywhere
    return make_app(replay=SCALING_DIR.name, follow=False)


async def _open_scaling(pilot) -> None:
    await settle(pilot)
    await pilot.press("c")
    # Its charts draw after the screen mounts: wait for them, not a fixed pause (loaded machines).
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ScalingScreen) and all(
        c.chart is not None for c in pilot.app.screen.query(BrailleChart)))
    await settle(pilot)


def test_scaling_view_80x24(snap_compare, scaling_app):
    assert snap_compare(scaling_app, terminal_size=(80, 24), run_before=_open_scaling)


def test_scaling_view_160x48(snap_compare, scaling_app):
    assert snap_compare(scaling_app, terminal_size=(160, 48), run_before=_open_scaling)
