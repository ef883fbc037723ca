"""LARS and LAMB against steps computed by hand, the optimizer registry, and the loop using them."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import trainer.engine.steps as steps
from trainer.config import ConfigError, OptimConfig, load_config
from trainer.models.optim import LAMB, LARS, build_optimizer, lr_at
from trainer.runlog import Emitter, ListSink
from trainer.sweep.driver import run_sweep


def _param(values: list[float], grad: list[float]) -> torch.nn.Parameter:
    p = torch.nn.Parameter(torch.tensor(values, dtype=torch.float64))
    p.grad = torch.tensor(grad, dtype=torch.float64)
    return p


def _tiny_model_with_grads() -> tuple[torch.nn.Linear, list[torch.Tensor]]:
    """A 3->2 linear layer (weight and bias: two 'layers' for the trust ratio) and its gradients."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2).double()
    x = torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.1, -1.0]], dtype=torch.float64)
    F.nll_loss(F.log_softmax(model(x), 1), torch.tensor([0, 1])).backward()
    return model, [p.grad.clone() for p in model.parameters()]


# ------------------------------------------------------------------------ LARS


def test_lars_first_step_is_the_trust_ratio_times_lr_times_the_gradient():
    # |w| = 5, |g| = 1: local lr = 0.001 * 5 / 1 = 0.005; step = lr * 0.005 * g with lr = 2.
    p = _param([3.0, 4.0], [0.6, 0.8])
    LARS([p], lr=2.0, momentum=0.9, trust_coefficient=0.001).step()
    assert p.tolist() == pytest.approx([3.0 - 0.006, 4.0 - 0.008], abs=1e-12)


def test_lars_weight_decay_enters_the_ratio_and_the_direction():
    # |w| = 5, |g| = 1, wd = 0.1: local lr = 0.01 * 5 / (1 + 0.5) = 1/30; d = g + 0.1 w = [0.9, 1.2].
    p = _param([3.0, 4.0], [0.6, 0.8])
    LARS([p], lr=1.0, momentum=0.0, weight_decay=0.1, trust_coefficient=0.01).step()
    assert p.tolist() == pytest.approx([3.0 - 0.9 / 30, 4.0 - 1.2 / 30], abs=1e-12)


def test_lars_two_steps_with_momentum_use_a_trust_ratio_per_layer():
    model, grads = _tiny_model_with_grads()
    w0 = [p.detach().clone() for p in model.parameters()]
    lr, m, wd, tc = 0.5, 0.9, 0.01, 0.02
    opt = LARS(model.parameters(), lr=lr, momentum=m, weight_decay=wd, trust_coefficient=tc)
    opt.step()
    # Second step with a different gradient (the same one halved) and a lower lr, as warm-up would.
    for p, g in zip(model.parameters(), grads):
        p.grad = g * 0.5
    opt.param_groups[0]["lr"] = lr / 2
    opt.step()

    for w, g, got in zip(w0, grads, model.parameters()):

        def local(weights: torch.Tensor, grad: torch.Tensor) -> float:
            return tc * weights.norm().item() / (grad.norm().item() + wd * weights.norm().item())

        v1 = lr * local(w, g) * (g + wd * w)
        w1 = w - v1
        g2 = g * 0.5
        v2 = m * v1 + (lr / 2) * local(w1, g2) * (g2 + wd * w1)
        assert torch.allclose(got.detach(), w1 - v2, atol=1e-12, rtol=0)
    # The two layers got different ratios (the point of LARS): weight and bias norms differ.
    w_ratio, b_ratio = (w.norm() / g.norm() for w, g in zip(w0, grads))
    assert not math.isclose(w_ratio.item(), b_ratio.item(), rel_tol=0.1)


def test_lars_uses_a_trust_ratio_of_one_for_a_zero_layer():
    p = _param([0.0, 0.0], [0.6, 0.8])
    LARS([p], lr=0.1, momentum=0.9).step()
    assert p.tolist() == pytest.approx([-0.06, -0.08], abs=1e-12)


# ------------------------------------------------------------------------ LAMB


def test_lamb_first_step_moves_the_layer_by_lr_times_its_norm():
    # t = 1: m_hat = g, v_hat = g^2, so r = g / (|g| + eps) ~ [1, 1]; |w| = 5, trust = 5 / |r|;
    # the step lr * 5 * r / |r| has norm lr * |w| = 0.5 along [1, 1] / sqrt(2).
    p = _param([3.0, 4.0], [0.6, 0.8])
    LAMB([p], lr=0.1, eps=1e-6).step()
    r = torch.tensor([0.6 / (0.6 + 1e-6), 0.8 / (0.8 + 1e-6)], dtype=torch.float64)
    expected = torch.tensor([3.0, 4.0], dtype=torch.float64) - 0.1 * 5.0 * r / r.norm()
    assert p.tolist() == pytest.approx(expected.tolist(), abs=1e-12)
    assert p.tolist() == pytest.approx([3.0 - 0.5 / math.sqrt(2), 4.0 - 0.5 / math.sqrt(2)], abs=1e-6)


