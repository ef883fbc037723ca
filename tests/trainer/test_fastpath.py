"""The fast path: the graph step trains exactly like the eager loop.

On CUDA: captured graphs give the eager loop's per-iteration losses (several batch sizes, a partial last
batch, lr warm-up, split-backward). On CPU (CI): the logic around the graph - fast-path resolution,
index gathering, the device-lr SGD update, and GraphStep's static-buffer body run without capture.
"""

from __future__ import annotations

import pytest
import torch

from trainer.data.datasets import Split
from trainer.data.pipelines import ResidentBatches
from trainer.engine.cuda_graph import (
    FastPathUnavailable,
    GraphStep,
    graph_supported,
    index_batches,
    resolve_fast_path,
    sgd_momentum_update,
)
from trainer.engine.split import plain_step, split_step
from trainer.models.builtin import build_model

LR, MOMENTUM = 0.02, 0.5
needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU; none here"
)


@pytest.fixture(autouse=True, scope="module")
def one_cpu_thread():
    """One intra-op thread: on a small shared CPU, more threads spin against each other (10-40x slower)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _split(n: int, seed: int = 0) -> Split:
    """Random digits-shaped data with labels that depend on the image, so training moves the loss."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g)
    labels = (images[:, 10:18, 10:18].float().mean((1, 2)) / 25.6).long().clamp(0, 9)
    return Split(images, labels)


def _model_opt(device: str | torch.device, lr: float = LR) -> tuple[torch.nn.Module, torch.optim.SGD]:
    torch.manual_seed(0)
    model = build_model("simple_cnn").to(device)
    return model, torch.optim.SGD(model.parameters(), lr=lr, momentum=MOMENTUM)


def _eager_losses(
    data: ResidentBatches,
    epochs: int,
    *,
    lr_at=None,
    split_from: tuple[int, int] | None = None,
    device: str | torch.device = "cpu",
) -> tuple[list[float], torch.nn.Module]:
    """The eager loop (what trainer.engine.run does): plain_step / split_step on ResidentBatches' batches."""
    model, opt = _model_opt(device)
    losses, it = [], 0
    for epoch in range(epochs):
        for x, y in data.batches(epoch):
            if lr_at is not None:
                opt.param_groups[0]["lr"] = lr_at(it)
            k = split_from[1] if split_from and it >= split_from[0] else 1
            if k > 1 and x.shape[0] % k == 0:
                losses.append(split_step(model, opt, x, y, k, "vectorized"))
            else:
                losses.append(plain_step(model, opt, x, y))
            it += 1
    return torch.stack(losses).tolist(), model


def _graph_losses(
    data: ResidentBatches,
    epochs: int,
    *,
    lr_at=None,
    split_from: tuple[int, int] | None = None,
    device: str | torch.device = "cpu",
    **kwargs,
) -> tuple[list[float], GraphStep]:
    """The same loop through GraphStep, fed index slices of the same permutations."""
    model, opt = _model_opt(device)
    step = GraphStep(model, opt, data.images, data.labels, data.batch_size, **kwargs)
    losses, it = [], 0
    for epoch in range(epochs):
        for idx in index_batches(data.epoch_indices(epoch), data.batch_size):
            if lr_at is not None:
                step.set_lr(lr_at(it))
            if split_from and it == split_from[0]:
                step.set_split(split_from[1])
            losses.append(step.step(idx))
            it += 1
    return torch.stack(losses).tolist(), step


def _warmup_lr(it: int) -> float:
    return LR * min(1.0, (it + 1) / 12)


# ---------------------------------------------------------------- choosing the path (CPU)


def test_auto_is_eager_on_cpu_and_cuda_graph_is_refused_with_the_fix():
    assert resolve_fast_path("auto", "cpu") == "eager"
    assert resolve_fast_path("eager", "cpu") == "eager"
    assert not graph_supported("cpu", "resident")
    with pytest.raises(FastPathUnavailable, match='perf.fast_path = "auto"'):
        resolve_fast_path("cuda_graph", "cpu")
    with pytest.raises(ValueError, match="not one of"):
        resolve_fast_path("graphs", "cpu")


