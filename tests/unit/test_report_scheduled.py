"""report.md's batch x lr section with a scheduled run (sweep.batch_schedule): its own table under the matrix,
left out of the B_crit fit (said so where the fit is), ■ at its mean batch size on the steps plot, and its
loss plotted at its own samples. Reads tests/tui/fixtures/run_schedule (make_schedule_fixture.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from trainer.analysis.answer import scheduled_entry
from trainer.report.build import markdown
from trainer.report.collect import collect
from trainer.report.plots import run_series

FIXTURE = Path(__file__).resolve().parents[1] / "tui" / "fixtures" / "run_schedule"
SCHED = "sched16-64-128"
STAGES = [{"samples": 0, "batch_size": 16, "lr": 0.025}, {"samples": 8192, "batch_size": 64, "lr": 0.05}]


@pytest.fixture(scope="module")
def report() -> str:
    return markdown(collect(FIXTURE))


def _section(text: str, head: str) -> str:
    start = text.index(head)
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def test_the_ramp_is_its_own_row_under_the_matrix_with_its_intervals(report):
    section = _section(report, "## Batch size x lr")
    row = next(line for line in section.splitlines() if line.startswith("| ramp 16→64→128"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells == [
        "ramp 16→64→128",
        "0.025→0.05→0.0707",
        "reached",
        "544–576",
        "10,240–12,288",
        "2.34–2.62",
        "21.3",
        "84.9%",
        "0.738",
        SCHED,
    ]
    assert "never a cell of a fixed batch size" in section
    steps = section[section.index("steps to target\n") :]
    batch16 = next(line for line in steps.splitlines() if line.startswith("| 16 |"))
    assert "**768**" in batch16 and "576" not in batch16  # batch 16's own cell, not the ramp's


def test_the_fit_says_the_ramp_is_left_out_and_uses_the_fixed_batch_sizes_only(report):
    section = _section(report, "## Critical batch size")
    assert "(batch sizes: 16, 64, 256)" in section
    assert "- left out: ramp 16→64→128 (a scheduled run): its batch size changes" in section
    best = _section(report, "## Best lr per batch size")
    assert "ramp" not in best and SCHED not in best


def test_the_steps_plot_marks_the_ramp_apart_and_the_loss_plot_counts_its_own_samples(report):
    plots = report[report.index("Steps (batches) to target vs batch size") :]
    plot = plots[: plots.index("```")]
    assert "■ ramp 16→64→128 (scheduled) at samples ÷ steps; not in the fit" in plot
    assert sum(line.count("■") for line in plot.splitlines()[:-3]) == 1  # one mark on the canvas
    runs = run_series(collect(FIXTURE)["events"])
    samples = [x for x, _ in runs[SCHED]["points"]]
    assert samples[511] == 8192 and samples[512] == 8256 and samples[-1] == 3 * 8192  # 16, then 64, then 128
    assert runs["bs16"]["points"][-1][0] == 3 * 8192


def test_a_ramp_alone_finished_is_never_the_matrix_of_a_fixed_batch_size(tmp_path):
    events = [json.loads(line) for line in (FIXTURE / "events.jsonl").read_text().splitlines()]
    events = [  # the fixed runs caught before they finished: only the ramp is done
        e for e in events if not (e["type"] in ("run_finished", "sweep_finished") and e.get("run") != SCHED)
    ]
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    facts = collect(run)
    assert facts["rows"] == [] and facts["analysis"]["points"] == []
    text = markdown(facts, plots=False)
    assert "| ramp 16→64→128 |" in text and "| 16 | 0.025 |" not in text


def test_a_schedule_that_does_not_only_grow_is_not_called_a_ramp():
    back = scheduled_entry({"run": "s", "status": "done"}, [*STAGES, {"samples": 16384, "batch_size": 16}])
    assert back.label == "schedule 16→64→16" and back.lr_label == "lr 0.025→0.05→?"
    assert back.status == "not reached" and back.text("steps") == "not reached" and back.mean_batch is None


@pytest.mark.parametrize(
    ("row", "status"),
    [
        ({"status": "diverged", "iters_to_target": 10}, "diverged"),
        ({"status": "stopped"}, "stopped"),
        ({"status": "running"}, "running"),
        ({"status": "done", "iters_to_target": 10, "samples_to_target": 200}, "reached"),
    ],
)
def test_a_scheduled_run_says_what_became_of_it(row, status):
    assert scheduled_entry({"run": "s", **row}, STAGES).status == status


def test_without_time_alone_a_reached_ramp_says_not_recorded_rather_than_inventing_one():
    row = {"run": "s", "status": "done", "iters_to_target": 100, "samples_to_target": 3000, "fused_runs": 2}
    entry = scheduled_entry(row, STAGES)
    assert entry.steps == (100, 100) and entry.text("time") == "not recorded"
    assert entry.to_target() == "steps 100 · samples 3,000 · time alone not recorded"
