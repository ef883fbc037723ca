"""Gradient accumulation: micro-batch steps equal unsplit steps, in isolation and in a sweep."""

from __future__ import annotations

import pytest
import torch

import trainer.engine.steps as steps
from trainer.config import Config, ConfigError, OptimConfig, load_config
from trainer.engine.accumulate import (
    accumulate_step,
    micro_slices,
    split_accumulate_step,
    suggest_micro_batch,
)
from trainer.engine.split import plain_step, split_step
from trainer.models.builtin import build_model
from trainer.models.optim import build_optimizer
from trainer.runlog import Emitter, ListSink
from trainer.sweep.driver import run_sweep


def _data(n: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g, dtype=torch.float64), torch.randint(0, 10, (n,), generator=g)


def _model_opt(optim: OptimConfig, lr: float):
    torch.manual_seed(0)
    model = build_model("simple_cnn").double()
    return model, build_optimizer(optim, model.parameters(), lr)


def _params(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_micro_slices_cover_the_batch_in_order_with_a_short_last_one():
    assert micro_slices(50, 16) == [slice(0, 16), slice(16, 32), slice(32, 48), slice(48, 50)]
    assert micro_slices(48, 16) == [slice(0, 16), slice(16, 32), slice(32, 48)]
    assert micro_slices(10, 16) == [slice(0, 10)]
    assert micro_slices(10, 0) == [slice(0, 10)]


@pytest.mark.parametrize(
    ("optim", "lr"),
    [(OptimConfig(name="sgd", momentum=0.5), 0.1), (OptimConfig(name="lamb", weight_decay=0.01), 0.01)],
    ids=["sgd", "lamb"],
)
@pytest.mark.parametrize(("n", "micro"), [(48, 16), (50, 16), (50, 7)])
def test_accumulated_steps_equal_unsplit_steps(optim, lr, n, micro):
    """Three steps on float64: the same losses and parameters whether or not the batch is split."""
    whole_model, whole_opt = _model_opt(optim, lr)
    micro_model, micro_opt = _model_opt(optim, lr)
    for step in range(3):
        x, y = _data(n, seed=step)
        whole_loss = plain_step(whole_model, whole_opt, x, y)
        micro_loss = accumulate_step(micro_model, micro_opt, x, y, micro)
        assert micro_loss.item() == pytest.approx(whole_loss.item(), rel=1e-12, abs=0)
    for a, b in zip(_params(whole_model), _params(micro_model)):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)
    assert not torch.allclose(
        _params(whole_model)[0], _model_opt(optim, lr)[0].conv1.weight.detach()
    )  # it moved


def test_split_backward_with_micro_batches_equals_split_backward():
    optim = OptimConfig(name="sgd", momentum=0.5)
    a_model, a_opt = _model_opt(optim, 0.1)
    b_model, b_opt = _model_opt(optim, 0.1)
    x, y = _data(48)
    loss_a = split_step(a_model, a_opt, x, y, 4, "retain_graph")
    loss_b = split_accumulate_step(b_model, b_opt, x, y, 4, 5)  # chunks of 12 in micro-batches of 5, 5, 2
    assert loss_b.item() == pytest.approx(loss_a.item(), rel=1e-12)
    for p, q in zip(_params(a_model), _params(b_model)):
        assert torch.allclose(p, q, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("batch", "tried", "expected"),
    [(60000, 60000, 15000), (6000, 6000, 1500), (60000, 15000, 3750), (7, 7, 0), (1, 1, 0), (96, 96, 24)],
)
def test_suggested_micro_batch_divides_the_batch_and_is_a_quarter_or_less(batch, tried, expected):
    assert suggest_micro_batch(batch, tried) == expected


# ------------------------------------------------------------------ config


def test_micro_batch_must_divide_the_batch_sizes_larger_than_it():
    with pytest.raises(ConfigError) as info:
        load_config(None, ["sweep.batch_sizes=[6,60,600]", "sweep.micro_batch=25"])
    message = str(info.value)
    assert "sweep.micro_batch: 25 must divide every batch size larger than it" in message
    assert (
        "does not divide 60 (sweep.batch_sizes)" in message
        and "micro-batch sizes that do: 20, 15, 12, 10" in message
    )
    # 6 is smaller than the micro-batch: it runs whole, so it need not be a multiple.
    assert load_config(None, ["sweep.batch_sizes=[6,60,600]", "sweep.micro_batch=20"]).sweep.micro_batch == 20


def test_negative_micro_batch_is_refused():
    with pytest.raises(ConfigError, match=r"sweep.micro_batch: must be >= 0 \(0 = off\), got -4"):
        load_config(None, ["sweep.micro_batch=-4"])


def test_micro_batch_defaults_to_off():
    assert Config().sweep.micro_batch == 0


# ------------------------------------------------------------------- sweep


@pytest.fixture
def _shared_dataset(tiny_dataset, monkeypatch):
    monkeypatch.setattr("trainer.sweep.prepare.load_dataset", lambda cfg, **kwargs: tiny_dataset)


def _losses(sink: ListSink, run: str) -> list[float]:
    return [v for e in sink.of_type("losses") if e["run"] == run for v in e["values"]]


@pytest.mark.usefixtures("_shared_dataset")
def test_a_sweep_with_micro_batches_trains_like_one_without(tiny_config):
    # 600 samples in batches of 160: three full batches (4 micro-batches of 40) and a last one of 120.
    sweep = {"batch_sizes": [20, 160], "epochs": 2}
    whole, micro = ListSink(), ListSink()
    run_sweep(tiny_config(sweep=sweep), Emitter([whole]))
    run_sweep(tiny_config(sweep={**sweep, "micro_batch": 40}), Emitter([micro]))
    started = {e["run"]: e for e in micro.of_type("run_started")}
    assert started["bs160"]["micro_batch"] == 40
    assert started["bs20"]["micro_batch"] == 0  # smaller than a micro-batch: one pass, as before
    for run in ("bs20", "bs160"):
        expected = _losses(whole, run)
        assert len(expected) == 2 * (4 if run == "bs160" else 30)
        assert _losses(micro, run) == pytest.approx(expected, rel=1e-5, abs=1e-6)


@pytest.mark.usefixtures("_shared_dataset")
def test_micro_batch_runs_leave_the_cuda_graph_path_and_say_why(tiny_config, monkeypatch):
    monkeypatch.setattr(steps, "resolve_fast_path", lambda setting, device, pipeline="resident": "cuda_graph")
    monkeypatch.setattr(
        steps, "GraphStep", lambda *a, **k: pytest.fail("GraphStep built for a micro-batch run")
    )
    sink = ListSink()
    run_sweep(tiny_config(sweep={"batch_sizes": [200], "epochs": 1, "micro_batch": 50}), Emitter([sink]))
    started = sink.of_type("run_started")[0]
    assert started["fast_path"] == "eager" and "micro_batch = 50" in started["fast_path_reason"]


@pytest.mark.usefixtures("_shared_dataset")
def test_a_batch_that_does_not_fit_suggests_a_micro_batch(tiny_config, monkeypatch):
    def oom(model, opt, x, y):
        if x.shape[0] == 200:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return plain_step(model, opt, x, y)

    monkeypatch.setattr(steps, "plain_step", oom)
    sink = ListSink()
    run_sweep(tiny_config(sweep={"batch_sizes": [200], "epochs": 1}), Emitter([sink]))
    finished = sink.of_type("run_finished")[0]
    assert finished["status"] == "oom"
    assert "try sweep.micro_batch = 50 (the same step from micro-batches that fit)" in finished["reason"]
