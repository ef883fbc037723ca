"""The end of `python -m trainer run`: a scheduled run (sweep.batch_schedule) is a row labelled by its stages,
and after the answer come the schedule's verdict and the branched B_crit in brief, in the report's words.
Read from recorded events (tests/tui/fixtures/run_schedule and small event lists); nothing trains."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from rich.console import Console

from trainer.cli.console import closing_lines, schedules, summary_table
from trainer.cli.exits import EXIT_OK
from trainer.cli.session import sweep_into
from trainer.config import Config
from trainer.report.build import markdown
from trainer.report.collect import collect
from trainer.runlog import read_events, read_summary, summary_csv
from trainer.sweep.driver import SweepResult

FIXTURE = Path(__file__).resolve().parents[1] / "tui" / "fixtures" / "run_schedule"
SCHEDULED = "sched16-64-128"


@pytest.fixture(scope="module")
def events() -> list[dict]:
    return read_events(FIXTURE).events


def _render(rows, scheduled) -> list[str]:
    console = Console(width=400, record=True)
    console.print(summary_table(rows, "cpu", scheduled=scheduled))
    return console.export_text().splitlines()


def _summaries(events: list[dict]) -> list[dict]:
    return [e["summary"] for e in events if e["type"] == "run_finished"]


def test_a_scheduled_run_shows_its_stages_not_its_first_batch_size(events, tmp_path):
    # as the trainer prints it: read back from summary.csv, whose fields are strings
    (tmp_path / "summary.csv").write_text(summary_csv(_summaries(events)))
    lines = _render(read_summary(tmp_path), schedules(events))
    row = next(ln for ln in lines if SCHEDULED in ln)
    cells = [c.strip() for c in row.split("│")]
    assert cells[2] == "16→64→128"  # the label the app's grid and report.md give its stages
    assert cells[3] == "0.025→0.05→0.0707" and cells[5] == "0.025→0.05→0.0707"  # lr by stage; k = 1
    fixed = [c.strip() for c in next(ln for ln in lines if " bs16 " in ln).split("│")]
    assert fixed[2] == "16" and fixed[3] == "0.025"


def test_with_split_backward_the_effective_lr_of_each_stage_is_its_lr_times_k(events):
    row = {**next(s for s in _summaries(events) if s["run"] == SCHEDULED), "split_chunks": 4}
    cells = [
        c.strip() for c in next(ln for ln in _render([row], schedules(events)) if SCHEDULED in ln).split("│")
    ]
    assert cells[4] == "4" and cells[5] == "0.1→0.2→0.283"


def test_the_verdict_and_the_branched_bcrit_are_the_reports_words(events):
    lines = closing_lines(events)
    report = markdown(collect(FIXTURE), plots=False)
    verdict = lines[0]
    assert verdict.startswith("The schedule 16 -> 64 -> 128 reached 80.0% accuracy") and verdict in report
    assert "than the best fixed batch (256" in verdict
    assert lines[1] == "branched B_crit (95% interval), from the checkpoints of bs64:"
    assert lines[2:5] == [
        "  after epoch 1 (8,192 samples, loss 1.20): 24 (15–38)",
        "  after epoch 2 (16,384 samples, loss 0.600): 70 (48–100)",
        "  after epoch 3 (24,576 samples, loss 0.400): 150 (96–240)",
    ]
    for crit in ("| 24 (15–38) |", "| 70 (48–100) |", "| 150 (96–240) |"):
        assert crit in report  # the report's B_crit table says the same
    megatron = '--step-batch-size-schedule "0:16 8192:64 16384:128"'
    assert lines[5] == f"proposed schedule: {megatron} (thresholds in samples)" and megatron in report
    assert len(lines) == 6


def _started(**fields) -> dict:
    return {"type": "sweep_started", "t": 0.0, "config": {"sweep": {"target_accuracy": 0.8}}, **fields}


def _run(run: str, batch: int, iters: int, status: str = "done", schedule: list | None = None) -> list[dict]:
    started = {"type": "run_started", "t": 1.0, "run": run, "batch_size": batch, "lr": 0.1}
    if schedule is not None:
        started["batch_schedule"] = schedule
    summary = {"run": run, "batch_size": batch, "lr": 0.1, "status": status, "epochs": 1}
    if iters:
        summary |= {"iters_to_target": iters, "iters_to_target_lo": iters - 10}
        summary |= {"samples_to_target": iters * batch, "samples_to_target_lo": (iters - 10) * batch}
    return [started, {"type": "run_finished", "t": 2.0, "run": run, "status": status, "summary": summary}]


STAGES = [{"samples": 0, "batch_size": 16, "lr": 0.1}, {"samples": 1600, "batch_size": 64, "lr": 0.2}]


def test_a_scheduled_run_that_beat_the_fixed_batch_gets_its_verdict():
    events = [_started(), *_run("bs16", 16, 200), *_run("s", 16, 100, schedule=STAGES)]
    [line] = closing_lines(events)
    assert line.startswith("The schedule 16 -> 64 reached 80.0% accuracy in 50% fewer steps")
    assert "than the best fixed batch (16, the fewest steps to the target): it saved steps." in line


@pytest.mark.parametrize("status", ["stopped", "failed"])
def test_a_scheduled_run_stopped_on_the_way_or_failed_gets_no_verdict(status):
    events = [_started(), *_run("bs16", 16, 200), *_run("s", 16, 0, status=status, schedule=STAGES)]
    assert closing_lines(events) == []


def test_a_scheduled_run_that_did_not_reach_the_target_says_so():
    events = [_started(), *_run("bs16", 16, 200), *_run("s", 16, 0, schedule=STAGES)]
    assert closing_lines(events) == [
        "The schedule 16 -> 64 did not reach 80.0% accuracy; the best fixed batch (16) did."
    ]


def test_an_undetermined_point_says_why_and_no_schedule_is_proposed():
    point = {
        "epoch": 2,
        "samples": 24000,
        "loss": 0.9,
        "determined": False,
        "reason": "2 batch sizes reached",
    }
    rough = {"epoch": 1, "samples": 12000, "loss": 0.8, "determined": False, "reason": "wide"}
    rough |= {"B_crit": 69.0, "B_crit_lo": 3.1, "B_crit_hi": None}
    result = {"type": "branch_result", "t": 3.0, "base_run": "bs64", "points": [rough, point], "schedule": []}
    assert closing_lines([_started(), *_run("bs64", 64, 50), result]) == [
        "branched B_crit (95% interval), from the checkpoints of bs64:",
        "  after epoch 1 (12,000 samples, loss 0.800): 69 (3.1–?), not determined",
        "  after epoch 2 (24,000 samples, loss 0.900): not determined: 2 batch sizes reached",
        "proposed schedule: none, no point determined its B_crit",
    ]


def test_a_sweep_with_neither_adds_nothing():
    assert closing_lines([_started(), *_run("bs16", 16, 200), *_run("bs64", 64, 60)]) == []


def test_the_sweeps_end_prints_them_after_the_table(events, tmp_path, capsys):
    """sweep_into as `python -m trainer run` calls it, with a trainer that replays the fixture's events."""
    recorded = [e for e in events if e["type"] != "sweep_finished"]

    def replay(prepared, emitter, **_):
        for e in recorded:
            emitter.emit(e["type"], **{k: v for k, v in e.items() if k not in ("type", "t")})
        emitter.emit("sweep_finished", status="done", summaries=_summaries(events), scaling={})
        return SweepResult(status="done", summaries=_summaries(events), scaling={})

    prepared = SimpleNamespace(given=Config(), device=torch.device("cpu"), shard=None)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    code = sweep_into(run_dir, prepared, Console(stderr=True), quiet=True, trainer=replay)
    out = capsys.readouterr().out
    assert code == EXIT_OK
    table = out.index("summary (cpu)")
    row = next(ln for ln in out.splitlines() if SCHEDULED in ln)
    assert "16→64→128" in row
    verdict = out.index("The schedule 16 -> 64 -> 128 reached 80.0% accuracy")
    crit = out.index("  after epoch 2 (16,384 samples, loss 0.600): 70 (48–100)")
    assert table < verdict < crit < out.index("run directory:")
