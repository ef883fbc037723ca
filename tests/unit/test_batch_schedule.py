"""sweep.batch_schedule: its syntax, its config rules, and the verdict against the best fixed batch size."""

from __future__ import annotations

import pytest

from trainer.analysis import schedule_verdict
from trainer.config import ConfigError, config_from_toml
from trainer.config.batch_schedule import ScheduleError, Stage, format_stages, parse, run_id


def test_the_schedule_reads_megatron_syntax_with_optional_lrs():
    stages = parse("0:32 24000:64:0.1  48000:128")
    assert stages == [Stage(0, 32), Stage(24000, 64, 0.1), Stage(48000, 128)]
    assert format_stages(stages) == "0:32 24000:64 48000:128"
    assert format_stages(stages, with_lr=True) == "0:32 24000:64:0.1 48000:128"
    assert run_id(stages) == "sched32-64-128"
    assert parse("") == [] and parse("proposed") == []


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("10:32 100:64", "starts at sample 0"),
        ("0:32 100:64 100:128", "must increase"),
        ("0:32 x:64", "whole numbers"),
        ("0:0", "batch size >= 1"),
        ("0:32:-1", "positive"),
        ("0-32", "samples:batch_size"),
    ],
)
def test_a_schedule_that_does_not_parse_says_what_is_wrong(text, words):
    with pytest.raises(ScheduleError, match=words):
        parse(text)


def _problems(**sweep) -> str:
    extra = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in sweep.items())
    text = f"[data]\ntrain_samples = 1000\n[sweep]\nbatch_sizes = [16, 64]\nepochs = 2\n{extra}"
    try:
        config_from_toml(text)
    except ConfigError as exc:
        return str(exc)
    return ""


def test_the_config_checks_the_schedule():
    assert _problems(batch_schedule="0:16 500:64") == ""
    assert "sweep.batch_schedule" in _problems(batch_schedule="5:16")
    assert "larger than the training set" in _problems(batch_schedule="0:16 500:4000")
    assert "add a [branch] table" in _problems(batch_schedule="proposed")
    assert "sweep.seeds = 1" in _problems(batch_schedule="0:16", seeds=2)
    assert 'sweep.parallel = "off"' in _problems(batch_schedule="0:16", parallel="auto")


def _row(run, b, iters, lo, step_s):
    return {
        "run": run,
        "batch_size": b,
        "iters_to_target": iters,
        "iters_to_target_lo": lo,
        "samples_to_target": iters * b,
        "samples_to_target_lo": lo * b,
        "step_alone_s": step_s,
    }


def test_the_verdict_compares_with_the_fastest_fixed_batch_and_gives_intervals():
    fixed = [_row("bs16", 16, 400, 380, 0.01), _row("bs64", 64, 150, 140, 0.03)]  # 4.0 s and 4.5 s alone
    sched = {
        "run": "sched16-64",
        "iters_to_target": 200,
        "iters_to_target_lo": 190,
        "samples_to_target": 6000,
        "samples_to_target_lo": 5700,
        "time_alone_to_target_s": 3.0,
        "time_alone_to_target_lo_s": 2.85,
    }
    result = schedule_verdict.compare(sched, fixed)
    assert result["best"] == {"run": "bs16", "batch_size": 16, "by": "time"}
    assert result["steps"]["saved"] == pytest.approx(0.5)
    assert result["steps"]["saved_lo"] == pytest.approx(1 - 200 / 380)
    assert result["steps"]["saved_hi"] == pytest.approx(1 - 190 / 400)
    assert result["time"]["saved"] == pytest.approx(0.25)
    assert result["samples"]["saved"] == pytest.approx(1 - 6000 / 6400)
    text = schedule_verdict.sentence(result, "16 -> 64", 0.8)
    assert text.startswith(
        "The schedule 16 -> 64 reached 80.0% accuracy in 50% fewer steps (interval 47% to 52%)"
    )
    assert (
        "25% less time alone (interval 21% to 29%)" in text
        and "best fixed batch (16, the fastest to the target alone)" in text
    )
    assert text.endswith("it saved time.")
    rows = schedule_verdict.table(result)
    assert rows[2] == "| steps | 190–200 | 380–400 | 50% (47% to 52%) |"


def test_a_schedule_that_never_reached_the_target_says_so():
    fixed = [_row("bs16", 16, 400, 380, 0.01)]
    result = schedule_verdict.compare({"run": "sched16-64"}, fixed)
    assert not result["reached"]
    assert schedule_verdict.sentence(result, "16 -> 64", 0.8) == (
        "The schedule 16 -> 64 did not reach 80.0% accuracy; the best fixed batch (16) did."
    )


def test_a_scheduled_runs_time_alone_prices_each_stage_at_its_batch_size():
    row = {"iters_to_target": 70, "iters_to_target_lo": 40}
    stages = [(0, 16), (50, 64)]
    fields = schedule_verdict.scheduled_time_alone(row, stages, {16: {"step_s": 0.01}, 64: {"step_s": 0.03}})
    assert fields["time_alone_to_target_s"] == pytest.approx(50 * 0.01 + 20 * 0.03)
    assert fields["time_alone_to_target_lo_s"] == pytest.approx(40 * 0.01)
    untimed = schedule_verdict.scheduled_time_alone(row, stages, {16: {"step_s": 0.01}, 64: {"step_s": None}})
    assert untimed["time_alone_to_target_s"] is None and untimed[
        "time_alone_to_target_lo_s"
    ] == pytest.approx(0.4)


def test_change_points_follow_the_batches_that_start_in_each_stage():
    from trainer.config.batch_schedule import change_points, stage_at

    stages = parse("0:20 300:60 840:30")
    assert stage_at(stages, 299).batch_size == 20 and stage_at(stages, 300).batch_size == 60
    # 600 samples an epoch: 15 x 20 to 300, 5 x 60 to 600, 4 x 60 to 840, then 30s
    assert change_points(stages, 600, 3) == [(0, 0, 20), (15, 300, 60), (24, 840, 30)]
    # a threshold inside a batch: the change comes at the next batch's start
    assert change_points(parse("0:64 100:32"), 600, 1) == [(0, 0, 64), (2, 128, 32)]
    # an epoch's last batch is what is left of it: 600 = 9 x 64 + 24
    assert change_points(parse("0:64 590:32"), 600, 2) == [(0, 0, 64), (10, 600, 32)]


def test_a_loss_reads_as_more_with_its_interval_in_the_same_words():
    share = schedule_verdict._share
    assert share({"saved": -6.2, "saved_lo": -7.0, "saved_hi": -5.8}, "fewer", "more", "steps") == (
        "620% more steps (interval 580% to 700%)"
    )
    assert share({"saved": -0.093, "saved_lo": -0.21, "saved_hi": 0.027}, "less", "more", "time") == (
        "9.3% more time (interval 21% more to 2.7% less)"
    )
    # exact step counts: an interval narrower than the rounding says nothing
    assert share({"saved": -1.4, "saved_lo": -1.401, "saved_hi": -1.399}, "fewer", "more", "steps") == (
        "140% more steps"
    )
