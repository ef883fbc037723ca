"""Shared fixtures: tiny sweeps on generated data, fast enough for CI on 2 cores."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from trainer.config import Config


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the slow kinds of test, so that `-m "not training and not subprocess"` leaves them out: every
    test given the generated dataset trains on it (or starts a trainer that does), and an end-to-end test
    is both."""
    for item in items:
        if "data_root" in getattr(item, "fixturenames", ()):  # tiny_config and tiny_dataset build on it
            item.add_marker(pytest.mark.training)
        if item.get_closest_marker("e2e") is not None:
            item.add_marker(pytest.mark.training)
            item.add_marker(pytest.mark.subprocess)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data root per test session, so generated datasets are cached across tests."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def tiny_config(data_root: Path, tmp_path: Path):
    """Factory: a Config for a small synthetic-digits sweep on CPU (a few seconds)."""

    def make(**sections: dict) -> Config:
        cfg = Config()
        cfg.data.dataset = "synthetic-digits"
        cfg.data.root = str(data_root)
        cfg.data.download = False
        cfg.data.train_samples = 600
        cfg.data.test_samples = 200
        cfg.sweep.batch_sizes = [20, 200]
        cfg.sweep.epochs = 2
        cfg.sweep.device = "cpu"
        cfg.sweep.target_accuracy = 0.15
        cfg.output.dir = str(tmp_path / "runs")
        for section, values in sections.items():
            for key, value in values.items():
                setattr(getattr(cfg, section), key, copy.deepcopy(value))
        return cfg

    return make


@pytest.fixture(scope="session")
def tiny_dataset(data_root: Path):
    """The dataset of `tiny_config`, generated once per session (run_sweep accepts it)."""
    from trainer.data.datasets import load_dataset

    cfg = Config()
    cfg.data.dataset = "synthetic-digits"
    cfg.data.root = str(data_root)
    cfg.data.train_samples = 600
    cfg.data.test_samples = 200
    return load_dataset(cfg.data, seed=0)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The study's model is tiny: intra-op threads only fight each other (and the other
    processes of a shared 2-core machine); one thread is faster and steadier here. Per test: a sweep's
    runs set their own threads (trainer.engine.threads), which must not leak into the next test's numbers."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
