"""A sweep end to end on tiny data, and how faults end only their own run."""

from __future__ import annotations

import math
import weakref

import pytest
import torch

import trainer.engine.steps as steps
from trainer.models.optim import lr_at
from trainer.runlog import Emitter, ListSink
from trainer.runlog.controls import Controls
from trainer.sweep.driver import run_sweep


@pytest.fixture(autouse=True)
def _shared_dataset(tiny_dataset, monkeypatch):
    """Every sweep here trains on the same generated data; make it once."""
    monkeypatch.setattr("trainer.sweep.prepare.load_dataset", lambda cfg, **kwargs: tiny_dataset)


def _sweep(cfg, controls=None):
    sink = ListSink()
    result = run_sweep(cfg, Emitter([sink]), controls=controls)
    return result, sink


def test_two_batch_sizes_finish_with_every_event_of_the_contract(tiny_config):
    result, sink = _sweep(tiny_config())
    assert result.status == "done"
    types = [e["type"] for e in sink.events]
    assert types[0] == "sweep_started" and types[-1] == "sweep_finished"
    started = sink.events[0]
    assert started["dataset"] == "synthetic-digits" and started["device"] == "cpu"
    assert [r["run"] for r in started["runs"]] == ["bs20", "bs200"]
    for run_id, batch in (("bs20", 20), ("bs200", 200)):
        epochs = [e for e in sink.of_type("epoch_end") if e["run"] == run_id]
        assert [e["epoch"] for e in epochs] == [1, 2]
        assert all(e["samples"] == 600 and e["iters"] == math.ceil(600 / batch) for e in epochs)
        finished = [e for e in sink.of_type("run_finished") if e["run"] == run_id]
        assert finished[0]["status"] == "done"
        assert finished[0]["summary"]["epochs"] == 2


def test_losses_cover_every_iteration_once_in_order(tiny_config):
    _, sink = _sweep(tiny_config())
    for run_id, batch in (("bs20", 20), ("bs200", 200)):
        blocks = [e for e in sink.of_type("losses") if e["run"] == run_id]
        iters = []
        for block in blocks:
            iters.extend(range(block["first_iter"], block["first_iter"] + len(block["values"])))
        assert iters == list(range(2 * math.ceil(600 / batch)))
        assert all(isinstance(v, float) and math.isfinite(v) for b in blocks for v in b["values"])


def test_interleaved_schedule_alternates_runs_while_sequential_does_not(tiny_config):
    def order(schedule):
        _, sink = _sweep(tiny_config(sweep={"schedule": schedule}))
        runs = [e["run"] for e in sink.of_type("losses")]
        return [r for i, r in enumerate(runs) if i == 0 or runs[i - 1] != r]

    assert len(order("interleaved")) > 2  # bs20, bs200, bs20, ...
    assert order("sequential") == ["bs20", "bs200"]


def test_epoch_time_is_data_plus_compute(tiny_config):
    _, sink = _sweep(tiny_config())
    for e in sink.of_type("epoch_end"):
        assert e["wall_s"] > 0 and 0 < e["compute_s"] <= e["wall_s"]
        assert e["data_s"] == pytest.approx(e["wall_s"] - e["compute_s"], abs=1e-9)
        assert e["samples_per_s"] == pytest.approx(e["samples"] / e["wall_s"])


def test_target_reached_reports_cumulative_figures(tiny_config):
    # epoch-end evaluations only: reached at the first epoch end
    _, sink = _sweep(tiny_config(sweep={"target_accuracy": 0.01, "eval_every": 0}))
    for run_id in ("bs20", "bs200"):
        target = [e for e in sink.of_type("target_reached") if e["run"] == run_id]
        first_epoch = [e for e in sink.of_type("epoch_end") if e["run"] == run_id][0]
        assert len(target) == 1
        assert target[0]["epoch"] == 1 and target[0]["samples"] == 600
        assert target[0]["wall_s"] == pytest.approx(first_epoch["wall_s"])
        assert target[0]["compute_s"] == pytest.approx(first_epoch["compute_s"])


