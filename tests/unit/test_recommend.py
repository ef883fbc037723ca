"""The sweep's one-sentence answer: fastest batch size and lr to the target with the interval
its crossing is known in, ties where intervals overlap, and where larger batches stop paying (B_crit)."""

from __future__ import annotations

import re

from trainer.analysis.recommend import recommendation, recommendations
from trainer.analysis.scaling import analyse


def _row(b, lr, seed=0, *, time_s, time_lo_s, steps=100.0, steps_lo=90.0, status="done"):
    return {
        "batch_size": b,
        "lr": lr,
        "seed": seed,
        "status": status,
        "best_test_acc": 0.985,
        "iters_to_target": steps,
        "iters_to_target_lo": steps_lo,
        "samples_to_target": steps * b,
        "samples_to_target_lo": steps_lo * b,
        "time_to_target_s": time_s,
        "time_to_target_lo_s": time_lo_s,
    }


def _grid(b_crit=600.0, s_min=1000.0):
    """Steps follow S = S_min (1 + B_crit / B) exactly (every evaluation 1% apart), time ~ steps x B^0.5."""
    rows = []
    for b in (6, 60, 600, 6000):
        for lr, slower in ((0.01, 2.0), (0.1, 1.0)):
            for seed in (0, 1):
                steps = s_min * (1 + b_crit / b) * slower
                t = steps * b**0.5 / 1000
                rows.append(
                    _row(b, lr, seed, time_s=t, time_lo_s=0.99 * t, steps=steps, steps_lo=0.99 * steps)
                )
    return rows


def test_the_fastest_point_by_time_is_named_with_its_interval_and_device():
    sentence = recommendation(analyse(_grid()), 0.98, "cpu (2 threads)")
    # time ~ steps * sqrt(B): 6 -> 255, 60 -> 85, 600 -> 49, 6000 -> 85 s; batch 600 wins at lr 0.1
    assert sentence.startswith("fastest to 98% test accuracy: batch 600 at lr 0.1 (")
    assert "48.5–49.0 s of training on cpu (2 threads)" in sentence
    assert "1,980–2,000 steps" in sentence and "mean of 2 seeds" in sentence
    assert "tied" not in sentence


def test_b_crit_is_given_with_its_interval_when_determined():
    a = analyse(_grid(b_crit=600.0))
    assert a["b_crit"]["determined"]
    m = re.search(r"beyond B_crit ~ ([\d,]+) \(([\d,]+)–([\d,]+), 95% interval\)", recommendation(a, 0.98))
    assert m is not None
    mid, lo, hi = (float(g.replace(",", "")) for g in m.groups())
    assert lo <= 600 <= hi and lo <= mid <= hi


def test_overlapping_intervals_are_ties_not_a_ranking():
    rows = [
        _row(60, 0.1, time_s=10.0, time_lo_s=8.0),
        _row(600, 0.4, time_s=9.0, time_lo_s=5.0),
        _row(6000, 1.0, time_s=30.0, time_lo_s=25.0),
    ]
    sentence = recommendation(analyse(rows), 0.9)
    assert "fastest to 90% test accuracy: batch 600 at lr 0.4" in sentence
    assert "tied within the measured intervals with batch 60 at lr 0.1" in sentence
    assert "batch 6000" not in sentence


def test_a_diverged_or_partly_reached_point_is_never_the_answer():
    rows = [
        _row(60, 0.1, time_s=10.0, time_lo_s=9.5),
        _row(600, 0.8, time_s=2.0, time_lo_s=1.5, status="diverged"),  # fast, then diverged
        _row(600, 0.4, 0, time_s=3.0, time_lo_s=2.5),
        {
            **_row(600, 0.4, 1, time_s=0, time_lo_s=0),
            "iters_to_target": None,
            "samples_to_target": None,
            "time_to_target_s": None,
        },
    ]  # one seed of lr 0.4 never reached it
    assert recommendation(analyse(rows), 0.9).startswith("fastest to 90% test accuracy: batch 60 at lr 0.1")


def test_nothing_reached_says_so_with_the_best_accuracy_and_the_fix():
    rows = [
        {"batch_size": b, "lr": 0.1, "seed": 0, "status": "done", "best_test_acc": acc}
        for b, acc in ((60, 0.95), (600, 0.91))
    ]
    sentence = recommendation(analyse(rows), 0.98)
    assert sentence.startswith("no batch size reached 98% test accuracy (best: batch 60 at 95%)")
    assert "sweep.target_accuracy" in sentence


