"""a sweep of the user's own model and dataset (factories), trained by `python -m trainer run`
on CPU, replayed by the app with every panel filled and the sweep's answer in the scaling view."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tui.conftest import fake_system, settle, wait_for
from tui.assemble import make_app
from tui.screens.scaling_screen import ScalingScreen
from tui.widgets.chart import BrailleChart
from tui.widgets.run_table import RunTable
from tui.widgets.scaling_view import ScalingView
from tui.widgets.sweep_header import SweepHeader

ROOT = Path(__file__).resolve().parents[2]
DATA = "tests.trainer.factory_data"


def _train(out: Path) -> None:
    from trainer.cli.main import main  # torch loads for the trainer only, as in real use

    args = [
        "run",
        str(ROOT / "experiments.toml"),
        "--device",
        "cpu",
        "--quiet",
        "--out",
        str(out),
        "--set",
        f'data.dataset="{DATA}:colour_tensors"',
        "--set",
        f'model.name="{DATA}:colour_cnn"',
        "--set",
        'model.output="logits"',
        "--set",
        "sweep.batch_sizes=[20,200]",
        "--set",
        "sweep.epochs=2",
        "--set",
        "sweep.target_accuracy=0.5",
        "--set",
        "data.train_samples=0",
        "--set",
        "data.test_samples=0",
    ]
    assert main(args) == 0


@pytest.mark.training
async def test_the_app_replays_a_factory_model_and_dataset_sweep(tmp_path):
    out = tmp_path / "run"
    _train(out)
    app = make_app(replay=str(out), system=fake_system(), follow=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        assert app.feed_end is not None and app.feed_end.kind == "finished"
        table = app.screen.query_one(RunTable)
        assert table.row_count == 2
        assert {str(table.get_cell(r, "status")) for r in ("bs20", "bs200")} == {"done"}
        charts = [p.chart for p in app.screen.query(BrailleChart)]
        assert len(charts) == 2 and all(c is not None and len(c.lines[0].x) > 0 for c in charts)
        header = app.screen.query_one(SweepHeader).render()
        assert f"{DATA}:colour_tensors" in str(header)
        await pilot.press("c")
        await wait_for(
            pilot,
            lambda: (
                isinstance(app.screen, ScalingScreen)
                and "answer:" in app.screen.query_one(ScalingView).facts().plain
            ),
        )
        facts = app.screen.query_one(ScalingView).facts().plain
        assert "fastest to 50% test accuracy: batch " in facts and "of training on cpu" in facts
