"""Run labels: what tells a run apart in its sweep, and nothing more."""

from __future__ import annotations

from tui.render.looks import looks
from tui.render.palette import RUN_COLORS, run_color
from tui.state.labels import RunKey, fmt_lr, run_labels


def test_an_lr_grid_names_batch_and_lr_to_3_digits():
    keys = [
        RunKey(f"r{i}", b, lr, 0)
        for i, (b, lr) in enumerate((b, lr) for b in (10, 60) for lr in (0.0173205, 0.0547723, 0.173205))
    ]
    labels = run_labels(keys)
    assert (
        labels["r0"] == "bs 10 lr 0.0173"
        and labels["r1"] == "bs 10 lr 0.0548"
        and labels["r5"] == "bs 60 lr 0.173"
    )
    assert len(set(labels.values())) == 6


def test_only_what_differs_is_named():
    assert run_labels([RunKey("a", 6, 0.02, 0), RunKey("b", 60, 0.02, 0)]) == {"a": "bs 6", "b": "bs 60"}
    seeds = run_labels([RunKey("a", 6, 0.02, 0), RunKey("b", 6, 0.02, 1)])
    assert seeds == {"a": "bs 6 s0", "b": "bs 6 s1"}
    arms = run_labels([RunKey("a", 6000, 20.0, 0, "lars"), RunKey("b", 6000, 20.0, 0, "lamb")])
    assert arms == {"a": "bs 6000 lars", "b": "bs 6000 lamb"}
    split = run_labels([RunKey("a", 64, 0.1, 0, "", 1), RunKey("b", 64, 0.1, 0, "", 4)])
    assert split == {"a": "bs 64 plain", "b": "bs 64 ÷4"}


def test_lrs_that_3_digits_cannot_tell_apart_get_more():
    labels = run_labels([RunKey("a", 6, 0.05477, 0), RunKey("b", 6, 0.05481, 0)])
    assert labels == {"a": "bs 6 lr 0.05477", "b": "bs 6 lr 0.05481"}


def test_runs_with_the_same_settings_are_told_apart_by_their_id():
    assert run_labels([RunKey("x1", 6, 0.02), RunKey("x2", 6, 0.02)]) == {
        "x1": "bs 6 (x1)",
        "x2": "bs 6 (x2)",
    }


def test_lr_format_is_short():
    assert fmt_lr(0.0547723) == "0.0548" and fmt_lr(3e-5) == "3e-5" and fmt_lr(20.0) == "20"


def test_twelve_distinct_colours_then_bright_and_dim_pairs():
    assert len({run_color(i, 12) for i in range(12)}) == 12
    colors = [run_color(i, 20) for i in range(20)]
    assert colors[13] != colors[1] and colors[13] == tuple(round(c * 0.55) for c in RUN_COLORS[1])
    assert len(set(colors)) == 20
    shown = looks([RunKey("a", 6, 0.02), RunKey("b", 60, 0.02)])
    assert shown == {"a": ("bs 6", RUN_COLORS[0]), "b": ("bs 60", RUN_COLORS[1])}


def test_the_run_table_shows_lr_to_3_digits_like_the_labels():
    from tui.state.run import RunState
    from tui.widgets.run_table import lr_cell

    assert lr_cell(RunState(run="r", batch_size=600, lr=0.173205)).plain == "0.173"
    split = RunState(run="r", batch_size=600, lr=0.0173205, split_chunks=4)
    assert lr_cell(split).plain == "0.0173→0.0693"  # lr x 4 = 0.069282
