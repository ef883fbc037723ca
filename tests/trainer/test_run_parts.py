"""The parts of one run: the step chosen once, the ledger, the state every part saves and
puts back (and refuses when damaged), and what the sweep and the checkpoint need of a run."""

from __future__ import annotations

import dataclasses
import io
import os
import threading

import pytest
import torch

import trainer.engine.steps as steps
from trainer.config import Config, GnsConfig, PerfConfig
from trainer.data.datasets import Dataset, Split
from trainer.data.pipelines import ResidentBatches
from trainer.engine.checkpoint import FORMAT, run_state
from trainer.engine.evaluation import prepare_test
from trainer.engine.group import Group
from trainer.engine.ledger import EARLY_CUTS, LOSS_BLOCK, Ledger
from trainer.engine.run import Run, SweepRun
from trainer.engine.state import restore_problem
from trainer.engine.totals import _TOTALS_CHECKS, RunTotals
from trainer.measure.gns import NoiseScaleTracker
from trainer.measure.oscillation import GradCosine
from trainer.measure.probes import Probes
from trainer.models.builtin import build_model
from trainer.models.optim import check_loaded_state
from trainer.plan import RunSettings, RunSpec
from trainer.runlog import Emitter, ListSink
from trainer.runlog.controls import watch_parent
from trainer.sweep.gpu_pool import RemoteRun

CPU = torch.device("cpu")
SPEC = RunSpec(run_id="bs20", batch_size=20, lr=0.1, momentum=0.9)


def _split(n: int) -> Split:
    g = torch.Generator().manual_seed(1)
    return Split(torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g), torch.arange(n) % 10)


# ------------------------------------------------------------------ the step, chosen once


@pytest.mark.parametrize(
    ("chunks", "micro", "full", "last"),
    [
        (1, 0, "plain_step", "plain_step"),
        (4, 0, "split_step", "plain_step"),  # the last batch of 10 is not divisible by 4
        (1, 5, "accumulate_step", "accumulate_step"),
        (2, 5, "split_accumulate_step", "split_accumulate_step"),
    ],
)
def test_the_eager_step_is_picked_once_per_batch_size_not_per_iteration(
    monkeypatch, chunks, micro, full, last
):
    picked: list[int] = []
    real_body = steps.eager_body

    def counting(model, optimizer, n, *args):
        picked.append(n)
        return real_body(model, optimizer, n, *args)

    called: list[str] = []
    for name in ("plain_step", "split_step", "accumulate_step", "split_accumulate_step"):
        real = getattr(steps, name)
        monkeypatch.setattr(steps, name, lambda *a, _name=name, _real=real: called.append(_name) or _real(*a))
    monkeypatch.setattr(steps, "eager_body", counting)
    model = build_model("simple_cnn")
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    batches = ResidentBatches(_split(50), 20, CPU, seed=0)  # 20, 20 and a last batch of 10
    step = steps.EagerStep(
        model,
        opt,
        batches,
        batch_size=20,
        split_chunks=chunks,
        split_method="vectorized",
        micro_batch=micro,
        perf=PerfConfig(),
        device_type="cpu",
    )
    for epoch in range(2):
        for item in step.items(epoch):
            loss, n = step(item)
            assert loss.dim() == 0 and n == item[0].shape[0]
    assert picked == [20, 10]  # one pick per batch size for the whole run
    assert called == [full, full, last] * 2
    step.set_split(1)  # the app's split switch picks again, once
    assert picked == [20, 10, 20]


def test_a_split_request_that_does_not_divide_the_batch_falls_back_to_plain():
    assert steps.split_request(60, 4) == (4, "")
    assert steps.split_request(60, 7) == (1, "7 chunks do not divide batch size 60")
    assert steps.split_request(60, 1) == (1, "")


def test_bf16_and_channels_last_are_dressed_on_once():
    seen = []

    def body(x, y):
        seen.append((x.is_contiguous(memory_format=torch.channels_last), torch.is_autocast_enabled("cpu")))
        return x.sum()

    x = torch.zeros(2, 3, 4, 4)
    steps.dressed(body, "cpu", bf16=True, channels_last=True)(x, None)
    steps.dressed(body, "cpu", bf16=False, channels_last=False)(x, None)
    assert seen == [(True, True), (False, False)]
    assert steps.dressed(body, "cpu", bf16=False, channels_last=False) is body  # nothing added per iteration


