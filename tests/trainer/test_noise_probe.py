"""The batch-independent gradient-noise probe (trainer/measure/noise_probe.py)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from trainer.analysis.bsimple import Reading, b_simple_at
from trainer.measure.noise_probe import NoiseProbe, probe_reading, probe_terms
from trainer.models.builtin import SimpleModel

# Linear regression y = w*.x + eps, x ~ N(0, I_d), eps ~ N(0, s2), loss 0.5 (w.x - y)^2 at w = w* + r:
# per-sample gradient g = x (x.r - eps), so G = r and Sigma = r r^T + (|r|^2 + s2) I (Isserlis), hence
# |G|^2 = |r|^2, tr(Sigma) = (d + 1)|r|^2 + d s2 and B_simple = tr(Sigma) / |G|^2.
D, S2 = 5, 1.0


def _mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 0.5 * (out.squeeze(-1) - y).pow(2).mean()


def _regression(seed: int, scale: float) -> tuple[nn.Module, torch.Tensor, torch.Generator, float]:
    gen = torch.Generator().manual_seed(seed)
    w_star = torch.randn(D, generator=gen, dtype=torch.float64)
    r = torch.randn(D, generator=gen, dtype=torch.float64) * scale
    model = nn.Linear(D, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_((w_star + r)[None])
    g2 = float(r @ r)
    return model, w_star, gen, ((D + 1) * g2 + D * S2) / g2


def _batch(w_star: torch.Tensor, gen: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(n, D, generator=gen, dtype=torch.float64)
    return x, x @ w_star + torch.randn(n, generator=gen, dtype=torch.float64) * math.sqrt(S2)


@pytest.mark.parametrize("scale", [1.0, 0.15])  # B_simple ~ 7 and ~ 60-300 (|G|^2 harder to see)
def test_the_interval_covers_the_true_b_simple_in_about_95_percent_of_repeats(scale):
    repeats, readings, covered, widths = 80, 6, 0, []
    for seed in range(repeats):
        model, w_star, gen, truth = _regression(seed, scale)
        probe = NoiseProbe(
            every_samples=1, window_samples=readings, probe_size=128, chunk_size=8, loss_fn=_mse, seed=seed
        )
        for i in range(readings):
            probe.update(model, *_batch(w_star, gen, 128), samples=i + 1)
        f = probe.figures()
        assert f["b_simple_readings"] == readings
        lo, hi = f["b_simple_lo"], f["b_simple_hi"] if f["b_simple_hi"] is not None else math.inf
        covered += lo is not None and lo <= truth <= hi
        widths.append(hi / lo if lo else math.inf)  # lo 0: open (a leave-one-out fit cannot see |G|^2)
    # Nominal 95%; with 80 repeats the binomial sd is 2.5 points. A biased estimator (e.g. |g_B|^2 for
    # |G|^2) or an interval that ignores the t quantile falls well below 0.85.
    assert 0.85 <= covered / repeats <= 0.995, covered / repeats
    # And the intervals say something where the probe batch sees |G|^2 (B_simple ~ 7 against 128 samples).
    # At B_simple 60-300 against 128 samples in 5 dimensions single readings are mostly noise, and a figure
    # that follows drift (a slope fitted to 6 readings) is honestly wide there: median ~16x, some open.
    assert sorted(widths)[repeats // 2] < (4.0 if scale == 1.0 else 40.0)


def test_biased_terms_would_fail_the_coverage_check():
    """The coverage test can fail: dropping the tr(Sigma)/B correction of |G|^2 moves B_simple off."""
    model, w_star, gen, truth = _regression(0, 0.07)  # B_simple ~ 300, the naive estimate ~ half that
    readings = []
    for i in range(6):
        x, y = _batch(w_star, gen, 256)
        g2, trace = probe_terms(model, x, y, chunk_size=8, loss_fn=_mse)
        readings.append(Reading(i, g2 + trace / 256, trace))  # the naive |g_B|^2
    f = b_simple_at(readings, 5, before=6)
    assert not (f["b_simple_lo"] <= truth <= f["b_simple_hi"])


def _per_sample_b_simple(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """tr(Sigma) / |G|^2 from every sample's gradient: the training set's exact figures."""
    params = {n: p.detach() for n, p in model.named_parameters()}

    def loss(p, xi, yi):
        return F.nll_loss(functional_call(model, p, (xi[None],)), yi[None])

    per = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    flat = torch.cat([g.flatten(1).double() for g in per.values()], dim=1)  # [N, P]
    mean = flat.mean(0)
    trace = (flat - mean).pow(2).sum(1).mean()  # population covariance: the set is the population
    return float(trace / mean.pow(2).sum())


def test_probe_at_batch_6_agrees_with_an_exact_per_sample_computation_within_2x(tiny_dataset):
    """The probe's reason to exist: the old estimate said 5,948 at batch 6 where per-sample gave 642."""
    torch.manual_seed(0)
    x_all = tiny_dataset.train.images.unsqueeze(1).float().div(255)
    y_all = tiny_dataset.train.labels
    model = SimpleModel()
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.5)
    perm = torch.randperm(len(y_all))
    for start in range(0, 600, 6):  # one epoch at batch 6 (100 steps), the study's settings
        idx = perm[start : start + 6]
        opt.zero_grad()
        F.nll_loss(model(x_all[idx]), y_all[idx]).backward()
        opt.step()
    before = [p.detach().clone() for p in model.parameters()]
    probe = NoiseProbe(every_samples=6, window_samples=36, seed=0)  # the default 1,024-sample probe
    for i in range(6):  # six readings at these weights
        probe.update(model, *probe.draw(x_all, y_all), samples=6 * (i + 1))
    exact = _per_sample_b_simple(model, x_all, y_all)
    f = probe.figures()
    assert f["b_simple"] is not None and exact > 0
    assert 0.5 <= f["b_simple"] / exact <= 2.0, (f["b_simple"], exact)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # the probe trains nothing
    assert all(p.grad is None or True for p in model.parameters())