def test_too_few_batch_sizes_leave_b_crit_undetermined_with_the_reason():
    sentence = recommendation(analyse([_row(60, 0.1, time_s=10.0, time_lo_s=9.0)]), 0.98)
    assert "B_crit is not determined (" in sentence and "batch 60 at lr 0.1" in sentence


def test_one_sentence_per_variant_arm():
    scaling = {
        "variants": {"sgd": analyse(_grid()), "split4": analyse([_row(60, 0.1, time_s=1.0, time_lo_s=0.5)])}
    }
    sentences = recommendations(scaling, 0.98)
    assert [s.split(":")[0] for s in sentences] == ["sgd", "split4"]
    assert "batch 600 at lr 0.1" in sentences[0] and "batch 60 at lr 0.1" in sentences[1]


def test_a_fused_point_without_a_calibration_says_its_time_is_a_share():
    rows = _grid()
    for r in rows:
        if r["batch_size"] == 600:
            r["fused_runs"] = (
                4  # batch 600's runs trained as one fused group of 4, recorded before calibration
            )
    sentence = recommendation(analyse(rows), 0.98, "cpu")
    assert (
        "(batch 600 trained fused and this run directory has no time alone for it: its times are shares"
        in sentence
    )
    assert "fused" not in recommendation(analyse(_grid()), 0.98, "cpu")


def _calibrated(rows, step_s):
    """Every run with a calibration: its time per step alone by batch size, spread +-2%."""
    for r in rows:
        s = step_s[r["batch_size"]]
        r.update(step_alone_s=s, step_alone_s_lo=0.98 * s, step_alone_s_hi=1.02 * s)
    return rows


def test_fused_and_lone_runs_are_compared_by_time_alone_not_by_their_share():
    # Batch 60 trained fused in a group of 8: its measured time to target is an eighth of the group's, so
    # by shares it would win; alone each of its steps takes 4 ms against batch 600's 10 ms, and batch 600
    # needs 9x fewer steps: alone, batch 600 is faster.
    rows = [
        _row(60, 0.1, time_s=1.0, time_lo_s=0.9, steps=1000, steps_lo=900),
        _row(600, 0.4, time_s=1.1, time_lo_s=1.0, steps=110, steps_lo=100),
    ]
    rows[0]["fused_runs"] = 8
    assert recommendation(analyse(rows), 0.9).startswith("fastest to 90% test accuracy: batch 60 at lr 0.1")
    sentence = recommendation(analyse(_calibrated(rows, {60: 0.004, 600: 0.010})), 0.9, "cpu")
    # batch 600: 100-110 steps x 10 ms (+-2%) = 0.98-1.12 s; batch 60: 900-1,000 x 4 ms = 3.5-4.1 s
    assert sentence.startswith(
        "fastest to 90% test accuracy: batch 600 at lr 0.4 (0.980–1.12 s of training on "
        "cpu (its steps timed alone), 100–110 steps)"
    )
    assert "tied" not in sentence and "fused" not in sentence and "share" not in sentence


def test_time_alone_is_steps_times_the_step_time_for_a_fused_run():
    from trainer.analysis.time_alone import alone_of

    row = {
        **_row(6, 0.1, time_s=0.5, time_lo_s=0.45, steps=300, steps_lo=270),
        "fused_runs": 4,
        "step_alone_s": 0.002,
        "step_alone_s_lo": 0.0019,
        "step_alone_s_hi": 0.0023,
    }
    alone = alone_of(row)
    assert alone["hi"] == 300 * 0.002 and alone["lo"] == 270 * 0.002
    assert alone["min"] == 270 * 0.0019 and alone["max"] == 300 * 0.0023 and alone["source"] == "calibrated"
    # without a calibration a fused run has no time alone; a lone run's measured time is one
    assert alone_of({k: v for k, v in row.items() if not k.startswith("step_alone")}) is None
    lone = alone_of({**row, "fused_runs": 0, "step_alone_s": None})
    assert lone["hi"] == 0.5 and lone["lo"] == 0.45 and lone["source"] == "measured"