def test_auto_picks_graphs_on_cuda_only_with_the_resident_pipeline(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_fast_path("auto", "cuda", "resident") == "cuda_graph"
    assert resolve_fast_path("auto", "cuda:0", "dataloader") == "eager"
    assert resolve_fast_path("eager", "cuda", "resident") == "eager"
    with pytest.raises(FastPathUnavailable, match='data.pipeline = "dataloader"'):
        resolve_fast_path("cuda_graph", "cuda", "dataloader")


# ---------------------------------------------------------------- the logic around the graph (CPU)


def test_index_gathering_gives_resident_batches_exactly():
    data = ResidentBatches(_split(50), batch_size=8, device=torch.device("cpu"), seed=3)
    model, opt = _model_opt("cpu")
    step = GraphStep(model, opt, data.images, data.labels, data.batch_size)
    for epoch in range(2):
        pairs = list(zip(data.batches(epoch), index_batches(data.epoch_indices(epoch), data.batch_size)))
        assert len(pairs) == data.iters_per_epoch == 7
        assert pairs[-1][1].shape[0] == 2  # the partial last batch
        for (x, y), idx in pairs:
            gx, gy = step.gather(idx)
            assert torch.equal(gx, x) and torch.equal(gy, y)


@pytest.mark.parametrize(
    "options",
    [
        {"momentum": 0.5},
        {"momentum": 0.9, "dampening": 0.1, "weight_decay": 1e-3},
        {"momentum": 0.9, "nesterov": True},
        {"momentum": 0.0},
    ],
    ids=["study", "dampening+decay", "nesterov", "no-momentum"],
)
def test_device_lr_sgd_update_equals_torch_sgd(options):
    torch.manual_seed(0)
    ref = [torch.randn(5, 3), torch.randn(7)]
    mine = [p.clone() for p in ref]
    opt = torch.optim.SGD([torch.nn.Parameter(p) for p in ref], lr=0.1, **options)
    params = opt.param_groups[0]["params"]
    lr = torch.tensor(0.1)
    bufs: list[torch.Tensor] = []
    for i in range(6):
        value = 0.1 * (i + 1) / 6  # a warm-up: lr changes every step, through the same tensor
        opt.param_groups[0]["lr"] = value
        lr.fill_(value)
        grads = [torch.randn_like(p) for p in mine]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
        if i == 0:  # SGD's first step makes the buffers; the graph path starts after eager steps
            mine = [p.detach().clone() for p in params]
            if options["momentum"]:
                bufs = [opt.state[p]["momentum_buffer"].clone() for p in params]
            continue
        sgd_momentum_update(mine, grads, bufs, lr, **options)
        for a, b in zip(mine, params):
            torch.testing.assert_close(a, b.detach(), rtol=1e-6, atol=1e-7)
        if options["momentum"]:
            for a, p in zip(bufs, params):
                torch.testing.assert_close(a, opt.state[p]["momentum_buffer"], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("batch_size", [1, 7, 32])
def test_graph_body_without_capture_trains_like_the_eager_loop(batch_size):
    n = 40 if batch_size == 1 else 100  # 100 / 7 and 100 / 32 leave partial last batches
    data = ResidentBatches(_split(n), batch_size, torch.device("cpu"), seed=1)
    eager, eager_model = _eager_losses(data, epochs=2)
    graph, step = _graph_losses(data, epochs=2, warmup=2)
    assert len(graph) == len(eager) == 2 * data.iters_per_epoch
    # The first warm-up steps ARE eager steps: identical; the static body may round lr*buf differently.
    assert graph[:2] == eager[:2]
    torch.testing.assert_close(graph, eager, rtol=1e-5, atol=1e-6)
    for a, b in zip(step.model.parameters(), eager_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    partial = 2 if n % batch_size else 0
    assert step.eager_steps == 2 + partial
    assert step.replays == len(graph) - step.eager_steps
    assert step.captured_modes == []  # nothing captured on CPU


def test_graph_body_follows_lr_warmup_without_recapture():
    data = ResidentBatches(_split(120), 10, torch.device("cpu"), seed=2)
    eager, _ = _eager_losses(data, epochs=2, lr_at=_warmup_lr)
    graph, step = _graph_losses(data, epochs=2, lr_at=_warmup_lr)
    torch.testing.assert_close(graph, eager, rtol=1e-5, atol=1e-6)
    assert step.replays == len(graph) - 3
    assert float(step._lr) == pytest.approx(LR)


def test_graph_step_follows_lr_set_on_the_optimizer_like_the_trainer_loop_does():
    data = ResidentBatches(_split(60), 10, torch.device("cpu"), seed=2)
    eager, _ = _eager_losses(data, epochs=1, lr_at=_warmup_lr)
    model, opt = _model_opt("cpu")
    step = GraphStep(model, opt, data.images, data.labels, 10, warmup=1)
    graph = []
    for it, idx in enumerate(index_batches(data.epoch_indices(0), 10)):
        opt.param_groups[0]["lr"] = _warmup_lr(it)  # as trainer.engine.run sets it for eager steps
        graph.append(step.step(idx))
    torch.testing.assert_close(torch.stack(graph).tolist(), eager, rtol=1e-5, atol=1e-6)


def test_graph_body_switches_to_split_backward_like_the_eager_loop():
    data = ResidentBatches(_split(100), 12, torch.device("cpu"), seed=4)  # last batch 4: split by 4 too
    eager, _ = _eager_losses(data, epochs=2, split_from=(5, 4))
    graph, step = _graph_losses(data, epochs=2, split_from=(5, 4), warmup=2)
    torch.testing.assert_close(graph, eager, rtol=1e-5, atol=1e-6)
    # 2 plain warm-up steps, 2 split warm-up steps, 1 partial batch in each epoch.
    assert step.eager_steps == 2 + 2 + 2
    assert step.split_chunks == 4


def test_bf16_and_channels_last_train_close_to_fp32():
    data = ResidentBatches(_split(64), 16, torch.device("cpu"), seed=5)
    fp32, _ = _graph_losses(data, epochs=1)
    bf16, _ = _graph_losses(data, epochs=1, precision="bf16")
    cl, step = _graph_losses(data, epochs=1, channels_last=True)
    assert step.model.conv2.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(cl, fp32, rtol=1e-4, atol=1e-5)
    assert bf16 != fp32  # bf16 really ran (autocast), and stays near fp32's losses
    torch.testing.assert_close(bf16, fp32, rtol=0, atol=0.05)


def test_impossible_graph_steps_are_refused_with_the_reason():
    model, opt = _model_opt("cpu")
    x, y = torch.zeros(10, 1, 28, 28), torch.zeros(10, dtype=torch.long)
    with pytest.raises(ValueError, match="does not divide batch size 10"):
        GraphStep(model, opt, x, y, 10, split_chunks=3)
    with pytest.raises(ValueError, match="warmup must be >= 1"):
        GraphStep(model, opt, x, y, 10, warmup=0)
    with pytest.raises(ValueError, match="CUDA device"):
        GraphStep(model, opt, x, y, 10, capture=True)
    with pytest.raises(ValueError, match="SGD only"):
        GraphStep(model, torch.optim.Adam(model.parameters()), x, y, 10)
    with pytest.raises(ValueError, match="precision"):
        GraphStep(model, opt, x, y, 10, precision="fp16")


# ---------------------------------------------------------------- captured graphs (CUDA)


@pytest.fixture
def deterministic_cudnn():
    """Same conv algorithms in both paths, so only float rounding can differ."""
    old = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    yield
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = old


def _cuda_data(n: int, batch_size: int) -> ResidentBatches:
    return ResidentBatches(_split(n), batch_size, torch.device("cuda"), seed=0)


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("batch_size,n", [(1, 60), (7, 400), (60, 1000), (600, 2000)])
def test_cuda_graph_losses_equal_eager_losses(batch_size, n, deterministic_cudnn):
    data = _cuda_data(n, batch_size)
    eager, eager_model = _eager_losses(data, epochs=2, device="cuda")
    graph, step = _graph_losses(data, epochs=2, device="cuda")
    assert step.capture_errors == {}
    assert step.captured_modes == [1]
    assert step.replays == len(graph) - step.eager_steps > 0
    torch.testing.assert_close(graph, eager, rtol=1e-4, atol=1e-5)
    # Parameters after ~100 SGD steps: float reordering (own foreach SGD vs torch's, cuDNN's
    # algorithm per batch shape) compounds step after step; seen on an H200: 7.8e-5 at most.
    for a, b in zip(step.model.parameters(), eager_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=3e-4)


@pytest.mark.cuda
@needs_cuda
def test_cuda_graph_follows_lr_warmup_without_recapture(deterministic_cudnn):
    data = _cuda_data(300, 10)
    eager, _ = _eager_losses(data, epochs=1, lr_at=_warmup_lr, device="cuda")
    graph, step = _graph_losses(data, epochs=1, lr_at=_warmup_lr, device="cuda")
    assert step.capture_errors == {} and step.captured_modes == [1]
    torch.testing.assert_close(graph, eager, rtol=1e-4, atol=1e-5)


@pytest.mark.cuda
@needs_cuda
def test_cuda_graph_split_backward_equals_eager(deterministic_cudnn):
    data = _cuda_data(500, 60)  # 9 batches an epoch, the last of 20 (split by 4 too)
    eager, _ = _eager_losses(data, epochs=2, split_from=(6, 4), device="cuda")
    graph, step = _graph_losses(data, epochs=2, split_from=(6, 4), device="cuda")
    assert step.capture_errors == {}
    assert step.captured_modes == [1, 4]
    torch.testing.assert_close(graph, eager, rtol=1e-4, atol=1e-5)


@pytest.mark.cuda
@needs_cuda
def test_cuda_graph_bf16_equals_its_eager_body(deterministic_cudnn):
    data = _cuda_data(600, 60)
    uncaptured, _ = _graph_losses(
        data, epochs=1, device="cuda", precision="bf16", channels_last=True, capture=False
    )
    graph, step = _graph_losses(data, epochs=1, device="cuda", precision="bf16", channels_last=True)
    assert step.capture_errors == {} and step.captured_modes == [1]
    torch.testing.assert_close(graph, uncaptured, rtol=0, atol=0.02)


class _Uncapturable(torch.nn.Module):
    """SimpleModel that refuses to be captured (as an op with a host sync would), to test the fallback."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.inner = build_model("simple_cnn")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.cuda.is_current_stream_capturing():
            raise RuntimeError("this model cannot be captured")
        return self.inner(x)


@pytest.mark.cuda
@needs_cuda
def test_cuda_step_that_cannot_be_captured_falls_back_to_eager_and_trains_the_same():
    # Last in the file: a failed capture is the one CUDA state change these tests provoke on purpose.
    data = _cuda_data(200, 20)
    eager, _ = _eager_losses(data, epochs=1, device="cuda")
    model = _Uncapturable().cuda()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    step = GraphStep(model, opt, data.images, data.labels, data.batch_size)
    losses = [step.step(idx) for idx in index_batches(data.epoch_indices(0), data.batch_size)]
    assert step.captured_modes == [] and step.replays == 0
    assert "cannot be captured" in step.capture_errors[1]
    torch.testing.assert_close(torch.stack(losses).tolist(), eager, rtol=1e-5, atol=1e-6)


def test_last_grads_are_the_latest_steps_gradient_in_both_modes():
    """The probes read the gradient of the step just taken, whether the body or an eager step ran."""
    torch.manual_seed(0)
    images, labels = torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,))
    model = build_model("simple_cnn")
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.5)
    step = GraphStep(model, opt, images, labels, 16, warmup=1, capture=False)
    for chunks in (1, 4):
        step.set_split(chunks)
        for start in (0, 16, 32):  # the first is eager (warm-up), the rest run the body
            idx = torch.arange(start, start + 16)
            params_before = [p.detach().clone() for p in model.parameters()]
            step.step(idx)
            probe = build_model("simple_cnn")
            probe.load_state_dict({n: t for n, t in zip(dict(model.named_parameters()), params_before)})
            x, y = images[idx], labels[idx]
            if chunks > 1:  # the last chunk's gradient, at the parameters before the step
                x, y = x[-16 // chunks :], y[-16 // chunks :]
            torch.nn.functional.nll_loss(probe(x), y).backward()
            for got, p in zip(step.last_grads(), probe.parameters()):
                torch.testing.assert_close(got, p.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.cuda
@needs_cuda
def test_choose_step_tells_the_app_before_it_captures_a_graph():
    """The start-up stage "capturing CUDA graph" is told once, before the capture."""
    from trainer.config import PerfConfig
    from trainer.engine.steps import choose_step

    model = build_model("simple_cnn").cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
    told: list[str] = []
    step, reason = choose_step(
        model,
        optimizer,
        _cuda_data(600, 60),
        batch_size=60,
        split_chunks=1,
        split_method="vectorized",
        micro_batch=0,
        optim_name="sgd",
        perf=PerfConfig(fast_path="cuda_graph"),
        pipeline="resident",
        device=torch.device("cuda"),
        on_capture=lambda: told.append("capture"),
    )
    assert reason == "" and step.fast_path == "cuda_graph" and told == ["capture"]