def test_unreachable_target_leaves_time_to_target_empty(tiny_config):
    result, _ = _sweep(tiny_config(sweep={"target_accuracy": 1.0}))
    assert all(s["time_to_target_s"] is None for s in result.summaries)


def _failing_step(batch_size, make_error, at_iter=0):
    """A plain step that fails for one batch size at a given iteration of each model it steps (the run's, and
    the one that times that batch size's step alone before the sweep trains), real otherwise."""
    real = steps.plain_step
    calls: weakref.WeakKeyDictionary = (
        weakref.WeakKeyDictionary()
    )  # per model, never confused with a freed one

    def step(model, opt, x, y):
        if x.shape[0] == batch_size:
            calls[model] = calls.get(model, 0) + 1
            if calls[model] > at_iter:
                result = make_error()
                if isinstance(result, torch.Tensor):
                    return result
        return real(model, opt, x, y)

    return step


def test_out_of_memory_ends_only_that_run(tiny_config, monkeypatch):
    def oom():
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(steps, "plain_step", _failing_step(200, oom))
    result, sink = _sweep(tiny_config())
    status = {e["run"]: e for e in sink.of_type("run_finished")}
    assert status["bs200"]["status"] == "oom"
    assert "batch size 200" in status["bs200"]["reason"] and "smaller batch" in status["bs200"]["reason"]
    assert status["bs20"]["status"] == "done"
    assert result.status == "done"


def test_nan_loss_ends_that_run_as_diverged_at_its_iteration(tiny_config, monkeypatch):
    monkeypatch.setattr(steps, "plain_step", _failing_step(20, lambda: torch.tensor(float("nan")), at_iter=7))
    result, sink = _sweep(tiny_config())
    status = {e["run"]: e for e in sink.of_type("run_finished")}
    assert status["bs20"]["status"] == "diverged"
    assert "iteration 7" in status["bs20"]["reason"]
    assert status["bs200"]["status"] == "done"
    bs20_iters = [b["first_iter"] + len(b["values"]) for b in sink.of_type("losses") if b["run"] == "bs20"]
    assert max(bs20_iters) == 7  # losses up to the divergence, none after


def test_unexpected_error_fails_only_that_run_with_its_traceback(tiny_config, monkeypatch):
    def boom():
        raise ValueError("shape mismatch in a user model")

    monkeypatch.setattr(steps, "plain_step", _failing_step(20, boom))
    result, sink = _sweep(tiny_config())
    status = {e["run"]: e for e in sink.of_type("run_finished")}
    assert status["bs20"]["status"] == "failed" and "ValueError" in status["bs20"]["traceback"]
    assert status["bs200"]["status"] == "done"
    assert result.status == "failed"


def test_keyboard_interrupt_stops_every_run_and_finishes_the_event_stream(tiny_config, monkeypatch):
    def interrupt():
        raise KeyboardInterrupt

    monkeypatch.setattr(steps, "plain_step", _failing_step(200, interrupt, at_iter=1))
    sink = ListSink()
    with pytest.raises(KeyboardInterrupt):
        run_sweep(tiny_config(), Emitter([sink]))
    last = sink.events[-1]
    assert last["type"] == "sweep_finished" and last["status"] == "stopped"
    assert {e["status"] for e in sink.of_type("run_finished")} <= {"stopped", "done"}
    assert len(sink.of_type("run_finished")) == 2


def test_split_control_switches_at_an_iteration_boundary_and_is_recorded(tiny_config):
    controls = Controls()
    controls.apply({"cmd": "split", "enabled": True, "chunks": 4})
    _, sink = _sweep(tiny_config(), controls=controls)
    changes = {e["run"]: e for e in sink.of_type("mode_changed")}
    assert changes["bs20"]["split_chunks"] == 4 and changes["bs20"]["iter"] == 0
    assert changes["bs20"]["effective_lr"] == pytest.approx(0.02 * 4)
    assert changes["bs200"]["split_chunks"] == 4


