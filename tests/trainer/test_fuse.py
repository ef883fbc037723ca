"""Fused runs (perf.fuse_runs, trainer.engine.fuse): every run of a fused group trains as it would alone.

The reference is the same sweep with perf.fuse_runs = "off". Batched kernels add in another order than
K separate ones, so losses agree to float rounding, which training then carries forward: per-iteration
losses within 1e-5 relative (measured: at most 2e-6 over an epoch at batch 1), accuracies within a few
test samples (see _assert_same_training). Batch-1 SGD amplifies rounding like any perturbation: over a second epoch of 600
batch-1 steps one run in six (lr 0.05) drifted from 2e-5 to 0.1 relative within 25 steps past iteration
~880, so batch 1 is compared over one epoch (600 steps) and batch 60 over two.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from trainer.engine.fuse import CPU_AUTO_MAX_BATCH, plan_units
from trainer.engine.group import Group
from trainer.engine.stacked import FuseUnavailable, StackedSGD, model_reason
from trainer.engine.stacked_graph import StackedGraph
from trainer.engine.threads import cpu_threads
from trainer.models.builtin import SimpleModel
from trainer.models.optim import lr_at
from trainer.plan import RunSettings, run_specs
from trainer.runlog import Emitter, ListSink
from trainer.runlog.controls import Controls
from trainer.sweep.driver import run_sweep


@pytest.fixture(autouse=True)
def _shared_dataset(tiny_dataset, monkeypatch):
    monkeypatch.setattr("trainer.sweep.prepare.load_dataset", lambda cfg, **kwargs: tiny_dataset)


def _sweep(cfg, controls=None, run_dir=""):
    sink = ListSink()
    result = run_sweep(cfg, Emitter([sink]), controls=controls, run_dir=run_dir)
    return result, sink


def _grid(tiny_config, batch, fuse, **extra):
    sections = {
        "sweep": {
            "batch_sizes": [batch],
            "lrs": [0.01, 0.05, 0.2],
            "seeds": 2,
            "epochs": 2,
            "eval_every": 0,
            **extra.pop("sweep", {}),
        },
        "optim": {"momentum": 0.5, **extra.pop("optim", {})},
        "perf": {"fuse_runs": fuse},
        **extra,
    }
    return tiny_config(**sections)


def _losses(sink):
    out: dict[str, list[float]] = {}
    for e in sink.of_type("losses"):
        out.setdefault(e["run"], []).extend(e["values"])
    return out


def _accuracies(sink):
    out: dict[str, list[float]] = {}
    for e in sink.of_type("epoch_end"):
        out.setdefault(e["run"], []).append(e["test_acc"])
    return out


def _close(a, b, rel):
    return all(
        math.isclose(x, y, rel_tol=rel, abs_tol=1e-7) or (math.isnan(x) and math.isnan(y))
        for x, y in zip(a, b)
    )


def _rel(x, y):
    return 0.0 if x == y else abs(x - y) / max(abs(y), 1e-7)


def _assert_same_training(fused, alone, first=20):
    """Fused = alone to float rounding: every run's first `first` losses within 1e-5 relative, the median
    difference of all losses under 1e-6 (measured: ~1e-7), at least half the runs within 1e-5 at every
    iteration, and their test accuracies within 2 samples of 200 at every epoch.

    Why not every run at every iteration: the batched kernels round differently (1e-7), and a run that
    such a difference tips over a discrete choice (which element a max-pool passes on) then drifts as it
    would from any perturbation: seen at batch 6 with warm-up, from 6e-7 to 1e-5 in one step around
    iteration 25-65, growing to 1e-2 by the epoch's end; runs trained alone with 2 threads instead of 1
    drift the same way, at the same iterations. StackedSGD's own step equals torch.optim.SGD's
    (test_stacked_sgd_step_equals_torch_sgd)."""
    lf, la = _losses(fused), _losses(alone)
    assert lf.keys() == la.keys() and len(lf) >= 6
    diffs, exact = [], {}
    for run in la:
        assert len(lf[run]) == len(la[run]), run
        rel = [_rel(x, y) for x, y in zip(lf[run], la[run])]
        assert max(rel[:first]) <= 1e-5, (run, max(rel[:first]))
        diffs.extend(rel)
        exact[run] = max(rel) <= 1e-5
    assert sorted(diffs)[len(diffs) // 2] <= 1e-6
    assert sum(exact.values()) * 2 >= len(exact), exact
    af, aa = _accuracies(fused), _accuracies(alone)
    for run in aa:
        if exact[run]:  # a drifted run near chance (this tiny set) may land many samples apart
            assert af[run] == pytest.approx(aa[run], abs=2.01 / 200), run  # 200 test samples


@pytest.mark.parametrize("batch,epochs", [(1, 1), (60, 2)])
def test_fused_grid_trains_every_run_as_it_would_alone(tiny_config, batch, epochs):
    """3 lrs x 2 seeds, one group of 6 (perf.fuse_runs = "on": batch 60 is above auto's CPU limit)."""
    fused_result, fused = _sweep(_grid(tiny_config, batch, "on", sweep={"epochs": epochs}))
    alone_result, alone = _sweep(_grid(tiny_config, batch, "off", sweep={"epochs": epochs}))
    assert fused_result.status == alone_result.status == "done"
    started = fused.of_type("run_started")
    assert len(started) == 6 and all(e["fused"] and len(e["fused_runs"]) == 6 for e in started)
    assert all(not e["fused"] and e["fused_reason"] == "" for e in alone.of_type("run_started"))
    _assert_same_training(fused, alone)
    group = fused.of_type("fused_group")
    assert len(group) == 1 and group[0]["steps"] == epochs * math.ceil(600 / batch) and group[0]["wall_s"] > 0


def test_warm_up_and_weight_decay_per_run_match_training_alone(tiny_config):
    extra = {"optim": {"warmup_epochs": 0.5, "weight_decay": 5e-3}}
    _, fused = _sweep(_grid(tiny_config, 6, "auto", **dict(extra)))
    _, alone = _sweep(_grid(tiny_config, 6, "off", **dict(extra)))
    assert all(e["fused"] for e in fused.of_type("run_started"))
    _assert_same_training(fused, alone)


def test_a_diverging_member_ends_alone_and_the_others_train_on(tiny_config):
    """lr 1e20 overflows the weights at its first steps (NaN loss: diverged); the others are untouched."""
    grid = {"sweep": {"lrs": [0.01, 0.05, 1e20]}}
    fused_result, fused = _sweep(_grid(tiny_config, 6, "auto", **grid))
    _, alone = _sweep(_grid(tiny_config, 6, "off", **grid))
    status = {e["run"]: e["status"] for e in fused.of_type("run_finished")}
    assert status == {e["run"]: e["status"] for e in alone.of_type("run_finished")}
    assert sorted(status.values()) == ["diverged"] * 2 + ["done"] * 4
    lf, la = _losses(fused), _losses(alone)
    for run, s in status.items():
        if s == "done":  # trained on as alone (to rounding: see _assert_same_training)
            rel = [_rel(x, y) for x, y in zip(lf[run], la[run])]
            assert (
                len(lf[run]) == len(la[run]) and max(rel[:20]) <= 1e-5 and sorted(rel)[len(rel) // 2] <= 1e-6
            ), run
        else:  # diverged at the same iteration as alone, and no loss after it
            assert len(lf[run]) == len(la[run]), run
    reasons = {e["run"]: e["reason"] for e in fused.of_type("run_finished") if e["status"] == "diverged"}
    assert reasons == {
        e["run"]: e["reason"] for e in alone.of_type("run_finished") if e["status"] == "diverged"
    }
    assert fused_result.status == "done"


def test_members_share_the_group_time_and_it_is_recorded(tiny_config):
    _, sink = _sweep(_grid(tiny_config, 6, "auto"))
    group = sink.of_type("fused_group")[0]
    epochs = sink.of_type("epoch_end")
    wall = sum(e["wall_s"] for e in epochs)
    compute = sum(e["compute_s"] for e in epochs)
    # each run's epoch time is its share: together they are the group's time
    assert wall == pytest.approx(group["wall_s"], rel=1e-6)
    assert compute == pytest.approx(group["compute_s"], rel=1e-6)
    assert all(0 <= e["compute_s"] <= e["wall_s"] for e in epochs)


def test_auto_fuses_small_cpu_batches_and_says_why_not_for_the_others(tiny_config):
    cfg = tiny_config(sweep={"batch_sizes": [CPU_AUTO_MAX_BATCH, 60], "lrs": [0.01, 0.05], "epochs": 1})
    _, sink = _sweep(cfg)
    started = {e["run"]: e for e in sink.of_type("run_started")}
    small = [e for e in started.values() if e["batch_size"] == CPU_AUTO_MAX_BATCH]
    large = [e for e in started.values() if e["batch_size"] == 60]
    assert all(e["fused"] and e["fused_reason"] == "" for e in small)
    # a group's steps take the threads of its whole work: batch x runs (trainer.engine.threads' rule)
    assert all(e["cpu_threads"] == cpu_threads(CPU_AUTO_MAX_BATCH * 2) for e in small)
    assert all(not e["fused"] and "bench/fuse.py" in e["fused_reason"] for e in large)


def test_plan_names_the_reason_each_run_trains_alone(tiny_config):
    cfg = tiny_config(sweep={"batch_sizes": [4, 8], "lrs": [0.1, 0.2]}, perf={"fuse_runs": "auto"})
    cfg.variants = []
    specs = run_specs(cfg)
    settings = RunSettings.from_config(cfg)
    units = plan_units(specs, settings, torch.device("cpu"), "eager")
    assert [(u.fused, [s.run_id for s in u.specs]) for u in units] == [
        (True, ["bs4-lr0.1", "bs4-lr0.2"]),
        (True, ["bs8-lr0.1", "bs8-lr0.2"]),
    ]
    lone = tiny_config(sweep={"batch_sizes": [4, 8]}, perf={"fuse_runs": "auto"})
    units = plan_units(run_specs(lone), RunSettings.from_config(lone), torch.device("cpu"), "eager")
    assert all(not u.fused and "no other run of batch" in u.reason for u in units)
    off = tiny_config(sweep={"batch_sizes": [4], "lrs": [0.1, 0.2]}, perf={"fuse_runs": "off"})
    units = plan_units(run_specs(off), RunSettings.from_config(off), torch.device("cpu"), "eager")
    assert [u.fused for u in units] == [False, False] and all(u.reason == "" for u in units)
    lars = tiny_config(sweep={"batch_sizes": [4], "lrs": [0.1, 0.2]}, optim={"name": "lars"})
    units = plan_units(run_specs(lars), RunSettings.from_config(lars), torch.device("cpu"), "eager")
    assert all("SGD only" in u.reason for u in units)
    graph = tiny_config(sweep={"batch_sizes": [4], "lrs": [0.1, 0.2]})
    units = plan_units(run_specs(graph), RunSettings.from_config(graph), torch.device("cuda"), "cuda_graph")
    assert all("CUDA-graph" in u.reason for u in units)


def test_models_with_batch_norm_or_dropout_train_alone_with_the_reason():
    bn = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    drop = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.1))
    assert "batch norm" in model_reason(bn)
    assert "dropout" in model_reason(drop)
    assert model_reason(SimpleModel()) == ""