# ------------------------------------------------------------------ the ledger


def test_the_ledger_flushes_a_block_in_one_go_and_stops_at_the_first_loss_that_is_not_finite():
    sink = ListSink()
    ledger = Ledger(SPEC, Emitter([sink]), target_accuracy=0.5)
    full = []
    for i in range(LOSS_BLOCK + 100):  # the run's first blocks are short (its first losses show at once)
        full.append(ledger.record(torch.tensor(float(i)), 20))
        if full[-1]:
            assert ledger.flush() == "" and not ledger.has_pending
    cuts = sorted(EARLY_CUTS)
    assert [i + 1 for i, due in enumerate(full) if due] == cuts + [cuts[-1] + LOSS_BLOCK]
    blocks = sink.of_type("losses")
    assert [b["first_iter"] for b in blocks] == [0] + cuts
    assert [v for b in blocks for v in b["values"]] == [float(i) for i in range(cuts[-1] + LOSS_BLOCK)]
    ledger.flush()
    for v in (1.0, 2.0, float("nan"), 3.0):
        ledger.record(torch.tensor(v), 20)
    why = ledger.flush()
    assert "loss became nan at iteration 1102 (epoch 1)" in why and "lr 0.1" in why
    assert sink.of_type("losses")[-1]["values"] == [1.0, 2.0]  # what came before the NaN is kept
    assert ledger.totals.iters == LOSS_BLOCK + 104 and ledger.totals.samples == 20 * (LOSS_BLOCK + 104)


def test_an_epoch_end_books_the_figures_and_the_target_once():
    sink = ListSink()
    ledger = Ledger(SPEC, Emitter([sink]), target_accuracy=0.5)
    for _epoch, acc in enumerate((0.4, 0.6, 0.7)):
        for v in (2.0, 1.0, 1.5):
            ledger.record(torch.tensor(v), 20)
        ledger.flush()
        ledger.end_epoch(
            wall=2.0,
            compute=1.5,
            test_loss=1.0,
            test_acc=acc,
            lr=0.1,
            split_chunks=1,
            probe_figures={"grad_cos": 0.25, "b_simple": 40.0},
        )
    ends = sink.of_type("epoch_end")
    assert [e["epoch"] for e in ends] == [1, 2, 3] and ends[0]["train_loss"] == pytest.approx(1.5)
    assert ends[0]["data_s"] == pytest.approx(0.5) and ends[0]["samples_per_s"] == pytest.approx(30.0)
    assert [e["epoch"] for e in sink.of_type("target_reached")] == [2]
    row = ledger.summary(status="done", split_chunks=1, optim="sgd", micro_batch=0)
    assert row["epochs"] == 3 and row["best_test_acc"] == 0.7 and row["iters_to_target"] == 6
    assert row["mean_epoch_wall_s"] == 2.0 and row["grad_cos"] == 0.25 and row["b_simple"] == 40.0


def test_the_ledger_state_round_trips_and_refuses_what_a_run_never_records():
    ledger = Ledger(SPEC, Emitter([]), 0.5)
    ledger.record(torch.tensor(1.0), 20)
    ledger.flush()
    ledger.end_epoch(
        wall=1.0, compute=0.5, test_loss=1.0, test_acc=0.6, lr=0.1, split_chunks=1, probe_figures={}
    )
    state = ledger.state_dict()
    other = Ledger(SPEC, Emitter([]), 0.5)
    other.load_state_dict(state)
    assert other.totals == ledger.totals and other.state_dict() == state
    assert set(_TOTALS_CHECKS) == {f.name for f in dataclasses.fields(RunTotals)}
    for bad in (
        {"totals": {**state["totals"], "epoch_walls": "1.0"}},
        {"totals": {**state["totals"], "iters": -1}},
        {"epoch": 2},
        {"totals": "garbage"},
        {"totals": {**state["totals"], "target": {"epoch": "x"}}},
    ):
        fresh = Ledger(SPEC, Emitter([]), 0.5)
        with pytest.raises((ValueError, KeyError)):
            fresh.load_state_dict({**state, **bad})
        assert fresh.totals == RunTotals()  # nothing half-loaded


