"""Progress and ETA from the measured rate."""

from __future__ import annotations

import pytest

from tests.tui.test_state import started
from tui.state.progress import duration, run_progress, sweep_progress


def test_run_progress_and_time_left_follow_the_measured_rate():
    s = started(60)
    run = s.runs["bs60"]
    run.iters_per_epoch, run.epochs_total = 100, 4
    s.apply({"type": "losses", "t": 11.0, "run": "bs60", "first_iter": 0, "values": [1.0] * 100})
    s.apply(
        {
            "type": "epoch_end",
            "t": 11.0,
            "run": "bs60",
            "epoch": 1,
            "iters": 100,
            "samples": 6000,
            "wall_s": 10.0,
            "compute_s": 8.0,
            "test_acc": 0.9,
        }
    )
    p = run_progress(run)
    assert p.fraction == 0.25 and p.rate == 10.0 and p.left_s == pytest.approx(30.0)
    sweep = sweep_progress(s)
    assert sweep.fraction == 0.25
    assert sweep.eta_s == pytest.approx(30.0 * 11.0 / 10.0)  # the clock spent 11 s per 10 s of training


def test_a_finished_run_has_nothing_left_and_an_unmeasured_one_no_eta():
    s = started(6, 60)
    for r in s.runs.values():
        r.iters_per_epoch, r.epochs_total = 10, 1
    assert run_progress(s.runs["bs6"]).left_s is None
    assert sweep_progress(s).eta_s is None
    s.apply({"type": "run_finished", "t": 2.0, "run": "bs6", "status": "diverged"})
    assert run_progress(s.runs["bs6"]).left_s == 0.0


def test_durations_are_rough():
    assert duration(None) == "-" and duration(42.4) == "42s" and duration(125) == "2m"
    assert duration(3725) == "1h02m" and duration(2 * 86400 + 3 * 3600) == "2d3h"


def _timed(s, rid: str, t: float, wall: float) -> None:
    """One epoch of 100 iterations of run `rid`, ending at sweep clock `t`, trained in `wall` s."""
    s.apply({"type": "losses", "t": t, "run": rid, "first_iter": 0, "values": [1.0] * 100})
    s.apply(
        {
            "type": "epoch_end",
            "t": t,
            "run": rid,
            "epoch": 1,
            "iters": 100,
            "samples": 6000,
            "wall_s": wall,
            "compute_s": wall,
            "test_acc": 0.9,
        }
    )


def test_the_header_eta_is_the_sum_of_the_tables_time_left_per_run():
    """The event clock is the test's fake clock: two interleaved runs, each timed alone."""
    s = started(6, 60)
    for r in s.runs.values():
        r.iters_per_epoch, r.epochs_total = 100, 4
    _timed(s, "bs6", 10.0, 5.0)
    _timed(s, "bs60", 20.0, 5.0)  # 20 s of clock for 10 s of training: 2 clock s per training s
    sweep = sweep_progress(s)
    assert sweep.left_s["bs6"] == pytest.approx(300 / 20 * 2) and sweep.left_s["bs60"] == pytest.approx(30.0)
    assert sweep.eta_s == pytest.approx(sum(sweep.left_s.values()))


def test_the_eta_is_frozen_while_paused_and_does_not_grow_by_the_pause():
    s = started(60)
    run = s.runs["bs60"]
    run.iters_per_epoch, run.epochs_total = 100, 4
    _timed(s, "bs60", 11.0, 10.0)
    before = sweep_progress(s).eta_s
    s.apply({"type": "paused", "t": 12.0, "paused": True, "run_waiting": "bs60", "iter": 100})
    assert s.apply(
        {"type": "evaluation", "t": 200.0, "run": "bs60", "iter": 100, "samples": 6000, "test_acc": 0.9}
    )
    assert s.clock == 200.0  # a later event moved the clock
    assert sweep_progress(s).eta_s == pytest.approx(before * 12.0 / 11.0)  # up to the pause, not 200 s
    s.apply({"type": "paused", "t": 600.0, "paused": False, "run_waiting": "bs60", "iter": 100})
    assert sweep_progress(s).eta_s == pytest.approx(
        before * 12.0 / 11.0
    )  # resumed: the pause is not training
