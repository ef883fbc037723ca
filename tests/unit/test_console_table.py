"""The end-of-sweep table says what each number is: crossings as intervals, split-backward's k,
effective lr and optimizer steps beside the batches, the final accuracy beside the best."""

from __future__ import annotations

from rich.console import Console

from trainer.cli.console import summary_table
from trainer.runlog import read_summary, summary_csv


def _render(rows):
    console = Console(width=400, record=True)
    console.print(summary_table(rows, "cpu"))
    return console.export_text()


def test_a_split_run_shows_k_effective_lr_optimizer_steps_and_intervals():
    row = {
        "run": "bs60",
        "batch_size": 60,
        "lr": 0.02,
        "split_chunks": 10,
        "effective_lr": 0.2,
        "status": "done",
        "epochs": 3,
        "best_test_acc": 0.981,
        "final_test_acc": 0.979,
        "time_to_target_s": 12.5,
        "time_to_target_lo_s": 11.25,
        "compute_to_target_s": 10.0,
        "compute_to_target_lo_s": 9.0,
        "iters_to_target": 2000,
        "iters_to_target_lo": 1900,
        "optimizer_steps_to_target": 20000,
        "optimizer_steps_to_target_lo": 19000,
    }
    text = _render([row])
    for header in ("k", "eff. lr", "final acc", "batches to target", "opt. steps to target"):
        assert header in text
    line = next(ln for ln in text.splitlines() if "bs60" in ln)
    for cell in ("0.02", "10", "0.2", "98.1%", "97.9%", "11.2–12.5", "9.00–10.0", "1900–2000", "19000–20000"):
        assert cell in line, cell


def test_a_run_that_did_not_reach_the_target_says_so_and_an_older_row_shows_its_hit_alone():
    text = _render(
        [
            {"run": "bs6", "batch_size": 6, "lr": 0.1, "status": "collapsed", "time_to_target_s": None},
            {
                "run": "bs60",
                "batch_size": 60,
                "lr": 0.1,
                "status": "done",
                "time_to_target_s": 3.0,
                "iters_to_target": 300,
            },
        ]
    )
    lines = text.splitlines()
    assert "not reached" in next(ln for ln in lines if " bs6 " in ln)
    older = next(ln for ln in lines if "bs60" in ln)
    assert "3.00" in older and "300" in older and "–" not in older


def test_rows_read_back_from_summary_csv_show_their_numbers(tmp_path):
    """The trainer prints the table from summary.csv, whose fields are strings."""
    row = {"run": "bs6", "batch_size": 6, "lr": 0.02, "split_chunks": 1, "status": "done", "epochs": 3}
    row |= {"best_test_acc": 0.949, "final_test_acc": 0.911, "time_to_target_s": 6.05}
    row |= {"time_to_target_lo_s": 5.58, "iters_to_target": 2600, "iters_to_target_lo": 2400}
    (tmp_path / "summary.csv").write_text(summary_csv([row]))
    line = next(ln for ln in _render(read_summary(tmp_path)).splitlines() if "bs6" in ln)
    for cell in (" 6 ", "0.02", "94.9%", "91.1%", "5.58–6.05", "2400–2600"):
        assert cell in line, cell
