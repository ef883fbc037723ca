"""The branch fit and the schedule it proposes, on synthetic S(B) data with a known B_crit."""

from __future__ import annotations

import pytest

from trainer.analysis.bcrit import Crossing
from trainer.analysis.schedule import Stage, expected_savings, megatron, pick_batch, propose, to_toml
from trainer.sweep.branch import crossing, fit_point


def _measured(b_crit: float, s_min: float, sizes=(8, 16, 32, 64, 128, 256, 512), lrs=(0.1,)) -> list[dict]:
    out = []
    for b in sizes:
        steps = s_min * (1 + b_crit / b)  # McCandlish et al.: S = S_min (1 + B_crit / B)
        for k, lr in enumerate(lrs):  # the other lrs take longer: the fit must pick the first
            s = steps * (1 + k)
            out.append(
                {
                    "batch_size": b,
                    "lr": lr,
                    "crossing": Crossing(s * 0.98, s * 1.02, s * 0.98 * b, s * 1.02 * b),
                }
            )
    return out


def test_a_branch_fit_on_synthetic_steps_gives_the_known_b_crit():
    fit = fit_point(_measured(b_crit=64.0, s_min=100.0))
    assert fit["determined"]
    assert fit["B_crit_lo"] <= 64.0 <= fit["B_crit_hi"]
    assert fit["B_crit"] == pytest.approx(64.0, rel=0.05)
    assert fit["S_min"] == pytest.approx(100.0, rel=0.05)


def test_the_fit_takes_the_fewest_step_lr_of_each_batch_size():
    fit = fit_point(_measured(b_crit=32.0, s_min=50.0, lrs=(0.1, 0.2)))
    assert fit["B_crit"] == pytest.approx(32.0, rel=0.05)
    assert set(fit["best_lr"].values()) == {0.1}


def _noisy_branch(batch: int, s_min: float, b_crit: float, every: int, seed: int, sd: float = 0.01):
    """A branch's slice losses: falling from 1.0 by 10% per S(B) = S_min (1 + B_crit / B) steps (linear in
    steps), each evaluation off by normal noise of `sd`."""
    import random

    rng = random.Random(seed)
    steps_to = s_min * (1 + b_crit / batch)
    evals = []
    for k in range(1, 200):
        samples = k * every
        steps = samples / batch
        loss = 1.0 - 0.1 * steps / steps_to + rng.gauss(0, sd)
        evals.append({"iter": 1000 + round(steps), "samples": 50_000 + samples, "test_loss": loss})
    return evals, steps_to


def test_a_lucky_dip_neither_ends_a_branch_nor_decides_its_crossing():
    evals = [
        {"iter": 100 + 10 * k, "samples": 1000 + 100 * k, "test_loss": 1.0 - 0.01 * k} for k in range(1, 21)
    ]
    evals[2]["test_loss"] = 0.85  # one evaluation far below the trend (the target is 0.9)
    hit = crossing(evals[:4], 1.0, 0.9, 100, 1000)
    assert hit is None  # the dip alone is no crossing
    hit = crossing(evals, 1.0, 0.9, 100, 1000)
    assert hit is not None
    assert hit.steps_lo <= 100 <= hit.steps_hi  # the trend crosses at 10 evaluations = 100 steps
    assert hit.steps_lo > 30  # the dip at 30 steps is not where it crossed
    assert hit.samples_lo == hit.steps_lo * 10 and hit.samples_hi == hit.steps_hi * 10


def test_the_crossing_holds_the_true_one_under_noise():
    held = 0
    for seed in range(40):
        evals, truth = _noisy_branch(64, 100.0, 64.0, every=640, seed=seed, sd=0.01)
        # A branch stops soon after its crossing: 3x the evaluations to the true one (20) is plenty.
        hit = crossing(evals[:60], 1.0, 0.9, 1000, 50_000)
        assert hit is not None
        held += hit.steps_lo <= truth <= hit.steps_hi
    assert held >= 36  # about 95% by construction; at most 4 of 40 miss


def test_a_branch_fit_from_noisy_evaluations_gives_the_known_b_crit():
    measured = []
    for b in (16, 32, 64, 128, 256):
        evals, _ = _noisy_branch(b, 100.0, 64.0, every=400, seed=b, sd=0.005)
        measured.append({"batch_size": b, "lr": 0.1, "crossing": crossing(evals, 1.0, 0.9, 1000, 50_000)})
    fit = fit_point(measured)
    assert fit["determined"], fit["reason"]
    assert fit["B_crit_lo"] <= 64.0 <= fit["B_crit_hi"]


def test_the_schedule_ramps_to_each_points_b_crit_and_never_down():
    points = [
        {"samples": 1000, "B_crit": 20.0, "determined": True},
        {"samples": 5000, "B_crit": 70.0, "determined": True},
        {"samples": 9000, "B_crit": 50.0, "determined": True},  # lower again: the ramp stays
        {"samples": 12000, "B_crit": None, "determined": False},
    ]
    stages = propose(points, [16, 32, 64, 128], lambda b: 0.01 * b / 16)
    assert stages == [Stage(0, 16, 0.01), Stage(5000, 64, 0.04)]
    assert pick_batch(5.0, [16, 32]) == 16