# ------------------------------------------------------------------ probes, tracker, cosine


def _probed() -> Probes:
    torch.manual_seed(0)
    model = build_model("simple_cnn")
    probes = Probes(GnsConfig(every=1), batch_size=8, iters_per_epoch=8)
    x, y = torch.rand(8, 1, 28, 28), torch.arange(8) % 10
    for _ in range(2):
        probes.before_step(model, x, y)
        model.zero_grad()
        torch.nn.functional.nll_loss(model(x), y).backward()
        probes.after_step([p.grad for p in model.parameters()], probing=True)
    return probes


def test_probe_state_round_trips_in_the_checkpoint_layout():
    probes = _probed()
    state = probes.state_dict()
    # "noise": the batch-independent probe's state, there because gns.probe_every is on by default
    assert set(state) == {"g2", "trace", "count", "estimates", "cos_pending", "cos_prev", "cosines", "noise"}
    other = Probes(GnsConfig(every=1), batch_size=8, iters_per_epoch=8)
    other.load_state_dict(state)
    assert other.epoch_figures() == probes.epoch_figures()
    assert other.noise is not None and probes.noise is not None
    assert other.noise.state_dict()["next_at"] == probes.noise.state_dict()["next_at"]
    assert other.wants_grads == probes.wants_grads and other.estimates == probes.estimates == 2


@pytest.mark.parametrize(
    "bad",
    [
        {"estimates": -1},
        {"cos_pending": 1},
        {"cosines": [0.5]},
        {"count": "3"},
        {"g2": "x"},
        {"g2": None},
        {"cos_prev": torch.zeros(2, 2)},
    ],
)
def test_damaged_probe_state_is_refused(bad):
    state = {**_probed().state_dict(), **bad}
    with pytest.raises(ValueError):
        Probes(GnsConfig(every=1), batch_size=8, iters_per_epoch=8).load_state_dict(state)


def test_tracker_and_cosine_state_round_trip():
    tracker = NoiseScaleTracker(beta=0.5)
    tracker.update(torch.tensor(2.0), torch.tensor(10.0))
    again = NoiseScaleTracker(beta=0.5)
    again.load_state_dict(tracker.state_dict())
    assert again.b_simple == tracker.b_simple == pytest.approx(5.0)
    cos = GradCosine()
    cos.update_grads([torch.ones(3)])
    other = GradCosine()
    other.load_state_dict(cos.state_dict())
    assert other.update_grads([torch.ones(3)]).item() == pytest.approx(1.0)


def test_optimizer_state_of_another_shape_is_refused():
    model = build_model("simple_cnn")
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    check_loaded_state(opt)  # fresh: fine
    state = opt.state_dict()
    state["state"] = {0: {"momentum_buffer": torch.zeros(3)}}
    opt.load_state_dict(state)  # torch checks only the parameter counts
    with pytest.raises(ValueError, match="shape"):
        check_loaded_state(opt)


# ------------------------------------------------------------------ a run's state and surfaces


@pytest.fixture
def settings() -> RunSettings:
    cfg = Config()
    cfg.sweep.epochs = 2
    return RunSettings.from_config(cfg)


def _dataset() -> Dataset:
    return Dataset(name="tiny", train=_split(60), test=_split(20), note="", source="")