def test_stacked_sgd_step_equals_torch_sgd():
    """Fused steps of 3 models = torch.optim.SGD on each (lr, momentum, weight decay, warm-up differ)."""
    torch.manual_seed(0)
    hyper = [(0.1, 0.0, 0.0), (0.05, 0.9, 1e-3), (0.2, 0.5, 0.0)]
    models = [SimpleModel() for _ in hyper]
    refs = [SimpleModel() for _ in hyper]
    for m, r in zip(models, refs):
        r.load_state_dict(m.state_dict())
    opts = [
        torch.optim.SGD(m.parameters(), lr=lr, momentum=mu, weight_decay=wd)
        for m, (lr, mu, wd) in zip(models, hyper)
    ]
    ref_opts = [
        torch.optim.SGD(r.parameters(), lr=lr, momentum=mu, weight_decay=wd)
        for r, (lr, mu, wd) in zip(refs, hyper)
    ]
    stack = StackedSGD(models[0], models, opts, hyper)
    stack.set_warmup([lr for lr, _, _ in hyper], [20] * len(hyper))
    for it in range(30):  # a linear warm-up over 20 steps, then the lrs themselves
        lrs = [lr_at(lr, it, 20) for lr, _, _ in hyper]
        stack.warm_up(it)
        xs, ys = torch.rand(3, 5, 1, 28, 28), torch.randint(0, 10, (3, 5))
        losses = stack.step(xs, ys)
        for i, (r, o) in enumerate(zip(refs, ref_opts)):
            o.param_groups[0]["lr"] = lrs[i]
            o.zero_grad()
            loss = torch.nn.functional.nll_loss(r(xs[i]), ys[i])
            loss.backward()
            o.step()
            assert losses[i].item() == pytest.approx(loss.item(), rel=1e-5)
    for m, r, o, ro in zip(models, refs, opts, ref_opts):
        for p, q in zip(m.parameters(), r.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)  # the member's own parameters are its row
            if ro.state[q]:
                torch.testing.assert_close(
                    o.state[p]["momentum_buffer"], ro.state[q]["momentum_buffer"], rtol=1e-5, atol=1e-6
                )