def test_lamb_two_steps_follow_the_paper_with_bias_correction_and_weight_decay():
    model, grads = _tiny_model_with_grads()
    w0 = [p.detach().clone() for p in model.parameters()]
    lr, (b1, b2), eps, wd = 0.05, (0.8, 0.99), 1e-6, 0.01
    opt = LAMB(model.parameters(), lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    opt.step()
    second = [g * -0.5 + 0.01 for g in grads]
    for p, g in zip(model.parameters(), second):
        p.grad = g.clone()
    opt.step()

    for w, g1, g2, got in zip(w0, grads, second, model.parameters()):
        m = torch.zeros_like(w)
        v = torch.zeros_like(w)
        for t, g in ((1, g1), (2, g2)):
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            u = (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps) + wd * w
            w = w - lr * (w.norm() / u.norm()) * u
        assert torch.allclose(got.detach(), w, atol=1e-12, rtol=0)


# -------------------------------------------------------------------- registry


def test_build_optimizer_picks_the_named_optimizer_with_its_settings():
    params = [torch.nn.Parameter(torch.ones(2))]
    sgd = build_optimizer(OptimConfig(momentum=0.5, weight_decay=0.01), params, lr=0.3)
    assert type(sgd) is torch.optim.SGD
    assert sgd.param_groups[0]["lr"] == 0.3 and sgd.param_groups[0]["weight_decay"] == 0.01
    lars = build_optimizer(OptimConfig(name="lars", momentum=0.9, trust_coefficient=0.02), params, lr=4.0)
    assert isinstance(lars, LARS)
    assert lars.param_groups[0]["momentum"] == 0.9 and lars.param_groups[0]["trust_coefficient"] == 0.02
    lamb = build_optimizer(OptimConfig(name="lamb", betas=[0.8, 0.9], eps=1e-8), params, lr=0.01)
    assert isinstance(lamb, LAMB)
    assert lamb.param_groups[0]["betas"] == (0.8, 0.9) and lamb.param_groups[0]["eps"] == 1e-8


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ('optim.name="lasr"', 'did you mean "lars"?'),
        ("optim.betas=[0.9]", "must be two numbers in [0, 1)"),
        ("optim.betas=[0.9, 1.0]", "must be two numbers in [0, 1)"),
        ("optim.eps=0", "optim.eps: must be > 0"),
        ("optim.trust_coefficient=-1", "optim.trust_coefficient: must be > 0"),
        ("optim.weight_decay=-0.1", "optim.weight_decay: must be >= 0"),
    ],
)
def test_bad_optimizer_settings_are_config_errors(override: str, expected: str):
    with pytest.raises(ConfigError, match=None) as info:
        load_config(None, [override])
    assert expected in str(info.value)


# -------------------------------------------------------------------- the loop


@pytest.fixture
def _shared_dataset(tiny_dataset, monkeypatch):
    monkeypatch.setattr("trainer.sweep.prepare.load_dataset", lambda cfg, **kwargs: tiny_dataset)


@pytest.mark.usefixtures("_shared_dataset")
@pytest.mark.parametrize(("name", "lr"), [("lars", 20.0), ("lamb", 0.03)])
def test_a_sweep_trains_with_lars_and_lamb(tiny_config, name, lr):
    # lrs from a scan on this data (LARS's trust coefficient 0.001 wants a large global lr).
    cfg = tiny_config(
        optim={"name": name, "lr": lr, "momentum": 0.9, "warmup_epochs": 0.5},
        sweep={"batch_sizes": [60], "epochs": 3},
    )
    sink = ListSink()
    result = run_sweep(cfg, Emitter([sink]))
    assert result.status == "done"
    started = sink.of_type("run_started")[0]
    assert started["optim"] == name
    epochs = sink.of_type("epoch_end")
    # Learning, not just running: the loss falls well below chance level (ln 10 = 2.30).
    assert epochs[-1]["train_loss"] < 0.9 * epochs[0]["train_loss"]


@pytest.mark.usefixtures("_shared_dataset")
def test_warmup_sets_the_lr_lars_reads_each_step(tiny_config):
    seen: list[float] = []

    real = steps.plain_step

    def step(model, opt, x, y):
        assert isinstance(opt, LARS)
        seen.append(opt.param_groups[0]["lr"])
        return real(model, opt, x, y)

    cfg = tiny_config(
        optim={"name": "lars", "lr": 1.0, "warmup_epochs": 1.0}, sweep={"batch_sizes": [100], "epochs": 2}
    )
    monkey = pytest.MonkeyPatch()
    monkey.setattr(steps, "plain_step", step)
    try:
        run_sweep(cfg, Emitter([ListSink()]))
    finally:
        monkey.undo()
    warmup = 6  # 600 samples / batch 100 = 6 iterations per epoch, warm-up over one epoch
    assert seen[:warmup] == pytest.approx([lr_at(1.0, i, warmup) for i in range(warmup)])
    assert seen[warmup:] == pytest.approx([1.0] * warmup)


@pytest.mark.usefixtures("_shared_dataset")
def test_lars_and_lamb_runs_leave_the_cuda_graph_path_and_say_why(tiny_config, monkeypatch):
    # Pretend CUDA graphs were available: an SGD run would take them, LARS must not.
    monkeypatch.setattr(steps, "resolve_fast_path", lambda setting, device, pipeline="resident": "cuda_graph")
    built = []
    monkeypatch.setattr(steps, "GraphStep", lambda *a, **k: built.append(a) or pytest.fail("GraphStep built"))
    sink = ListSink()
    run_sweep(
        tiny_config(optim={"name": "lamb", "lr": 0.01}, sweep={"batch_sizes": [200], "epochs": 1}),
        Emitter([sink]),
    )
    started = sink.of_type("run_started")[0]
    assert started["fast_path"] == "eager"
    assert "lamb" in started["fast_path_reason"] and "SGD only" in started["fast_path_reason"]
    assert not built
