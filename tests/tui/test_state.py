"""The sweep model: events in, what the app shows out."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.tui.conftest import fixture_events
from tui.state.series import LossSeries
from tui.state.sweep import SweepState


def started(*batch_sizes: int) -> SweepState:
    s = SweepState()
    s.apply(
        {
            "type": "sweep_started",
            "t": 0.0,
            "dataset": "mnist",
            "device": "cpu",
            "runs": [{"run": f"bs{b}", "batch_size": b, "lr": 0.02, "split_chunks": 1} for b in batch_sizes],
            "config": {"sweep": {"epochs": 3, "target_accuracy": 0.98}},
        }
    )
    for b in batch_sizes:
        s.apply(
            {
                "type": "run_started",
                "t": 0.1,
                "run": f"bs{b}",
                "batch_size": b,
                "lr": 0.02,
                "momentum": 0.5,
                "split_chunks": 1,
                "iters_per_epoch": 10,
            }
        )
    return s


def test_fixture_replay_fills_every_run():
    s = SweepState()
    s.apply_all(fixture_events())
    assert s.skipped == 0
    assert s.finished and s.status == "done"
    assert [r.batch_size for r in s.run_list()] == [1, 6, 60, 600, 6000]
    assert s.runs["bs1"].status == "diverged"
    assert len(s.runs["bs1"].losses) == 7000
    assert s.runs["bs60"].split_chunks == 4 and s.runs["bs60"].mode_changes == [(100, 4)]
    assert s.runs["bs6"].split_chunks == 1  # refused: 4 does not divide 6
    assert s.runs["bs6"].time_to_target_s == 12.0
    assert s.runs["bs600"].best_acc == pytest.approx(0.9)
    assert s.epochs == 3


def test_losses_land_at_their_iterations_and_null_is_missing():
    s = started(60)
    s.apply({"type": "losses", "t": 1.0, "run": "bs60", "first_iter": 0, "values": [2.3, None, 2.1]})
    s.apply({"type": "losses", "t": 2.0, "run": "bs60", "first_iter": 5, "values": [1.0]})
    raw = s.runs["bs60"].losses.raw
    assert len(raw) == 6
    assert raw[0] == pytest.approx(2.3) and math.isnan(raw[1]) and math.isnan(raw[3])
    assert raw[5] == pytest.approx(1.0)
    assert s.runs["bs60"].last_loss == pytest.approx(1.0)


def test_bad_events_are_counted_not_raised():
    s = started(60)
    for bad in (
        "not a dict",
        {"type": "losses", "run": "bs60", "first_iter": 0, "values": "oops"},
        {"type": "losses", "run": "nope", "first_iter": 0, "values": [1.0]},
        {"type": "epoch_end", "run": "bs60"},
        {"type": "who_knows"},
        {"no": "type"},
    ):
        assert s.apply(bad) is False
    assert s.skipped == 6
    assert s.runs["bs60"].status == "running"


def test_split_refusal_keeps_the_mode_and_the_switch_reads_as_requested():
    s = started(6, 60)
    assert s.split_switch() == (False, 0)  # nothing asked, nothing configured
    s.apply(
        {
            "type": "mode_changed",
            "t": 1,
            "run": "bs6",
            "iter": 4,
            "split_chunks": 1,
            "requested": 4,
            "reason": "4 chunks do not divide batch size 6",
        }
    )
    s.apply({"type": "mode_changed", "t": 1, "run": "bs60", "iter": 4, "split_chunks": 4, "requested": 4})
    assert s.runs["bs6"].mode_changes == [] and s.runs["bs6"].split_chunks == 1
    assert s.runs["bs6"].split_refused == "4 chunks do not divide batch size 6"
    assert s.runs["bs60"].mode_changes == [(4, 4)]
    assert s.runs["bs60"].effective_lr == pytest.approx(0.08)
    assert s.notices == []  # the app said it when the key was pressed (tui.state.split_choice)
    assert s.split_switch() == (True, 4)
    s.apply({"type": "mode_changed", "t": 2, "run": "bs6", "iter": 9, "split_chunks": 1, "requested": 1})
    assert s.split_switch() == (False, 0)  # off, although bs6 itself changed nothing


def test_the_switch_of_a_sweep_without_requests_is_its_config():
    s = SweepState()
    s.apply(
        {
            "type": "sweep_started",
            "t": 0.0,
            "runs": [{"run": "bs60", "batch_size": 60, "lr": 0.02, "split_chunks": 3}],
            "config": {"split_backward": {"enabled": True, "chunks": 3}},
        }
    )
    assert s.split_switch() == (True, 3)
    s.apply(
        {"type": "mode_changed", "t": 1, "run": "bs60", "iter": 4, "split_chunks": 1}
    )  # older: no requested
    assert s.split_switch() == (False, 0)


@pytest.mark.parametrize("status", ["interrupted", "failed"])  # killed by a signal; crashed (a bug)
def test_trainer_loss_marks_unfinished_runs_and_keeps_data(status):
    s = started(6, 60)
    s.apply({"type": "losses", "t": 1.0, "run": "bs6", "first_iter": 0, "values": [2.0, 1.9]})
    s.apply({"type": "run_finished", "t": 2.0, "run": "bs60", "status": "done", "reason": ""})
    s.mark_lost("the trainer is gone", status)
    assert s.runs["bs6"].status == status and s.status == status and len(s.runs["bs6"].losses) == 2
    assert s.runs["bs60"].status == "done"  # a run that ended keeps its status


def test_failed_sweep_before_start_keeps_its_reason():
    s = SweepState()
    s.apply({"type": "sweep_finished", "t": 0.1, "status": "failed", "reason": "dataset mnist unavailable"})
    assert s.finished and s.status == "failed" and s.reason == "dataset mnist unavailable"


def test_ema_matches_the_recurrence_and_is_debiased():
    beta = 0.9
    series = LossSeries(capacity=4, beta=beta)
    rng = np.random.default_rng(0)
    values = rng.uniform(0.5, 2.5, 1000).tolist()
    values[10] = None  # missing: skipped by the EMA
    series.put(0, values[:300])
    series.put(300, values[300:])
    e, n, expected = 0.0, 0, []
    for v in values:
        if v is None:
            expected.append(math.nan)
            continue
        e = beta * e + (1 - beta) * v
        n += 1
        expected.append(e / (1 - beta**n))
    got = series.smooth
    assert np.isnan(got[10])
    np.testing.assert_allclose(np.nan_to_num(got), np.nan_to_num(np.array(expected)), rtol=1e-5)
    assert got[0] == pytest.approx(values[0], rel=1e-6)  # debiased: starts at the first value


def test_wall_axis_uses_epoch_wall_times_and_extrapolates():
    s = started(60)
    run = s.runs["bs60"]
    s.apply({"type": "losses", "t": 1.0, "run": "bs60", "first_iter": 0, "values": [1.0] * 15})
    s.apply(
        {
            "type": "epoch_end",
            "t": 2.0,
            "run": "bs60",
            "epoch": 1,
            "iters": 10,
            "samples": 600,
            "wall_s": 5.0,
            "compute_s": 4.0,
            "test_acc": 0.5,
        }
    )
    x = run.wall_axis(15)
    assert x[9] == pytest.approx(5.0)  # end of epoch 1
    assert x[4] == pytest.approx(2.5)
    assert x[14] == pytest.approx(7.5)  # extrapolated at the last epoch's pace


def test_smoothing_window_follows_the_epoch_length():
    s = started(60)  # iters_per_epoch 10 -> a 2-iteration window
    s.apply({"type": "losses", "t": 1, "run": "bs60", "first_iter": 0, "values": [4.0, 2.0, 1.0]})
    smooth = s.runs["bs60"].losses.smooth
    # beta 0.5, debiased: 4, (0.5*2 + 0.25*4... ) -> exact recurrence values
    assert smooth.tolist() == pytest.approx(
        [4.0, (0.25 * 4 + 0.5 * 2) / 0.75, (0.125 * 4 + 0.25 * 2 + 0.5 * 1) / 0.875]
    )


def test_a_resumed_sweep_runs_again_and_nothing_is_counted_unreadable():
    s = started(60)
    s.apply(
        {
            "type": "sweep_resumed",
            "t": 5.0,
            "run_dir": "/r",
            "runs": [{"run": "bs60", "from_epoch": 1}],
            "kept": [],
            "dropped_lines": 3,
            "skipped_lines": 0,
            "resume": 1,
        }
    )
    assert s.skipped == 0 and s.status == "running" and not s.finished
    assert any("resumed" in n for n in s.notices)


def test_plot_titles_name_the_run_its_progress_and_the_gpu_when_runs_spread_over_several():
    from tui.render.charts import plot_title

    s = started(6000)
    s.apply(
        {
            "type": "run_started",
            "t": 0.2,
            "run": "bs6000",
            "batch_size": 6000,
            "lr": 20.0,
            "momentum": 0.9,
            "split_chunks": 1,
            "iters_per_epoch": 10,
            "variant": "lars",
            "device": "cuda:1",
        }
    )
    run = s.runs["bs6000"]
    assert plot_title(run, "bs 6000 lars", 60, "40%") == "bs 6000 lars · 40% running"
    assert plot_title(run, "bs 6000 lars", 60, show_device=True) == "bs 6000 lars · cuda:1 · running"
    assert plot_title(run, "bs 6000 lars", 12) == "bs 6000 lars"
    assert plot_title(run, "bs 6000 lars", 9) == "bs 6000"


def test_epoch_ends_are_evaluations_and_alerts_say_target_and_divergence():
    s = started(6, 60)
    s.apply(
        {
            "type": "epoch_end",
            "t": 1.0,
            "run": "bs6",
            "epoch": 1,
            "iters": 10,
            "samples": 60,
            "wall_s": 1.0,
            "compute_s": 0.5,
            "test_acc": 0.9,
            "test_loss": 0.3,
            "total_iters": 10,
        }
    )
    assert [(e.iters, e.samples, e.test_acc) for e in s.runs["bs6"].evals] == [(10, 60, 0.9)]
    s.apply({"type": "target_reached", "t": 1.1, "run": "bs6", "epoch": 1, "iter": 10, "test_acc": 0.985})
    s.apply(
        {"type": "run_finished", "t": 1.2, "run": "bs60", "status": "diverged", "reason": "loss became nan"}
    )
    assert [(a.kind, a.run, a.detail) for a in s.alerts] == [
        ("target", "bs6", "reached 98.5% at iteration 10"),
        ("diverged", "bs60", "diverged: loss became nan"),
    ]
    assert s.clock == 1.2 and s.runs["bs6"].seed is None and s.runs["bs6"].epochs_total == 3


def test_start_up_stages_show_until_the_first_loss_point_and_keep_the_clock():
    s = SweepState()
    assert s.apply({"type": "startup", "t": 30.0, "stage": "generating synthetic-digits", "fraction": 0.4})
    assert s.stage == "generating synthetic-digits 40%" and s.clock == 0.0  # start-up has a clock of its own
    assert not s.apply({"type": "startup", "t": 1.0, "stage": 7})  # a stage that is not text is skipped
    s.apply({"type": "sweep_started", "t": 0.0, "runs": [{"run": "bs60", "batch_size": 60, "lr": 0.02}]})
    s.apply(
        {
            "type": "run_started",
            "t": 0.1,
            "run": "bs60",
            "batch_size": 60,
            "lr": 0.02,
            "momentum": 0.5,
            "split_chunks": 1,
            "iters_per_epoch": 10,
        }
    )
    s.apply({"type": "startup", "t": 0.2, "run": "bs60", "stage": "capturing CUDA graph"})
    assert s.stage == "capturing CUDA graph (bs60)"
    s.apply({"type": "losses", "t": 0.5, "run": "bs60", "first_iter": 0, "values": [2.3, 2.2]})
    assert s.stage == "" and s.clock == 0.5


def test_sub_epoch_evaluations_are_points_of_the_accuracy_curve_between_epoch_ends():
    s = started(60)
    s.apply(
        {
            "type": "evaluation",
            "t": 1.0,
            "run": "bs60",
            "epoch": 1,
            "iter": 3,
            "samples": 180,
            "test_acc": 0.5,
            "test_loss": 1.2,
        }
    )
    s.apply(
        {
            "type": "evaluation",
            "t": 2.0,
            "run": "bs60",
            "epoch": 1,
            "iter": 6,
            "samples": 360,
            "test_acc": 0.7,
            "test_loss": 0.9,
        }
    )
    assert not s.apply(
        {"type": "evaluation", "t": 2.5, "run": "bs60", "epoch": 1, "iter": "7", "samples": 420}
    )
    assert [(p.iters, p.test_acc) for p in s.runs["bs60"].evals] == [(3, 0.5), (6, 0.7)]


def test_the_noise_probe_shows_b_simple_with_its_interval_and_says_when_undefined():
    from tui.widgets.run_table import b_simple_cell

    s = started(6)
    s.apply(
        {
            "type": "epoch_end",
            "t": 1.0,
            "run": "bs6",
            "epoch": 1,
            "iters": 10,
            "samples": 60,
            "b_simple": 5948.0,
        }
    )
    assert b_simple_cell(s.runs["bs6"]).plain == "5.95k"  # no probe yet: the in-batch estimate, dim
    assert b_simple_cell(s.runs["bs6"]).style == "dim"
    probe = {
        "type": "noise_probe",
        "t": 2.0,
        "run": "bs6",
        "iter": 20,
        "samples": 120,
        "g2": 1.0,
        "trace": 642.0,
    }
    s.apply({**probe, "b_simple": 642.0, "b_simple_lo": None, "b_simple_hi": None, "b_simple_readings": 2})
    assert b_simple_cell(s.runs["bs6"]).plain == "642 [?]"  # too few readings for an interval
    s.apply(
        {
            **probe,
            "b_simple": 642.0,
            "b_simple_lo": 420.0,
            "b_simple_hi": 980.0,
            "b_simple_undefined": 0.1,
            "b_simple_readings": 10,
        }
    )
    assert b_simple_cell(s.runs["bs6"]).plain == "642 [420-980]"
    s.apply({**probe, "b_simple": 642.0, "b_simple_lo": 0.0, "b_simple_hi": None, "b_simple_readings": 10})
    assert b_simple_cell(s.runs["bs6"]).plain == "642 [0-∞]"  # the interval is open above
    s.apply({**probe, "b_simple": None, "b_simple_readings": 10, "b_simple_undefined": 0.6})
    assert b_simple_cell(s.runs["bs6"]).plain == "undef."
    assert s.skipped == 0


def test_time_to_target_shows_the_interval_from_the_last_miss_to_the_hit():
    from tui.widgets.run_table import target_cell

    s = started(60)
    assert target_cell(s.runs["bs60"]).plain == "-"
    s.apply(
        {
            "type": "target_reached",
            "t": 3.0,
            "run": "bs60",
            "iter": 500,
            "wall_s": 12.0,
            "wall_s_lo": 10.5,
            "test_acc": 0.981,
        }
    )
    assert target_cell(s.runs["bs60"]).plain == "10.5s-12s"
    s.apply(
        {"type": "target_reached", "t": 3.0, "run": "bs60", "iter": 500, "wall_s": 12.0, "test_acc": 0.981}
    )
    assert (
        target_cell(s.runs["bs60"]).plain == "12s"
    )  # an epoch-end crossing of an older trainer: no interval


def test_the_header_shows_the_pipeline_the_data_size_and_why_it_fell_back():
    from tui.widgets.sweep_header import header_text

    s = started(60)
    assert "resident" not in header_text(s, "exp.toml", "/runs/a", 0).plain, (
        "older sweeps recorded no pipeline"
    )
    s.apply(
        {
            "type": "sweep_started",
            "t": 0.0,
            "dataset": "cifar10",
            "device": "cpu",
            "runs": [],
            "pipeline": "resident",
            "pipeline_reason": "",
            "data_bytes": 737_280_000,
        }
    )
    text = header_text(s, "exp.toml", "/runs/a", 0).plain
    assert "cifar10 · cpu · resident 737 MB · /runs/a · exp.toml" in text and "\n" not in text
    s.apply(
        {
            "type": "sweep_started",
            "t": 0.0,
            "dataset": "cifar10",
            "device": "cpu",
            "runs": [],
            "pipeline": "dataloader",
            "pipeline_reason": "the data (703 MiB as float32) does not fit",
            "data_bytes": 737_280_000,
        }
    )
    text = header_text(s, "exp.toml", "/runs/a", 0).plain
    assert (
        "cpu · dataloader 737 MB" in text
        and "\ndataloader: the data (703 MiB as float32) does not fit" in text
    )


def test_a_fused_run_is_marked_with_its_group_size_where_its_time_shows():
    from tui.render.looks import sweep_looks
    from tui.widgets.timing_panel import timing_text

    s = started(6, 60)
    s.apply(
        {
            "type": "run_started",
            "t": 0.1,
            "run": "bs6",
            "batch_size": 6,
            "lr": 0.02,
            "split_chunks": 1,
            "iters_per_epoch": 10,
            "fused": "fused0-bs6",
            "fused_runs": ["bs6", "x", "y"],
            "fused_reason": "",
        }
    )
    for b in (6, 60):
        s.apply(
            {
                "type": "epoch_end",
                "t": 1.0,
                "run": f"bs{b}",
                "epoch": 1,
                "wall_s": 2.0,
                "compute_s": 1.0,
                "test_acc": 0.5,
                "test_loss": 1.0,
                "train_loss": 1.0,
            }
        )
    assert s.runs["bs6"].fused_k == 3 and s.runs["bs60"].fused_k == 0
    lines = timing_text(s, 100, sweep_looks(s.run_list())).plain.splitlines()
    assert "÷K" in lines[0]
    assert "÷3 " in lines[1] and "÷" not in lines[2]


def test_the_table_shows_time_to_target_alone_where_the_sweep_timed_a_step_alone():
    from tui.widgets.run_table import target_cell

    s = started(6, 60)
    assert s.apply(
        {
            "type": "step_time",
            "t": 0.05,
            "key": "{}",
            "batch_size": 6,
            "runs": ["bs6"],
            "step_s": 0.002,
            "step_s_lo": 0.0019,
            "step_s_hi": 0.0024,
            "cost_s": 0.1,
        }
    )
    for run in ("bs6", "bs60"):  # bs6 trained fused: its measured time is a share of its group's
        s.apply(
            {
                "type": "target_reached",
                "t": 2.0,
                "run": run,
                "epoch": 1,
                "iter": 300,
                "iter_lo": 250,
                "wall_s": 0.2,
                "wall_s_lo": 0.15,
                "test_acc": 0.98,
            }
        )
    assert s.skipped == 0 and s.runs["bs6"].step_alone_s == 0.002
    assert s.runs["bs6"].time_alone_to_target() == (0.5, 0.6)  # 250 and 300 batches x 2 ms
    assert target_cell(s.runs["bs6"]).plain == target_cell_text(0.5, 0.6)
    # without a step time alone (bs60 here, or a run directory recorded before it) the measured time
    assert s.runs["bs60"].time_alone_to_target() is None
    assert target_cell(s.runs["bs60"]).plain == target_cell_text(0.15, 0.2)


def target_cell_text(lo: float, hi: float) -> str:
    from tui.widgets.timing_panel import seconds

    return f"{seconds(lo)}-{seconds(hi)}"
