"""The app reads a branched sweep: branch events are used, and branches stay off the scaling screen."""

from __future__ import annotations

from tui.state.arms import _rows
from tui.state.sweep import SweepState


def test_branch_events_are_read_and_branches_stay_out_of_the_grid_analysis():
    s = SweepState()
    events = [
        {
            "type": "sweep_started",
            "t": 0.0,
            "runs": [{"run": "bs20", "batch_size": 20, "lr": 0.1}],
            "config": {},
        },
        {
            "type": "run_started",
            "t": 0.1,
            "run": "bs20",
            "batch_size": 20,
            "lr": 0.1,
            "split_chunks": 1,
            "iters_per_epoch": 30,
        },
        {
            "type": "run_started",
            "t": 5.0,
            "run": "e1-bs60",
            "batch_size": 60,
            "lr": 0.1,
            "split_chunks": 1,
            "iters_per_epoch": 10,
            "branch": {
                "base_run": "bs20",
                "epoch": 1,
                "iters": 30,
                "samples": 600,
                "loss": 2.0,
                "target_loss": 1.8,
            },
        },
        {
            "type": "branch_point",
            "t": 9.0,
            "base_run": "bs20",
            "epoch": 1,
            "iters": 30,
            "samples": 600,
            "loss": 2.0,
            "branches": [],
            "determined": False,
        },
        {"type": "branch_result", "t": 9.1, "base_run": "bs20", "points": [], "schedule": []},
    ]
    assert all(s.apply(e) for e in events)
    assert s.skipped == 0
    assert s.branch_runs == {"e1-bs60"} and len(s.branch_points) == 1 and s.branch_result is not None
    assert "e1-bs60" in s.runs  # in the grid like any run
    assert [r["run"] for r in _rows(s)] == ["bs20"]  # but not a point of the sweep's own analysis
