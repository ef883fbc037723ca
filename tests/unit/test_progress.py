"""Progress and ETA from the measured rate."""
from __future__ import annotations

import pytest

from tests.tui.test_state import started
from tui.progress import duration, run_progress, sweep_progress


def test_run_progress_and_time_left_follow_the_measured_rate():
    s = started(60)
    run = s.runs["bs60"]
    run.iters_per_epoch, run.epochs_total = 100, 4
    s.apply({"type": "losses", "t": 11.0, "run": "bs60", "first_iter": 0, "values": [1.0] * 100})
    s.apply({"type": "epoch_end", "t": 11.0, "run": "bs60", "epoch": 1, "iters": 100, "samples": 6000,
             "wall_s": 10.0, "compute_s": 8.0, "test_acc": 0.9})
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