def test_split_control_refused_for_a_batch_it_does_not_divide(tiny_config):
    controls = Controls()
    controls.apply({"cmd": "split", "enabled": True, "chunks": 3})
    _, sink = _sweep(tiny_config(sweep={"batch_sizes": [20, 30]}), controls=controls)
    changes = {e["run"]: e for e in sink.of_type("mode_changed")}
    assert changes["bs20"]["split_chunks"] == 1 and "do not divide" in changes["bs20"]["reason"]
    assert changes["bs30"]["split_chunks"] == 3
    assert (
        changes["bs20"]["requested"] == changes["bs30"]["requested"] == 3
    )  # a viewer attaching reads the switch


def test_a_split_request_that_changes_nothing_is_still_recorded_once_per_run(tiny_config):
    """Off while every run is plain changes no run, but an attaching viewer must read the switch as off."""
    controls = Controls()
    controls.apply({"cmd": "split", "enabled": False, "chunks": 4})
    _, sink = _sweep(tiny_config(), controls=controls)
    changes = sink.of_type("mode_changed")
    assert sorted(e["run"] for e in changes) == ["bs20", "bs200"]
    assert all(e["requested"] == 1 and e["split_chunks"] == 1 and "reason" not in e for e in changes)


def test_stop_control_ends_the_sweep_as_stopped(tiny_config):
    controls = Controls()
    controls.apply({"cmd": "stop"})
    result, sink = _sweep(tiny_config(), controls=controls)
    assert result.status == "stopped"
    assert {e["status"] for e in sink.of_type("run_finished")} == {"stopped"}


def test_warmup_raises_the_lr_linearly_to_its_value():
    assert lr_at(0.1, 0, 10) == pytest.approx(0.01)
    assert lr_at(0.1, 4, 10) == pytest.approx(0.05)
    assert lr_at(0.1, 10, 10) == pytest.approx(0.1)
    assert lr_at(0.1, 0, 0) == pytest.approx(0.1)


def test_pause_is_announced_and_resume_continues_the_same_run(tiny_config):
    import threading

    controls = Controls()
    controls.apply({"cmd": "pause"})

    class ResumeSoonAfterPause(ListSink):
        """Plays the app: sees the trainer pause, resumes it a moment later from another thread."""

        def emit(self, event):
            super().emit(event)
            if event["type"] == "paused" and event["paused"]:
                threading.Timer(0.3, controls.apply, args=({"cmd": "resume"},)).start()

    sink = ResumeSoonAfterPause()
    result = run_sweep(tiny_config(), Emitter([sink]), controls=controls)
    paused = sink.of_type("paused")
    assert [e["paused"] for e in paused] == [True, False]
    assert paused[0]["iter"] == 0 and result.status == "done"
    # The pause does not count as training time: the paused run's first epoch trained after the resume.
    first = next(e for e in sink.of_type("epoch_end") if e["run"] == paused[0]["run_waiting"])
    assert first["wall_s"] <= first["t"] - paused[1]["t"]


def test_each_run_trains_on_the_cpu_threads_its_batch_calls_for(tiny_config, monkeypatch):
    """Interleaved runs of batch 4 and 200: each sets its own threads before its steps."""
    seen: dict[str, set[int]] = {}
    real_step = steps.plain_step

    def counting_step(model, optimizer, x, y):
        seen.setdefault(str(x.shape[0]), set()).add(torch.get_num_threads())
        return real_step(model, optimizer, x, y)

    monkeypatch.setattr(steps, "plain_step", counting_step)
    monkeypatch.setattr("trainer.engine.parts.cpu_threads", lambda b, micro, configured: 1 if b < 16 else 2)
    before = torch.get_num_threads()
    try:
        _, sink = _sweep(tiny_config(sweep={"batch_sizes": [4, 200], "epochs": 1}))
    finally:
        torch.set_num_threads(before)
    started = {e["run"]: e for e in sink.of_type("run_started")}
    assert started["bs4"]["cpu_threads"] == 1 and started["bs200"]["cpu_threads"] == 2
    assert seen["4"] == {1} and seen["200"] == {2}
