"""Sweeps that several modules only read, trained once per session (each test that changes one works on
its own copy)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.trainer.test_resume import _interrupt_at, sweep_args, training_results
from trainer.cli.exits import EXIT_INTERRUPTED
from trainer.cli.main import main
from trainer.engine.checkpoint import checkpoint_path


@pytest.fixture(scope="session")
def reference(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The training results of test_resume's tiny sequential sweep, never interrupted (a module that
    trains another sweep defines its own `reference`)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    assert main(sweep_args(data_root, out)) == 0
    return training_results(out)


@pytest.fixture(scope="session")
def interrupted(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """That sweep stopped in bs200's second epoch: bs20 done, bs200 checkpointed after epoch 1. Read
    only: copy it before resuming or damaging it."""
    out = tmp_path_factory.mktemp("interrupted") / "run"
    with pytest.MonkeyPatch.context() as mp:
        _interrupt_at(mp, 200, call=5)
        assert main(sweep_args(data_root, out)) == EXIT_INTERRUPTED
    assert checkpoint_path(out, "bs200").exists()
    return out
