"""Loss oscillation metrics."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.measure.oscillation import GradCosine, loss_diff_std


def test_loss_diff_std_of_a_steady_fall_is_zero():
    assert loss_diff_std([5.0, 4.0, 3.0, 2.0, 1.0]) == pytest.approx(0.0)


def test_loss_diff_std_of_an_alternating_loss_is_its_jump_size():
    # Differences alternate -2, +2: mean 0, standard deviation 2.
    assert loss_diff_std([3.0, 1.0, 3.0, 1.0, 3.0]) == pytest.approx(2.0)


def test_loss_diff_std_known_sequence():
    # Differences 1, 3, -2 (mean 2/3): population std sqrt(((1/3)^2 + (7/3)^2 + (8/3)^2) / 3).
    expected = math.sqrt(((1 / 3) ** 2 + (7 / 3) ** 2 + (8 / 3) ** 2) / 3)
    assert loss_diff_std([0.0, 1.0, 4.0, 2.0]) == pytest.approx(expected)


def test_loss_diff_std_ignores_differences_touching_non_finite_losses():
    # Finite differences: 0->1 and 2->3, both 1 (no difference is made across the gaps).
    values = [0.0, 1.0, float("nan"), 2.0, 3.0, float("inf"), 5.0]
    assert loss_diff_std(values) == pytest.approx(0.0)
    assert loss_diff_std([0.0, 1.0, float("nan"), 2.0, 4.0]) == pytest.approx(0.5)  # diffs 1, 2


def test_loss_diff_std_is_nan_without_two_finite_differences():
    assert math.isnan(loss_diff_std([]))
    assert math.isnan(loss_diff_std([1.0, 2.0]))
    assert math.isnan(loss_diff_std([1.0, float("nan"), 2.0, float("nan")]))


def test_loss_diff_std_accepts_a_tensor():
    assert loss_diff_std(torch.tensor([3.0, 1.0, 3.0, 1.0])) == pytest.approx(
        loss_diff_std([3.0, 1.0, 3.0, 1.0])
    )


def _params(*grads: list[float]) -> list[torch.nn.Parameter]:
    """Parameters whose .grad are the given vectors (two 'layers' per gradient)."""
    params = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(1, 1))]
    for g in grads:
        params[0].grad = torch.tensor(g[:2])
        params[1].grad = torch.tensor(g[2:]).reshape(1, 1)
    return params


def test_grad_cosine_is_none_first_then_one_for_parallel_gradients():
    params = _params([1.0, 2.0, 2.0])
    cos = GradCosine()
    assert cos.update(params) is None
    params[0].grad = torch.tensor([2.0, 4.0])
    params[1].grad = torch.tensor([[4.0]])
    value = cos.update(params)
    assert isinstance(value, torch.Tensor) and value.dim() == 0
    assert value.item() == pytest.approx(1.0)


def test_grad_cosine_of_orthogonal_and_opposite_gradients():
    params = _params([1.0, 0.0, 0.0])
    cos = GradCosine()
    cos.update(params)
    params[0].grad = torch.tensor([0.0, 3.0])
    params[1].grad = torch.tensor([[0.0]])
    assert cos.update(params).item() == pytest.approx(0.0)
    params[0].grad = torch.tensor([0.0, -1.0])
    assert cos.update(params).item() == pytest.approx(-1.0)


def test_grad_cosine_compares_with_the_gradient_as_it_was_not_as_it_is_now():
    # Optimisers and zero_grad change .grad in place; the kept copy must not follow.
    params = _params([1.0, 0.0, 0.0])
    cos = GradCosine()
    cos.update(params)
    params[0].grad.copy_(torch.tensor([0.0, 1.0]))
    assert cos.update(params).item() == pytest.approx(0.0)


def test_grad_cosine_of_a_zero_gradient_is_zero_not_nan():
    params = _params([1.0, 1.0, 1.0])
    cos = GradCosine()
    cos.update(params)
    for p in params:
        p.grad = None  # no gradient counts as zero
    assert cos.update(params).item() == 0.0


def test_grad_cosine_reset_forgets_the_previous_gradient():
    params = _params([1.0, 1.0, 1.0])
    cos = GradCosine()
    cos.update(params)
    cos.reset()
    assert cos.update(params) is None
    assert cos.update(params).item() == pytest.approx(1.0)


def test_grad_cosine_on_a_model_after_backward():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    cos = GradCosine()
    for _ in range(2):
        model.zero_grad()
        model(torch.ones(4, 3)).sum().backward()  # the same input: the same gradient
        value = cos.update(model.parameters())
    assert value is not None and value.item() == pytest.approx(1.0)
