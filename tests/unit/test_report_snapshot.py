"""Report snapshots: the whole report (tables and plots) of committed run directories, compared as
plain text with committed expected files (tests/unit/fixtures/, made by make_report_fixtures.py).

An intended change of the report: `BSTUI_UPDATE_REPORTS=1 .venv/bin/python -m pytest
tests/unit/test_report_snapshot.py`, then read the diff of the expected files before committing it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from trainer.cli.main import main

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _report(tmp_path: Path, name: str, *args: str) -> str:
    run = tmp_path / name
    shutil.copytree(FIXTURES / name, run)  # the report writes report.md into the directory
    assert main(["report", str(run), *args]) == 0
    return (run / "report.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ["report_run", "report_noreach"])
def test_report_matches_its_snapshot(tmp_path, capsys, name):
    text = _report(tmp_path, name)
    expected = FIXTURES / f"{name}.expected.md"
    if os.environ.get("BSTUI_UPDATE_REPORTS"):
        expected.write_text(text, encoding="utf-8")
    assert text == expected.read_text(encoding="utf-8")
    assert text in capsys.readouterr().out  # what is printed is what is written


def test_the_fixture_report_says_what_issue_13_asks():
    text = (FIXTURES / "report_run.expected.md").read_text(encoding="utf-8")
    assert "| 32 | 0.05 | 4 | 0.2 |" in text  # split-backward: k and the effective lr
    assert "936–1,448 (384–512)" in text  # optimizer steps, batches beside them
    assert "bs32-lr0.8: collapsed (at batch 896)" in text and "bs128-lr0.8: collapsed" in text
    assert "- B_crit = " in text and "rms" not in text
    assert text.count("```text") == 4  # loss, accuracy, steps-to-target and lr-rule plots


def test_the_no_target_report_names_every_batch_size_left_out():
    text = (FIXTURES / "report_noreach.expected.md").read_text(encoding="utf-8")
    assert "B_crit: not determined (0 batch sizes reached the target" in text
    for b in (8, 32, 128, 512):
        assert f"- left out: batch {b}: " in text
    assert "no batch size reached the target: nothing to plot against batch size" in text
    assert "| 8 | not reached |" in text


def test_no_plots_leaves_the_plots_out(tmp_path):
    text = _report(tmp_path, "report_run", "--no-plots")
    assert "## Plots" not in text and "```" not in text
    full = (FIXTURES / "report_run.expected.md").read_text(encoding="utf-8")
    assert text == full.split("\n## Plots")[0].rstrip("\n") + "\n"


def test_every_batch_size_is_in_the_report_even_where_no_lr_reached_the_target():
    """Was: "12 runs not drawn" and no batch size in the plots when no lr reached the target."""
    text = (FIXTURES / "report_noreach.expected.md").read_text(encoding="utf-8")
    plots = text[text.index("## Plots") :]
    for b in (8, 32, 128, 512):
        assert f"bs{b}-" in plots  # a run of every batch size in the loss and accuracy plots
        assert f"\n| {b} | " in text  # a row of every matrix
    assert "batch sizes run: 8, 32, 128, 512" in plots
    assert "| 8 | 98.5% | **98.5%** ★ | 40.0% |" in text  # the accuracy matrix still names a best
