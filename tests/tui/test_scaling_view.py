"""The scaling view and the table's noise-scale / oscillation columns.

Replays tests/tui/fixtures/run_scaling: an lr sweep whose steps to target follow
S = S_min (1 + B_crit / B) with B_crit = 200 (tests/tui/fixtures/make_fixture.py).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from tests.tui.conftest import FIXTURE_DIR, fake_system, settle, wait_for
from tui.assemble import make_app
from tui.feeds.event_reader import read_all
from tui.render.scaling import curve_chart, facts_text, log_ticks, lr_chart
from tui.screens.main_screen import MainScreen
from tui.screens.scaling_screen import ScalingScreen
from tui.state.arms import analyses, arms_of
from tui.state.sweep import SweepState
from tui.widgets.chart import BrailleChart
from tui.widgets.run_table import COLUMNS, RunTable, visible_columns
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


ANSWER_DIR = FIXTURE_DIR.parent / "run_answer"
NOREACH_DIR = FIXTURE_DIR.parent / "run_answer_noreach"


def answer_events(directory: Path = ANSWER_DIR) -> list[dict]:
    events, bad = read_all(directory)
    assert bad == 0
    return events


def _state(events: list[dict]) -> SweepState:
    s = SweepState()
    s.apply_all(events)
    return s


async def test_c_opens_the_matrix_first_and_m_cycles_its_metric():
    app = make_app(replay=str(ANSWER_DIR), follow=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await wait_for(
            pilot, lambda: isinstance(app.screen, ScalingScreen) and "★" in view_of(app).matrix().plain
        )
        matrix = view_of(app).matrix().plain
        assert matrix.startswith(
            "time to target alone (s) · ±sd of 2 seeds · ▸ row best · ★ answer · m: metric"
        )
        rows = matrix.splitlines()
        assert rows[1].split() == ["batch", "0.05", "0.1", "0.2"]
        assert (
            "★1.24" in rows[3] and "▸1.51" in rows[2] and "diverged" in rows[2]
        )  # batch 64 at 0.1 is fastest
        assert rows[4].split()[1:5] == ["not", "reached", "not", "reached"]
        await pilot.press("m")
        await wait_for(pilot, lambda: view_of(app).matrix().plain.startswith("steps to target"))
        assert "★60±6" in view_of(app).matrix().plain  # fewest steps: the largest batch
        facts = view_of(app).facts().plain
        assert "fastest to 90% test accuracy: batch 64 at lr 0.1" in facts
        assert "fewest steps: batch 256 at lr 0.2 (60±6 steps)" in facts
        assert "B_crit 120 (95% 85–160)" in facts
        assert "regimes: perfect scaling at batch 16; diminishing returns at batch 64, 256" in facts
        assert "lr rule: best lr ~ B^0.50 (95% 0.31 to 0.70, 3 batch sizes): square root" in facts
        assert "B_simple at the target 130" in facts
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))


def test_one_reason_for_a_missing_fit_never_two_that_disagree():
    """Was: "no fit: fitting the critical batch size needs at least 2 points" beside "a fit needs 3"."""
    events = answer_events()
    first_done = next(i for i, e in enumerate(events) if e["type"] == "run_finished")
    text = facts_text(_state(events[: first_done + 1]), arms_of(_state(events[: first_done + 1]))).plain
    assert "at least 2 points" not in text and "no fit" not in text and "fit needs" not in text
    # While runs train, no advice to lower the target: the answer waits for them.
    assert text.startswith("answer: no batch size has reached 90% with every seed yet\n")


def test_the_reached_count_counts_batch_sizes_still_training():
    """Was: "0 of 1 batch sizes reached 98%" while five runs were training."""
    events = answer_events()
    first_done = next(i for i, e in enumerate(events) if e["type"] == "run_finished")
    state = _state(events[: first_done + 1])
    text = facts_text(state, arms_of(state)).plain
    unfinished = sum(1 for r in state.run_list() if not r.summary)
    assert unfinished > 1
    assert f"of 3 batch sizes reached 90% ({unfinished} runs still training)" in text


def test_b_simple_is_never_not_measured_while_the_runs_carry_it():
    """Was: "B_simple not measured" while the table showed B_simple for every run."""
    state = _state(answer_events(NOREACH_DIR))
    text = facts_text(state, arms_of(state)).plain
    assert "not measured" not in text.split("lr rule")[0]
    assert "B_simple at the target: no batch size that reached it has one; measured per point 120–150" in text


def test_the_lr_rule_is_measured_from_the_grid_never_anchored_at_an_lr_not_tried():
    """Was: rules through optim.lr at optim.base_batch_size (an lr the grid never tried)."""
    arm = arms_of(_state(answer_events()))[""]
    tried = {0.05, 0.1, 0.2}
    assert {p.lr for p in arm.rule.best} <= tried
    lr32, lo, hi = arm.rule.lr_at(32)
    assert 0.05 < lr32 < 0.1 and lo < lr32 < hi  # between the measured best lrs at 16 and 64
    chart = lr_chart({"": arm}, 60, 16)
    assert "linear rule" not in {label for label, _, _ in chart.legend}


def test_the_best_lr_plot_spans_the_batch_sizes_run():
    """Was: an x axis of 10-20 for batch sizes 16, 64, 256."""
    chart = lr_chart(arms_of(_state(answer_events())), 60, 16)
    assert chart.xlim[0] < math.log10(16) and chart.xlim[1] > math.log10(256)
    assert [label for _, label in chart.xticks] == ["20", "50", "100", "200"]


def test_empty_plots_get_no_invented_axes():
    """Was: 0.5-2 and 1-10 axes on plots with nothing in them."""
    arms = arms_of(_state(answer_events(NOREACH_DIR)))
    steps = curve_chart(arms, "steps", 60, 16)
    assert steps.yticks == [] and steps.message == "no batch size reached the target"
    assert [label for _, label in steps.xticks] == ["20", "50", "100", "200"]  # the batch sizes run
    nothing = curve_chart({}, "steps", 60, 16)
    assert nothing.xticks == [] and nothing.yticks == [] and nothing.message == "no run yet"


def test_a_batch_size_whose_lrs_all_missed_stays_on_the_curve():
    events = [
        e for e in answer_events() if not (e["type"] == "run_finished" and e["run"].startswith("bs256"))
    ]
    events = [e for e in events if e["type"] != "sweep_finished"]
    for e in answer_events():
        if e["type"] == "run_finished" and e["run"].startswith("bs256"):
            summary = {k: v for k, v in e["summary"].items() if "to_target" not in k}
            events.append({**e, "summary": summary})
    arms = arms_of(_state(events))
    chart = curve_chart(arms, "steps", 60, 16)
    assert [(round(10**x), glyph) for x, _, glyph, _ in chart.points] == [(256, "▴")]
    assert "batch 256: no lr reached the target" in facts_text(_state(events), arms).plain


async def test_the_view_updates_live_as_runs_finish(tmp_path):
    """Opened before the runs finish, it fits B_crit once they have, from their summaries."""
    events = answer_events()
    out = tmp_path / "run"
    out.mkdir()
    (out / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events[:3]))
    shutil.copy(ANSWER_DIR / "config.toml", out / "config.toml")
    app = make_app(replay=str(out), follow=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(app.state.runs) > 0)
        await pilot.press("c")
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, ScalingScreen) and "still training" in view_of(app).facts().plain,
        )
        with open(out / "events.jsonl", "a") as f:  # the trainer goes on, no sweep_finished
            f.writelines(json.dumps(e) + "\n" for e in events[3:] if e["type"] != "sweep_finished")
        await wait_for(pilot, lambda: "B_crit 120" in view_of(app).facts().plain)
        app.exit()


def test_live_analysis_from_summaries_matches_the_trainers_own():
    events = answer_events()
    live = _state([e for e in events if e["type"] != "sweep_finished"])
    done = _state(events)
    assert done.scaling is not None
    ours, theirs = analyses(live)[""], analyses(done)[""]
    assert ours["b_crit"]["B_crit"] == pytest.approx(theirs["b_crit"]["B_crit"])
    assert [p["lr"] for p in ours["best"]] == [0.05, 0.1, 0.2]


def test_an_old_run_directory_still_draws_from_its_summaries():
    """run_scaling's sweep_finished predates the B_crit interval: the screen analyses its summaries."""
    state = _state(scaling_events())
    arms = arms_of(state)
    assert "b_crit" in arms[""].analysis
    assert [p["lr"] for p in arms[""].analysis["best"]] == [0.05, 0.1, 0.2, 0.2]
    assert "4 of 4 batch sizes reached 97%" in facts_text(state, arms).plain