def test_a_group_needs_two_prepared_runs():
    with pytest.raises(FuseUnavailable):
        Group([], "g", fused=True)


def test_split_toggle_mid_run_matches_training_alone(tiny_config):
    """The app's split switch at iteration 40 of 100: members then take their own chunk steps."""

    def run(fuse):
        controls = Controls()
        cfg = _grid(tiny_config, 6, fuse, sweep={"epochs": 1})
        sink = ListSink()

        class Switch:
            def emit(self, event):
                sink.emit(event)
                if event["type"] == "losses" and event["first_iter"] == 0 and not controls.split_chunks:
                    controls.apply({"cmd": "split", "enabled": True, "chunks": 3})

        run_sweep(cfg, Emitter([Switch()]), controls=controls)
        return sink

    fused, alone = run("auto"), run("off")
    assert {e["run"] for e in fused.of_type("mode_changed")} == {
        e["run"] for e in alone.of_type("mode_changed")
    }
    lf, la = _losses(fused), _losses(alone)
    # the switch lands at a block boundary that depends on the schedule: compare each run's own switch point
    for run in la:
        assert len(lf[run]) == len(la[run])
    sw_f = {e["run"]: e["iter"] for e in fused.of_type("mode_changed")}
    sw_a = {e["run"]: e["iter"] for e in alone.of_type("mode_changed")}
    for run in sw_f:
        if sw_f[run] == sw_a[run]:
            assert _close(lf[run], la[run], 1e-4), run
    assert any(sw_f[r] == sw_a[r] for r in sw_f)


