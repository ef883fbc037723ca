"""A model with batch norm (the second built-in, resnet_small): the fast path's body equals the
eager step, split-backward works and says what it does with the statistics, the probes leave them alone,
and a sweep with every feature on finishes and says so in run_started."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trainer.config import GnsConfig
from trainer.data.datasets import Split
from trainer.data.pipelines import ResidentBatches
from trainer.engine.cuda_graph import GraphStep, index_batches
from trainer.engine.split import plain_step, split_step
from trainer.measure.noise_probe import probe_terms
from trainer.measure.probes import Probes
from trainer.models.builtin import ResNetSmall
from trainer.models.grads import batch_norms, chunk_gradients
from trainer.runlog import Emitter, ListSink
from trainer.sweep.driver import run_sweep

LR, MOMENTUM = 0.05, 0.9


def _model(seed: int = 0) -> ResNetSmall:
    torch.manual_seed(seed)
    return ResNetSmall(in_channels=1, width=4)


def _data(n: int = 96) -> Split:
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g)
    labels = (images[:, 10:18, 10:18].float().mean((1, 2)) / 25.6).long().clamp(0, 9)
    return Split(images, labels)


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].double(), b[k].double(), rtol=1e-4, atol=1e-5), k


def test_resnet_small_has_batch_norm_and_takes_32x32_colour_images():
    model = ResNetSmall()
    assert batch_norms(model)
    out = model(torch.rand(4, 3, 32, 32))
    assert out.shape == (4, 10) and torch.allclose(out.exp().sum(1), torch.ones(4))


@pytest.mark.parametrize("chunks", [1, 4])
def test_the_fast_path_body_equals_the_eager_steps_with_batch_norm(chunks):
    """GraphStep without capture (CPU) runs the body a CUDA graph captures: same weights and running stats."""
    batches = ResidentBatches(_data(), 16, torch.device("cpu"), seed=0)
    eager = _model()
    opt = torch.optim.SGD(eager.parameters(), lr=LR, momentum=MOMENTUM)
    for epoch in range(2):
        for x, y in batches.batches(epoch):
            (
                split_step(eager, opt, x, y, chunks, "vectorized")
                if chunks > 1
                else plain_step(eager, opt, x, y)
            )
    graphed = _model()
    step = GraphStep(
        graphed,
        torch.optim.SGD(graphed.parameters(), lr=LR, momentum=MOMENTUM),
        batches.images,
        batches.labels,
        16,
        split_chunks=chunks,
        capture=False,
    )
    for epoch in range(2):
        for idx in index_batches(batches.epoch_indices(epoch), 16):
            step.step(idx)
    assert step.replays > 0, "the graph's body ran"
    _assert_close(_state(eager), _state(graphed))
    assert int(graphed.stem[1].num_batches_tracked) > 0


def test_vectorized_split_normalises_each_chunk_by_itself_and_updates_running_stats_once():
    model = _model()
    x, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    before = _state(model)
    _, grads = chunk_gradients(model, x, y, 4, "vectorized")
    # Each chunk's gradient is the plain gradient of that chunk alone (its own batch statistics).
    for i in range(4):
        ref = _model()
        ref.load_state_dict(before)
        F.nll_loss(ref(x[4 * i : 4 * i + 4]), y[4 * i : 4 * i + 4]).backward()
        for g, p in zip(grads, ref.parameters()):
            assert torch.allclose(g[i], p.grad, rtol=1e-4, atol=1e-6)
    # Running statistics: exactly one update, by the whole batch (what a plain step's forward does).
    ref = _model()
    ref.load_state_dict(before)
    with torch.no_grad():
        ref(x)
    _assert_close(
        {k: v for k, v in _state(model).items() if "running" in k or "tracked" in k},
        {k: v for k, v in _state(ref).items() if "running" in k or "tracked" in k},
    )


def test_retain_graph_split_normalises_with_the_whole_batch():
    model = _model()
    x, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    loss, grads = chunk_gradients(model, x, y, 4, "retain_graph")
    assert torch.isfinite(loss) and all(torch.isfinite(g).all() for g in grads)
    assert int(model.stem[1].num_batches_tracked) == 1


def test_the_probes_leave_the_running_statistics_alone():
    model = _model()
    x, y = torch.rand(32, 1, 28, 28), torch.randint(0, 10, (32,))
    before = _state(model)
    probes = Probes(GnsConfig(every=1, chunks=4), 32, iters_per_epoch=10)
    probes.before_step(model, x, y)
    g2, trace = probe_terms(model, x, y, chunk_size=8)
    assert probes.estimates == 1 and trace > 0
    _assert_close(_state(model), before)


def test_a_resnet_small_sweep_with_split_and_probes_finishes_and_says_what_batch_norm_gets(
    tiny_config, tiny_dataset, monkeypatch
):
    monkeypatch.setattr("trainer.sweep.prepare.load_dataset", lambda cfg, **kwargs: tiny_dataset)
    cfg = tiny_config(
        model={"name": "resnet_small", "args": {"in_channels": 1, "width": 4}},
        split_backward={"enabled": True, "chunks": 4},
        gns={"every": 5, "chunks": 4, "probe_every": 300},
        sweep={"batch_sizes": [20, 200], "epochs": 1, "eval_every": 300},
    )
    sink = ListSink()
    result = run_sweep(cfg, Emitter([sink]))
    assert result.status == "done"
    assert [e["status"] for e in sink.of_type("run_finished")] == ["done", "done"]
    for e in sink.of_type("run_started"):
        assert e["model"] == "resnet_small" and e["split_chunks"] == 4
        assert "batch norm" in e["batch_norm"] and "split-backward (vectorized)" in e["batch_norm"]
    assert all(e["test_acc"] is not None for e in sink.of_type("epoch_end"))


def test_a_model_without_batch_norm_says_nothing_about_it(tiny_config, tiny_dataset, monkeypatch):
    monkeypatch.setattr("trainer.sweep.prepare.load_dataset", lambda cfg, **kwargs: tiny_dataset)
    sink = ListSink()
    run_sweep(tiny_config(sweep={"batch_sizes": [200], "epochs": 1}), Emitter([sink]))
    assert [e["batch_norm"] for e in sink.of_type("run_started")] == [""]


@pytest.mark.training
def test_fashion_mnist_from_debian_trains_the_second_built_in_for_one_epoch_on_a_slice(tmp_path):
    from trainer.config import load_config
    from trainer.data.datasets import load_dataset
    from trainer.data.datasets.idx import SYSTEM_FASHION_MNIST

    if not (SYSTEM_FASHION_MNIST / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    cfg = load_config(
        root / "experiments" / "fashion-mnist.toml",
        overrides=[
            f'data.root="{tmp_path}"',
            "data.download=false",
            'data.fallback=""',
            "data.train_samples=512",
            "data.test_samples=256",
            "sweep.batch_sizes=[32,128]",
            "sweep.epochs=1",
            "sweep.device=cpu",
            "model.args.width=4",
            "gns.probe_every=0",
        ],
    )
    dataset = load_dataset(cfg.data)
    assert (
        dataset.name == "fashion-mnist" and dataset.source == str(SYSTEM_FASHION_MNIST) and not dataset.note
    )
    sink = ListSink()
    assert run_sweep(cfg, Emitter([sink]), dataset=dataset).status == "done"
    assert sink.events[0]["dataset"] == "fashion-mnist"
    assert [(e["run"], e["epoch"]) for e in sink.of_type("epoch_end")] == [("bs32", 1), ("bs128", 1)]
    assert all(e["batch_norm"] for e in sink.of_type("run_started"))