def test_a_run_directory_without_lr_in_its_summaries_says_so():
    s = SweepState()
    s.apply_all(read_all(FIXTURE_DIR)[0])  # run_small: summaries from before the scaling fields
    text = facts_text(s, arms_of(s)).plain
    assert "carry no batch size and lr" in text
    for what in ("steps", "samples"):
        assert curve_chart(arms_of(s), what, 40, 12).yticks == []


def test_variants_get_one_analysis_each_in_the_words_and_charts():
    one = analyses(_finished_state())[""]
    s = SweepState()
    s.scaling = {
        "variants": {"sgd": one, "lars": {**one, "b_crit": {"determined": False, "reason": "too few points"}}}
    }
    arms = arms_of(s)
    assert list(arms) == ["sgd", "lars"] and list(analyses(s)) == ["sgd", "lars"]
    text = facts_text(s, arms).plain
    assert "sgd" in text and "lars" in text and "B_crit is not determined (too few points)" in text
    assert len(lr_chart(arms, 60, 16).lines) > len(lr_chart({"sgd": arms["sgd"]}, 60, 16).lines)
    assert len(curve_chart(arms, "steps", 60, 16).lines) > len(
        curve_chart({"sgd": arms["sgd"]}, "steps", 60, 16).lines
    )


def test_log_ticks_label_values_not_logs():
    assert log_ticks(0.9, 3.2, 3) == [(1.0, "10"), (2.0, "100"), (3.0, "1000")]
    assert [label for _, label in log_ticks(1.2, 1.9, 6)] == ["20", "50"]