def test_a_fused_sweep_interrupted_in_epoch_2_resumes_as_a_fused_group_and_ends_as_if_uninterrupted(
    data_root, tmp_path, monkeypatch
):
    """Ctrl-C in the second epoch of a group of 2 lrs x 2 seeds; `resume` restores each run from its own
    checkpoint, fuses them again, and every loss and epoch result equals the uninterrupted sweep's, exactly."""
    from tests.trainer.test_resume import sweep_args, training_results
    from trainer.cli.exits import EXIT_INTERRUPTED
    from trainer.cli.main import main

    grid = [
        "--set",
        "sweep.batch_sizes=[6]",
        "--set",
        "sweep.lrs=[0.05,0.1]",
        "--set",
        "sweep.seeds=2",
        "--set",
        "sweep.epochs=2",
    ]
    reference = tmp_path / "reference"
    assert main(sweep_args(data_root, reference, *grid)) == 0
    out = tmp_path / "run"
    real, calls = StackedSGD.step, {"n": 0}

    def step(self, xs, ys):
        calls["n"] += 1
        if calls["n"] == 150:  # iteration 50 of epoch 2
            raise KeyboardInterrupt
        return real(self, xs, ys)

    monkeypatch.setattr(StackedSGD, "step", step)
    assert main(sweep_args(data_root, out, *grid)) == EXIT_INTERRUPTED
    monkeypatch.undo()
    assert main(["resume", str(out), "--quiet"]) == 0
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    resumed = [e for e in events if e["type"] == "run_started" and e.get("resumed_from_epoch") == 1]
    assert len(resumed) == 4 and all(len(e["fused_runs"]) == 4 for e in resumed)
    assert training_results(out) == training_results(reference)


CUDA = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.mark.parametrize("batch", [1, 6])
@pytest.mark.parametrize("_", [pytest.param(None, marks=CUDA)])
def test_on_cuda_a_fused_grid_trains_inside_one_cuda_graph_as_the_same_runs_alone(tiny_config, batch, _):
    """perf.fuse_runs = "on" on a GPU: the group's stacked step is replayed as one CUDA graph (run_started
    says cuda_graph), equal to the same runs alone, each replaying its own graph, to rounding; under "auto"
    the CUDA-graph runs train apart and say why."""
    fused_result, fused = _sweep(_grid(tiny_config, batch, "on", sweep={"epochs": 1, "device": "cuda"}))
    _, alone = _sweep(_grid(tiny_config, batch, "off", sweep={"epochs": 1, "device": "cuda"}))
    assert fused_result.status == "done"
    started = fused.of_type("run_started")
    assert all(e["fused"] and e["fast_path"] == "cuda_graph" for e in started)
    assert all(e["fast_path"] == "cuda_graph" for e in alone.of_type("run_started"))
    _assert_same_training(fused, alone)
    _, auto = _sweep(_grid(tiny_config, batch, "auto", sweep={"epochs": 1, "device": "cuda"}))
    assert all(not e["fused"] and "CUDA-graph" in e["fused_reason"] for e in auto.of_type("run_started"))


