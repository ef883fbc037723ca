"""`python -m trainer report DIR` on a recorded run directory."""

from __future__ import annotations

import json
import re

import pytest

from trainer.cli.main import main
from trainer.runlog import encode


def _write_run(path, b_crit=600.0, resolution=None, batches=(6, 60, 600, 6000)):
    """Summaries on the curve S = 1000 (1 + B_crit / B); with `resolution` (in batches), each records
    its last miss that many batches before the hit, as the run loop does (trainer/analysis/crossing.py)."""
    path.mkdir()
    events = [
        {
            "type": "sweep_started",
            "t": 0,
            "device": "NVIDIA H100 80GB HBM3",
            "torch": "2.11",
            "dataset": "mnist",
            "dataset_note": "",
            "config": {"optim": {"lr": 0.02, "base_batch_size": 60}, "sweep": {"target_accuracy": 0.98}},
        }
    ]
    for b in batches:
        steps = round(1000 * (1 + b_crit / b))
        summary = {
            "run": f"bs{b}",
            "batch_size": b,
            "lr": 0.02,
            "seed": 0,
            "status": "done",
            "iters_to_target": steps,
            "samples_to_target": steps * b,
            "time_to_target_s": steps / 1000,
            "best_test_acc": 0.981,
            "b_simple": 700.0,
            "loss_diff_std": 0.1,
            "grad_cos": 0.2,
        }
        if resolution is not None:
            lo = steps - max(1, round(resolution * steps))
            summary.update(iters_to_target_lo=lo, samples_to_target_lo=lo * b, time_to_target_lo_s=lo / 1000)
        events.append(
            {
                "type": "run_finished",
                "t": 1,
                "run": f"bs{b}",
                "status": "done",
                "reason": "",
                "summary": summary,
            }
        )
    events.append({"type": "sweep_finished", "t": 2, "status": "done"})
    (path / "events.jsonl").write_text("".join(encode(e) + "\n" for e in events))


def test_report_prints_and_writes_the_critical_batch_with_its_interval(tmp_path, capsys):
    run = tmp_path / "run"
    _write_run(run, resolution=0.02)  # each crossing known to 2% of its steps
    assert main(["report", str(run), "--no-plots"]) == 0
    text = (run / "report.md").read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("- B_crit"))
    mid, lo, hi = (float(v.replace(",", "")) for v in re.findall(r"[\d,.]+", line.split("=", 1)[1]))
    assert lo <= 600 <= hi and hi / lo < 1.5, line
    assert "NVIDIA H100 80GB HBM3" in text and "## Plots" not in text
    assert "| 6000 | 0.02 |" in text
    assert text in capsys.readouterr().out


def test_crossings_without_their_last_miss_leave_b_crit_not_determined(tmp_path):
    run = tmp_path / "run"
    _write_run(run)  # hits only, no epochs to derive the last misses from
    assert main(["report", str(run), "--no-plots"]) == 0
    text = (run / "report.md").read_text()
    assert "B_crit: not determined: the crossings' resolution is unknown" in text
    assert "(hit; lo unknown)" in text


def test_two_points_are_not_determined_and_print_no_rms(tmp_path):
    run = tmp_path / "run"
    _write_run(run, resolution=0.02, batches=(60, 600))
    assert main(["report", str(run), "--no-plots"]) == 0
    text = (run / "report.md").read_text()
    assert "B_crit: not determined: only 2 batch sizes reached the target; a fit needs 3" in text
    assert "rms" not in text


def test_report_of_a_folder_without_a_run_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no events.jsonl" in capsys.readouterr().err


def test_report_of_a_run_with_nothing_finished_says_so(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "events.jsonl").write_text(json.dumps({"type": "sweep_started", "t": 0}) + "\n")
    assert main(["report", str(run)]) == 2
    assert "no finished run" in capsys.readouterr().err


@pytest.mark.subprocess
def test_the_report_and_the_science_it_reads_need_no_torch():
    """The app and `trainer report` import these; torch would cost seconds at start."""
    import subprocess
    import sys

    code = (
        "import sys, trainer.report.build, trainer.report.collect, trainer.report.plots, trainer.analysis.crossing, trainer.analysis.bcrit, "
        "trainer.analysis.collapse, trainer.analysis.scaling; assert 'torch' not in sys.modules, 'torch imported'"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0