def test_columns_are_dropped_least_needed_first_to_fit():
    widths = {k: len(h) for k, h in COLUMNS}
    widths["run"] = len("bs 10 lr 0.0548")
    keys = [k for k, _ in COLUMNS]
    assert visible_columns(widths, 1000) == tuple(keys)
    narrow = visible_columns(widths, 78)
    assert {"run", "status", "progress", "acc", "best", "target"} <= set(
        narrow
    )  # last and best accuracy stay
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


def test_the_facts_name_the_best_lr_of_each_batch():
    state = _finished_state()
    text = facts_text(state, arms_of(state)).plain
    assert "best: bs 16 lr 0.05, bs 64 lr 0.1, bs 256 lr 0.2, bs 1024 lr 0.2" in text


def _finished_state() -> SweepState:
    s = SweepState()
    s.apply_all(scaling_events())
    return s


@pytest.fixture
def scaling_app(monkeypatch):
    monkeypatch.chdir(ANSWER_DIR.parent)  # a relative path: the header reads the same everywhere
    return make_app(replay=ANSWER_DIR.name, follow=False)


@pytest.fixture
def noreach_app(monkeypatch):
    monkeypatch.chdir(NOREACH_DIR.parent)
    return make_app(replay=NOREACH_DIR.name, follow=False)


def _open_scaling(*keys: str):
    async def run(pilot) -> None:
        await settle(pilot)
        await pilot.press("c")
        # Its charts draw after the screen mounts: wait for them, not a fixed pause (loaded machines).
        await wait_for(
            pilot,
            lambda: (
                isinstance(pilot.app.screen, ScalingScreen)
                and all(c.chart is not None for c in pilot.app.screen.query(BrailleChart))
            ),
        )
        if keys:
            await pilot.press(*keys)
        await settle(pilot)

    return run


def test_scaling_view_80x24(snap_compare, scaling_app):
    """The matrix (time to target, 3 x 3 grid, 2 seeds), the curve with its regimes, the lr rule."""
    assert snap_compare(scaling_app, terminal_size=(80, 24), run_before=_open_scaling())


def test_scaling_view_160x48(snap_compare, scaling_app):
    assert snap_compare(scaling_app, terminal_size=(160, 48), run_before=_open_scaling())


def test_scaling_view_steps_160x48(snap_compare, scaling_app):
    assert snap_compare(scaling_app, terminal_size=(160, 48), run_before=_open_scaling("m"))


def test_scaling_view_accuracy_80x24(snap_compare, scaling_app):
    assert snap_compare(scaling_app, terminal_size=(80, 24), run_before=_open_scaling("m", "m"))


def test_scaling_view_no_batch_reached_80x24(snap_compare, noreach_app):
    assert snap_compare(noreach_app, terminal_size=(80, 24), run_before=_open_scaling())


def test_scaling_view_no_batch_reached_160x48(snap_compare, noreach_app):
    assert snap_compare(noreach_app, terminal_size=(160, 48), run_before=_open_scaling())


@pytest.fixture
def running_scaling_app(monkeypatch):
    running = FIXTURE_DIR.parent / "run_answer_running"
    monkeypatch.chdir(running.parent)
    return make_app(replay=running.name, follow=True)


def test_scaling_view_running_160x48(snap_compare, running_scaling_app):
    """A sweep still training: running cells in the matrix, the reached count names what still trains."""
    from tests.tui.test_snapshots import settle_live

    assert snap_compare(running_scaling_app, terminal_size=(160, 48), run_before=settle_live("c"))


async def test_v_shows_time_to_target_in_the_lower_chart():
    app = make_app(replay=str(ANSWER_DIR), follow=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("c")
        lower = lambda: app.screen.query_one("#scaling-samples", BrailleChart).chart  # noqa: E731
        await wait_for(pilot, lambda: isinstance(app.screen, ScalingScreen) and lower() is not None)
        assert lower().title == "samples to target vs batch"
        await pilot.press("v")
        await wait_for(
            pilot, lambda: lower() is not None and lower().title.startswith("time to target alone")
        )
        assert lower().yticks and not any(line.label == "fit" for line in lower().lines)  # no model for time
