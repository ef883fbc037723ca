"""The user's factories run under a guard: sys.exit in them (or in the module while it is imported, or in the
model's forward) is an error naming the factory (exit 2), never a silent exit 0; one that runs long says so
with its time so far; data holding NaN or infinity is refused before anything trains, naming the cause."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

import trainer.config.user_code as factory
from tests.trainer import factory_hostile
from tests.waiting import wait_until
from trainer.cli.exits import EXIT_USAGE
from trainer.cli.main import main
from trainer.config import Config
from trainer.data.datasets import Dataset, DatasetUnavailable, Split, check_finite, load_dataset
from trainer.models.builtin import ModelError
from trainer.sweep.prepare import check_model

HOSTILE = "tests.trainer.factory_hostile"
ROOT = Path(__file__).resolve().parents[2]


def _data(name: str):
    cfg = Config()
    cfg.data.dataset = f"{HOSTILE}:{name}"
    return cfg.data


def _run(tmp_path, *sets: str) -> list[str]:
    args = [
        "run",
        str(ROOT / "experiments.toml"),
        "--set",
        "sweep.batch_sizes=[8]",
        "--set",
        "sweep.epochs=1",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        str(tmp_path / "run"),
    ]
    for s in sets:
        args += ["--set", s]
    return args


def test_a_data_factory_that_calls_sys_exit_is_an_error_not_an_exit(tmp_path, capsys):
    with pytest.raises(DatasetUnavailable, match=r"the factory .*:exits called sys.exit\(0\)") as err:
        load_dataset(_data("exits"))
    assert "return the value instead of exiting" in err.value.fix
    assert main(_run(tmp_path, f'data.dataset="{HOSTILE}:exits"')) == EXIT_USAGE
    out = capsys.readouterr().err
    assert "called sys.exit(0)" in out and "Traceback" not in out


def test_a_module_that_exits_while_imported_is_an_error(tmp_path):
    cfg = Config()
    cfg.model.name = "tests.trainer.factory_exits_on_import:build"
    with pytest.raises(
        ModelError,
        match=r"module tests.trainer.factory_exits_on_import, while it was imported, "
        r"called sys.exit\(0\)",
    ):
        check_model(
            cfg,
            Dataset(
                "d",
                "",
                "",
                Split(torch.rand(4, 1, 8, 8), torch.arange(4) % 2),
                Split(torch.rand(2, 1, 8, 8), torch.arange(2)),
                2,
            ),
        )


@pytest.mark.parametrize(
    "name, said",
    [
        ("exits_model", r"the factory .*:exits_model called sys.exit\(3\)"),
        ("exits_in_forward", r"the forward of model .*:exits_in_forward called sys.exit\('bye'\)"),
    ],
)
def test_a_model_factory_or_forward_that_exits_is_a_model_error(name, said):
    cfg = Config()
    cfg.model.name = f"{HOSTILE}:{name}"
    ds = Dataset(
        "d",
        "",
        "",
        Split(torch.rand(4, 1, 8, 8), torch.arange(4) % 2),
        Split(torch.rand(2, 1, 8, 8), torch.arange(2)),
        2,
    )
    with pytest.raises(ModelError, match=said):
        check_model(cfg, ds)


def test_a_slow_factory_says_so_with_its_time_while_it_runs(monkeypatch):
    heard: list[str] = []
    monkeypatch.setattr(factory_hostile, "reported", threading.Event())

    def hear(report: str) -> None:
        heard.append(report)
        factory_hostile.reported.set()  # the slow factory returns once it has been reported

    monkeypatch.setattr(factory, "SLOW_AFTER_S", 0.05)
    monkeypatch.setattr(factory, "REPORT_EVERY_S", 0.05)
    monkeypatch.setattr(factory, "_reporter", hear)
    ds = load_dataset(_data("slow"))
    assert len(ds.train) == 64
    assert heard and all(h.startswith(f"calling your factory {HOSTILE}:slow ... ") for h in heard)
    assert heard[0].split(" ... ")[1].split(" s ")[0].isdigit()  # the time so far, in seconds
    # The reports stop once the factory returned: the thread that makes them ends.
    wait_until(
        lambda: not any(t.name == "bstui-factory-watch" for t in threading.enumerate()),
        "the slow factory's reports to stop once it returned",
        timeout=60,
    )


@pytest.mark.parametrize(
    "name, said",
    [
        ("one_nan_sample", "its train inputs hold NaN: sample 37 of 64"),
        ("inf_test_inputs", "its test inputs hold infinity: sample 2 of 16"),
    ],
)
def test_data_with_nan_or_infinity_is_refused_before_training(tmp_path, capsys, name, said):
    with pytest.raises(DatasetUnavailable, match=said) as err:
        load_dataset(_data(name))
    assert "repair or drop those samples" in err.value.fix
    assert main(_run(tmp_path, f'data.dataset="{HOSTILE}:{name}"')) == EXIT_USAGE
    out = capsys.readouterr().err
    assert said in out and "lr" not in out.split(said)[0][-40:] and "Traceback" not in out
    assert not (tmp_path / "run" / "events.jsonl").exists()  # nothing trained


def test_a_large_split_is_checked_on_an_even_sample(monkeypatch):
    import trainer.data.datasets.dataset as data

    monkeypatch.setattr(data, "FINITE_CHECK_VALUES", 64 * 10)  # 10 samples' worth of a 1x8x8 input
    x = torch.rand(100, 1, 8, 8)
    x[50, 0, 0, 0] = float("nan")  # on the sampled grid (every 10th sample)
    ds = Dataset(
        "d", "", "", Split(x, torch.arange(100) % 2), Split(torch.rand(4, 1, 8, 8), torch.arange(4) % 2), 2
    )
    with pytest.raises(DatasetUnavailable, match=r"sample 50 of 100 .*every 10th sample is checked"):
        check_finite(ds)
    x[50, 0, 0, 0] = 0.0
    x[51, 0, 0, 0] = float("nan")  # off the grid: the bound is documented, not hidden
    check_finite(ds)
