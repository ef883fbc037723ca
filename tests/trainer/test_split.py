"""Split-backward: both methods agree, k steps ~ lr x k, bad chunks are refused."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from trainer.engine.split import apply_chunk_steps, plain_step, split_step
from trainer.models.builtin import build_model
from trainer.models.grads import chunk_gradients

BATCH = 12
CHUNKS = 3


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("simple_cnn")


def _batch(n: int = BATCH, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return x.to(device), y.to(device)


def _full_grad(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    loss = F.nll_loss(model(x), y)
    return list(torch.autograd.grad(loss, list(model.parameters())))


def _assert_params_close(a: torch.nn.Module, b: torch.nn.Module, atol: float) -> None:
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        torch.testing.assert_close(pa, pb, atol=atol, rtol=0, msg=f"parameter {name} differs")


def test_both_methods_give_the_same_chunk_gradients():
    model = _model()
    x, y = _batch()
    loss_r, grads_r = chunk_gradients(model, x, y, CHUNKS, "retain_graph")
    loss_v, grads_v = chunk_gradients(model, x, y, CHUNKS, "vectorized")
    params = list(model.parameters())
    assert len(grads_r) == len(grads_v) == len(params)
    for g_r, g_v, p in zip(grads_r, grads_v, params):
        assert g_r.shape == g_v.shape == (CHUNKS, *p.shape)
        torch.testing.assert_close(g_v, g_r, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(loss_v, loss_r, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("method", ["retain_graph", "vectorized"])
def test_chunk_gradient_is_the_gradient_of_that_chunk_alone(method):
    model = _model()
    x, y = _batch()
    _, grads = chunk_gradients(model, x, y, CHUNKS, method)
    size = BATCH // CHUNKS
    for i in (0, CHUNKS - 1):
        expected = _full_grad(model, x[i * size : (i + 1) * size], y[i * size : (i + 1) * size])
        for g, e in zip(grads, expected):
            torch.testing.assert_close(g[i], e, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("method", ["retain_graph", "vectorized"])
def test_mean_of_chunk_gradients_is_the_full_batch_gradient(method):
    model = _model()
    x, y = _batch()
    loss, grads = chunk_gradients(model, x, y, CHUNKS, method)
    full = _full_grad(model, x, y)
    for g, f in zip(grads, full):
        torch.testing.assert_close(g.mean(0), f, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(loss, F.nll_loss(model(x), y).detach())


@pytest.mark.parametrize("method", ["retain_graph", "vectorized"])
def test_split_steps_without_momentum_equal_one_plain_step_with_lr_times_k(method):
    lr = 0.05
    split_model = _model()
    plain_model = copy.deepcopy(split_model)
    x, y = _batch()
    split_step(split_model, torch.optim.SGD(split_model.parameters(), lr=lr), x, y, CHUNKS, method)
    plain_step(plain_model, torch.optim.SGD(plain_model.parameters(), lr=lr * CHUNKS), x, y)
    _assert_params_close(split_model, plain_model, atol=1e-6)


def test_split_steps_with_momentum_differ_from_one_step_with_lr_times_k():
    # With momentum the buffer carries part of step i into step i+1, so k steps are no longer the
    # sum of k independent steps (SEED.md: "momentum makes it differ slightly").
    lr = 0.05
    split_model = _model()
    plain_model = copy.deepcopy(split_model)
    x, y = _batch()
    split_opt = torch.optim.SGD(split_model.parameters(), lr=lr, momentum=0.5)
    plain_opt = torch.optim.SGD(plain_model.parameters(), lr=lr * CHUNKS, momentum=0.5)
    split_step(split_model, split_opt, x, y, CHUNKS, "vectorized")
    plain_step(plain_model, plain_opt, x, y)
    diff = max((a - b).abs().max().item() for a, b in zip(split_model.parameters(), plain_model.parameters()))
    assert diff > 1e-5


@pytest.mark.parametrize("method", ["retain_graph", "vectorized"])
def test_split_step_with_momentum_changes_parameters_and_leaves_last_chunk_grad(method):
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    x, y = _batch()
    _, grads = chunk_gradients(model, x, y, CHUNKS, method)
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.5)
    for _ in range(2):  # the second step uses the momentum buffers made by the first
        split_step(model, opt, x, y, CHUNKS, method)
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())


def test_chunks_that_do_not_divide_the_batch_are_refused_naming_both():
    model = _model()
    x, y = _batch(10)
    for method in ("retain_graph", "vectorized"):
        with pytest.raises(ValueError, match=r"chunks=4.*batch size 10"):
            chunk_gradients(model, x, y, 4, method)
        with pytest.raises(ValueError, match=r"chunks=3.*batch size 10"):
            split_step(model, torch.optim.SGD(model.parameters(), lr=0.1), x, y, 3, method)


def test_unknown_method_and_nonpositive_chunks_are_refused():
    model = _model()
    x, y = _batch()
    with pytest.raises(ValueError, match="unknown split-backward method 'vmap'"):
        chunk_gradients(model, x, y, CHUNKS, "vmap")
    with pytest.raises(ValueError, match="whole number >= 1"):
        chunk_gradients(model, x, y, 0, "vectorized")


def test_stepping_between_retained_backward_passes_fails_which_is_why_grads_come_first():
    # The study's literal loop; split_step's docstring relies on this failing.
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = _batch()
    per_sample = F.nll_loss(model(x), y, reduction="none")
    per_sample[:6].mean().backward(retain_graph=True)
    opt.step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        per_sample[6:].mean().backward()


def test_apply_chunk_steps_refuses_gradients_for_another_model():
    model = _model()
    with pytest.raises(ValueError, match="chunk gradients for 8 trainable parameters"):
        apply_chunk_steps(model, torch.optim.SGD(model.parameters(), lr=0.1), [torch.zeros(2, 3)])


def _losses_stay_on_device(device: str) -> None:
    model = _model().to(device)
    x, y = _batch(device=device)
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.5)
    losses = [plain_step(model, opt, x, y)]
    losses += [split_step(model, opt, x, y, CHUNKS, m) for m in ("retain_graph", "vectorized")]
    losses += [chunk_gradients(model, x, y, CHUNKS, m)[0] for m in ("retain_graph", "vectorized")]
    for loss in losses:
        assert isinstance(loss, torch.Tensor)
        assert loss.device.type == torch.device(device).type
        assert loss.dim() == 0 and not loss.requires_grad


def test_losses_are_detached_tensors_on_the_input_device():
    _losses_stay_on_device("cpu")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_methods_agree_and_losses_stay_on_cuda():
    _losses_stay_on_device("cuda")
    model = _model().cuda()
    x, y = _batch(device="cuda")
    _, grads_r = chunk_gradients(model, x, y, CHUNKS, "retain_graph")
    _, grads_v = chunk_gradients(model, x, y, CHUNKS, "vectorized")
    for g_r, g_v in zip(grads_r, grads_v):
        # cuDNN picks algorithms per shape, so allow a little more than on CPU.
        torch.testing.assert_close(g_v, g_r, atol=1e-5, rtol=1e-4)