def _graph_against_eager(device, capture):
    """The same 3 runs stepped by StackedGraph and by the eager StackedSGD from the same weights: warm-up
    lrs that change at every step (a graph that baked its lr in would drift), batch indices that change (a
    stale index buffer would train on one batch), a smaller last batch (eager), and a run leaving the group
    halfway (the graph is captured again on the new stacked tensors). Returns the graph."""
    torch.manual_seed(0)
    hyper = [(0.1, 0.0, 0.0), (0.05, 0.9, 1e-3), (0.2, 0.5, 0.0)]
    images, labels = torch.rand(64, 1, 28, 28, device=device), torch.randint(0, 10, (64,), device=device)

    def stack_of():
        torch.manual_seed(1)
        models = [SimpleModel().to(device) for _ in hyper]
        opts = [
            torch.optim.SGD(m.parameters(), lr=lr, momentum=mu, weight_decay=wd)
            for m, (lr, mu, wd) in zip(models, hyper)
        ]
        stack = StackedSGD(models[0], models, opts, hyper)
        stack.set_warmup([lr for lr, _, _ in hyper], [12] * len(hyper))
        return stack

    graphed, eager = stack_of(), stack_of()
    graph = StackedGraph(graphed, images, labels, 4, warmup=2, capture=capture)
    g = torch.Generator(device="cpu").manual_seed(2)
    for it in range(20):
        if it == 10:  # the second run ends: both keep rows 0 and 2
            graphed.keep([0, 2])
            graph.reset()
            eager.keep([0, 2])
        size = 3 if it == 9 else 4  # an epoch's smaller last batch
        items = [torch.randperm(64, generator=g)[:size].to(device) for _ in range(graphed.k)]
        graphed.warm_up(it)
        eager.warm_up(it)
        got = graph.step(items)
        idx = torch.stack(items)
        want = eager.step(images[idx], labels[idx])
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for n in graphed.names:
        torch.testing.assert_close(graphed.params[n], eager.params[n], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(graphed.momentum[n], eager.momentum[n], rtol=1e-5, atol=1e-6)
    return graph


def test_the_stacked_graph_body_steps_as_the_eager_stacked_step():
    """On a CPU nothing is captured: after the warm-up the static-buffer body the graph would capture runs
    eagerly, so this checks its logic (index buffer, lr read in place, losses buffer, reset) without a GPU."""
    graph = _graph_against_eager(torch.device("cpu"), capture=False)
    assert graph.replays >= 10 and graph.eager_steps >= 5 and not graph.captured


@pytest.mark.parametrize("_", [pytest.param(None, marks=CUDA)])
def test_on_cuda_the_captured_stacked_step_equals_the_eager_one(_):
    graph = _graph_against_eager(torch.device("cuda"), capture=True)
    assert graph.capture_error == "" and graph.captured and graph.replays >= 10


def test_a_stopped_sweep_ends_its_fused_runs_stopped_and_records_the_group(tiny_config):
    controls = Controls()
    sink = ListSink()

    class StopEarly:
        def emit(self, event):
            sink.emit(event)
            if event["type"] == "losses" and event["first_iter"] == 0:
                controls.apply({"cmd": "stop"})

    result = run_sweep(_grid(tiny_config, 6, "auto"), Emitter([StopEarly()]), controls=controls)
    assert result.status == "stopped"
    assert {e["status"] for e in sink.of_type("run_finished")} == {"stopped"} and len(
        sink.of_type("run_finished")
    ) == 6
    group = sink.of_type("fused_group")
    assert len(group) == 1 and len(group[0]["runs"]) == 6 and group[0]["steps"] >= 1


def test_the_sequential_schedule_trains_a_fused_group_to_the_same_results(tiny_config):
    """sweep.schedule = "sequential": the group trains to its end before the next unit starts; the same
    fused steps give the same losses as the interleaved schedule, exactly."""
    grid = {"sweep": {"batch_sizes": [6, 60], "epochs": 1}}
    _, inter = _sweep(_grid(tiny_config, 6, "auto", **{"sweep": dict(grid["sweep"], schedule="interleaved")}))
    _, seq = _sweep(_grid(tiny_config, 6, "auto", **{"sweep": dict(grid["sweep"], schedule="sequential")}))
    assert _losses(seq) == _losses(inter)
    runs = [e["run"] for e in seq.of_type("losses")]
    first_bs60 = next(i for i, r in enumerate(runs) if r.startswith("bs60"))
    assert all(r.startswith("bs6-") for r in runs[:first_bs60]) and len(seq.of_type("fused_group")) == 1