def test_readings_are_due_by_samples_and_the_window_is_samples_not_iterations():
    model, w_star, gen, _ = _regression(1, 1.0)
    probe = NoiseProbe(every_samples=100, window_samples=300, probe_size=64, chunk_size=8, loss_fn=_mse)
    assert not probe.due(99) and probe.due(100)
    for samples in (100, 230, 310, 420, 530):
        assert probe.due(samples)
        probe.update(model, *_batch(w_star, gen, 64), samples)
    assert not probe.due(599) and probe.due(600)
    f = probe.figures()
    # The last 300 samples hold the readings at 310, 420 and 530 (230 is 300 before 530).
    assert (f["b_simple_from_samples"], f["b_simple_to_samples"], f["b_simple_readings"]) == (310, 530, 3)
    assert f["gns_estimates"] == 5


def test_state_dict_round_trip_continues_identically():
    model, w_star, gen, _ = _regression(2, 1.0)
    x_set, y_set = _batch(w_star, gen, 500)
    a = NoiseProbe(every_samples=10, window_samples=40, probe_size=64, chunk_size=8, loss_fn=_mse, seed=3)
    for s in (10, 20):
        a.update(model, *a.draw(x_set, y_set), s)
    state = a.state_dict()
    b = NoiseProbe(every_samples=10, window_samples=40, probe_size=64, chunk_size=8, loss_fn=_mse, seed=99)
    b.load_state_dict(state)
    for probe in (a, b):
        probe.update(model, *probe.draw(x_set, y_set), 30)
    assert a.figures() == b.figures()
    torch.save(state, buf := __import__("io").BytesIO())
    buf.seek(0)
    assert torch.load(buf, weights_only=True)["readings"] == state["readings"]
    with pytest.raises(ValueError, match="chunk_size"):
        NoiseProbe(every_samples=10, window_samples=40, probe_size=64, chunk_size=16).load_state_dict(state)


def test_drawing_a_probe_batch_leaves_the_global_random_stream_alone():
    probe = NoiseProbe(probe_size=16, chunk_size=8)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    probe.draw(torch.zeros(100, 2), torch.zeros(100))
    assert torch.equal(torch.rand(3), expected)


def test_figures_say_undefined_and_open_instead_of_inventing_numbers():
    assert b_simple_at([], 0, before=1)["b_simple"] is None
    f = b_simple_at([Reading(1, -1.0, 5.0), Reading(2, 0.5, 5.0)], 2, before=2)
    assert f["b_simple"] is None and f["b_simple_undefined"] == 0.5  # mean |G|^2 <= 0
    f = b_simple_at([Reading(1, 1.0, 5.0), Reading(2, 1.2, 5.0)], 2, before=2)
    assert f["b_simple"] == pytest.approx(5 / 1.2) and f["b_simple_lo"] is None  # 2 readings: no interval
    f = b_simple_at([Reading(1, 3.0, 5.0), Reading(2, -2.9, 5.0), Reading(3, 0.2, 5.0)], 3, before=3)
    assert f["b_simple_lo"] == 0.0 and f["b_simple_hi"] is None  # a leave-one-out |G|^2 <= 0: open


def test_a_reading_records_the_probe_batch_loss_and_every_reading_is_kept():
    model, w_star, gen, _ = _regression(4, 1.0)
    x, y = _batch(w_star, gen, 64)
    g2, trace, loss = probe_reading(model, x, y, chunk_size=8, loss_fn=_mse)
    assert (g2, trace) == probe_terms(model, x, y, chunk_size=8, loss_fn=_mse)
    assert loss == pytest.approx(
        _mse(model(x), y).item(), rel=1e-9
    )  # equal chunks: their mean is the batch's
    probe = NoiseProbe(every_samples=10, window_samples=20, probe_size=64, chunk_size=8, loss_fn=_mse)
    for samples in (10, 20, 30, 40):
        probe.update(model, *_batch(w_star, gen, 64), samples)
    assert [r.samples for r in probe.readings] == [10, 20, 30, 40]  # the curve over training
    assert probe.figures()["b_simple_readings"] == 2  # the current figure: the last 20 samples' readings
    assert probe.at_target(15, 25)["b_simple_target_readings"] == 4  # 3 intervals on either side of 20


def test_bad_settings_are_refused_with_the_numbers():
    with pytest.raises(ValueError, match="every_samples=10, window_samples=5"):
        NoiseProbe(every_samples=10, window_samples=5)
    with pytest.raises(ValueError, match="probe_size 100 must be at least 2 whole chunks of 8"):
        NoiseProbe(probe_size=100, chunk_size=8)
    with pytest.raises(ValueError, match="at least 2 whole chunks"):
        probe_terms(nn.Linear(2, 1), torch.zeros(8, 2), torch.zeros(8), chunk_size=8, loss_fn=_mse)
