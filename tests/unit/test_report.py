"""`python -m trainer report DIR` on a recorded run directory."""
from __future__ import annotations

import json

from trainer.cli import main
from trainer.runlog import encode


def _write_run(path, b_crit=600.0):
    path.mkdir()
    events = [{"type": "sweep_started", "t": 0, "device": "NVIDIA H100 80GB HBM3", "torch": "2.11",
               "dataset": "mnist", "dataset_note": "",
               "config": {"optim": {"lr": 0.02, "base_batch_size": 60}, "sweep": {"target_accuracy": 0.98}}}]
    for b in (6, 60, 600, 6000):
        steps = 1000 * (1 + b_crit / b)
        events.append({"type": "run_finished", "t": 1, "run": f"bs{b}", "status": "done", "reason": "",
                       "summary": {"run": f"bs{b}", "batch_size": b, "lr": 0.02, "seed": 0, "status": "done",
                                   "iters_to_target": steps, "samples_to_target": steps * b,
                                   "time_to_target_s": steps / 1000, "best_test_acc": 0.981, "b_simple": 700.0,
                                   "loss_diff_std": 0.1, "grad_cos": 0.2}})
    events.append({"type": "sweep_finished", "t": 2, "status": "done"})
    (path / "events.jsonl").write_text("".join(encode(e) + "\n" for e in events))


def test_report_prints_and_writes_the_fitted_critical_batch(tmp_path, capsys):
    run = tmp_path / "run"
    _write_run(run)
    assert main(["report", str(run)]) == 0
    text = (run / "report.md").read_text()
    assert "B_crit = 600" in text and "NVIDIA H100 80GB HBM3" in text
    assert "| 6000 | 0.02 |" in text
    assert text in capsys.readouterr().out


def test_report_of_a_folder_without_a_run_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no events.jsonl" in capsys.readouterr().err


def test_report_of_a_run_with_nothing_finished_says_so(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "events.jsonl").write_text(json.dumps({"type": "sweep_started", "t": 0}) + "\n")
    assert main(["report", str(run)]) == 2
    assert "no finished run" in capsys.readouterr().err