@pytest.mark.training
def test_a_run_saves_and_restores_its_state_without_the_checkpoint_knowing_it(settings):
    dataset = _dataset()
    run = Run(SPEC, settings, dataset, CPU, Emitter([]), prepare_test(dataset, CPU))
    saved = []

    def save(r: Run) -> None:  # what the checkpoint does at an epoch end: it only calls the run's state_dict
        buf = io.BytesIO()
        torch.save(run_state(r), buf)
        saved.append(buf.getvalue())

    run.on_epoch_end = save
    run.start()
    Group([run]).advance(80)  # one epoch of 3 iterations, and the first of the next
    state = torch.load(io.BytesIO(saved[0]), weights_only=True)
    assert state["format"] == FORMAT and state["epoch"] == 1 and state["iters"] == 3 and "rng" in state
    assert restore_problem(SPEC, settings, state) == ""
    again = Run(SPEC, settings, dataset, CPU, Emitter([]), prepare_test(dataset, CPU))
    again.start(restore=lambda r: r.load_state_dict(state))
    assert dataclasses.asdict(again.ledger.totals) == state["totals"]
    assert all(torch.equal(a, state["model"][k]) for k, a in again.parts.model.state_dict().items())
    other = dataclasses.replace(SPEC, lr=0.2)
    assert "does not belong to run" in restore_problem(other, settings, state)


def test_the_sweep_sees_local_and_remote_runs_through_one_protocol(settings):
    dataset = _dataset()
    assert isinstance(Run(SPEC, settings, dataset, CPU, Emitter([]), prepare_test(dataset, CPU)), SweepRun)
    remote = RemoteRun(SPEC, Emitter([]), worker=0, device="cuda:1")
    assert isinstance(remote, SweepRun)
    remote.finish("failed", "its worker died")
    assert remote.finished and remote.summary()["status"] == "failed"


def test_the_parent_watch_fires_once_when_the_parent_is_gone_and_ends_when_told():
    gone = threading.Event()
    watch_parent(os.getppid() + 1_000_000, gone.set, interval_s=0.01)  # "our parent" is not our parent
    assert gone.wait(5.0)
    stay = threading.Event()
    stop = threading.Event()
    thread = watch_parent(os.getppid(), stay.set, interval_s=0.01, until=stop.is_set)
    assert not stay.wait(0.1)
    stop.set()
    thread.join(5.0)
    assert not thread.is_alive() and not stay.is_set()


def test_a_batch_size_change_mid_epoch_goes_on_in_the_same_data_order_with_the_optimizer_carried(settings):
    """Batch 6 for 3 iterations (18 samples), then batch 12 with lr 0.05: the epoch's next batch is
    samples 18-29 of the same permutation, the epoch's 60 samples are trained in 4 more iterations (12, 12,
    12, 6), the next epoch is in batches of 12, and the optimizer (its momentum) is the same object, at the new lr."""
    dataset = _dataset()
    spec = dataclasses.replace(SPEC, run_id="bs6", batch_size=6)

    def started() -> tuple[Run, Group]:
        run = Run(spec, settings, dataset, CPU, Emitter([]), prepare_test(dataset, CPU))
        run.start()
        group = Group([run])
        group.advance(18)
        return run, group

    peek, group = started()
    group.change_batch(12, {"bs6": 0.05})
    order = ResidentBatches(dataset.train, 12, CPU, spec.seed).epoch_indices(0)
    x, y = peek.parts.next_item(peek.ledger.totals.epochs)
    assert x.shape[0] == 12 and torch.equal(y, dataset.train.labels[order[18:30]])

    run, group = started()
    optimizer, momentum = (
        run.parts.optimizer,
        [run.parts.optimizer.state[p]["momentum_buffer"] for p in run.parts.model.parameters()],
    )
    group.change_batch(12, {"bs6": 0.05})
    assert run.parts.step.batch_size == 12 and run.parts.optimizer is optimizer
    assert all(
        run.parts.optimizer.state[p]["momentum_buffer"] is m
        for p, m in zip(run.parts.model.parameters(), momentum)
    )
    group.advance(42)
    totals = run.ledger.totals
    assert (totals.epochs, totals.iters, totals.samples) == (0, 7, 60)
    group.advance(12)  # the epoch ends (its last batch was trained), and the next starts at batch 12
    totals = run.ledger.totals
    assert (totals.epochs, totals.iters, totals.samples) == (1, 8, 72)
    assert run.parts.optimizer.param_groups[0]["lr"] == 0.05 and totals.epoch_walls[0] > 0