def test_each_stage_takes_the_lr_its_branches_measured_best():
    points = [
        {"samples": 1000, "B_crit": 20.0, "determined": True, "best_lr": {"16": 0.003, "32": 0.02}},
        {"samples": 5000, "B_crit": 300.0, "determined": True, "best_lr": {"16": 0.004, "64": 0.05}},
    ]
    stages = propose(points, [16, 64, 256], lambda b: 0.01 * b / 16)
    # 16 was measured best at 0.003 at the first point; 256 has no crossing at the second: the rule's lr
    assert stages == [Stage(0, 16, 0.003), Stage(5000, 256, 0.16)]


def test_the_schedule_exports_in_megatron_and_toml_form():
    stages = [Stage(0, 32, 0.01), Stage(20000, 64, 0.02), Stage(60000, 256, 0.08)]
    assert megatron(stages) == '--step-batch-size-schedule "0:32 20000:64 60000:256"'
    import tomllib

    from trainer.config.batch_schedule import parse

    assert parse(tomllib.loads(to_toml(stages))["sweep"]["batch_schedule"]) == stages
    with pytest.raises(ValueError):
        megatron([])


def test_expected_savings_follow_the_steps_model():
    points = [{"samples": 0, "B_crit": 100.0, "determined": True}]
    stages = [Stage(0, 100, 0.1)]
    out = expected_savings(stages, points, base_batch=10, total_samples=10_000, step_s={10: 1.0, 100: 2.0})
    # base: 1000 steps; batch 100 at B_crit 100: 1000 (1 + 1) / (1 + 10) steps
    assert out["steps"] == pytest.approx(1000 * 2 / 11)
    assert out["steps_saved"] == pytest.approx(1 - 2 / 11)
    assert out["time_saved"] == pytest.approx(1 - 2 * 2 / 11)
    assert out["samples"] == pytest.approx(10_000 * 2 / 1.1)


def test_the_report_section_states_the_curve_the_schedule_and_its_expected_savings():
    from trainer.report.branch import section

    point = {
        "epoch": 1,
        "samples": 10_000,
        "loss": 0.61,
        "determined": True,
        "B_crit": 40.0,
        "B_crit_lo": 30.0,
        "B_crit_hi": 55.0,
        "S_min": 90.0,
        "S_min_lo": 80.0,
        "S_min_hi": 100.0,
        "E_min": 3600.0,
        "E_min_lo": 3000.0,
        "E_min_hi": 4000.0,
        "b_simple": 25.0,
        "b_simple_lo": 20.0,
        "b_simple_hi": 31.0,
        "branches": [
            {
                "batch_size": 32,
                "lr": 0.02,
                "steps_lo": 100,
                "steps": 110,
                "samples_lo": 3200,
                "samples": 3520,
                "status": "done",
            }
        ],
    }
    result = {
        "base_run": "bs128",
        "base_batch_size": 128,
        "decrease": 0.1,
        "points": [point],
        "schedule": [{"samples": 0, "batch_size": 32, "lr": 0.02}],
        "megatron": '--step-batch-size-schedule "0:32"',
        "expected": {
            "base_batch_size": 128,
            "base_samples": 60_000,
            "base_steps": 469,
            "steps": 300,
            "samples": 40_000,
            "steps_saved": 0.36,
            "samples_saved": 0.33,
            "time_saved": 0.12,
        },
    }
    text = "\n".join(section(result, "cpu"))
    assert "| 1 | 10,000 | 0.610 | - | 40 (30–55) |" in text
    assert "25 (20–31)" in text  # B_simple beside it
    assert '`--step-batch-size-schedule "0:32"`' in text
    assert "(36% fewer)" in text and "12% less" in text and "on cpu" in text
    assert 'batch_schedule = "0:32:0.02"' in text
    assert "40,000 samples (33% fewer)" in text and "has not been trained" in text
    result["expected"].update(time_saved=-0.028, samples_saved=-0.31, samples=47_161.3)
    text = "\n".join(section(result, "cpu", trained="sched32"))
    assert "2.8% more time" in text and "47,000 samples (31% more)" in text
    assert "trained as sched32" in text and "has not been trained" not in text


def test_the_run_that_trained_the_proposal_is_named():
    from trainer.config.batch_schedule import PROPOSED_SOURCE
    from trainer.report.branch import proposed_run

    configured = {"run": "sched16-64", "batch_schedule_source": "as configured in sweep.batch_schedule"}
    assert proposed_run([configured]) == ""
    assert (
        proposed_run([configured, {"run": "sched32-256", "batch_schedule_source": PROPOSED_SOURCE}])
        == "sched32-256"
    )
