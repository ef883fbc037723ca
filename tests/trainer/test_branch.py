"""Branched B_crit end to end on tiny data: branches continue the base run's checkpoint exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.report.build import write_report
from trainer.runlog import Emitter, ListSink, RunDirSink
from trainer.sweep.branch import point_path
from trainer.sweep.driver import run_sweep


@pytest.fixture(autouse=True)
def _shared_dataset(tiny_dataset, monkeypatch):
    monkeypatch.setattr("trainer.sweep.prepare.load_dataset", lambda cfg, **kwargs: tiny_dataset)


def _branch_sweep(tiny_config, run_dir: str = "", batch_schedule: str = "", **branch):
    cfg = tiny_config(
        sweep={"batch_sizes": [20], "epochs": 2, "batch_schedule": batch_schedule},
        optim={"lr": 0.3},
        perf={"cpu_threads": 1},
        gns={"every": 0, "probe_every": 0},
    )
    cfg.branch.epochs = [1]
    cfg.branch.batch_sizes = [10, 20, 60]
    cfg.branch.eval_every = 120
    for key, value in branch.items():
        setattr(cfg.branch, key, value)
    sink = ListSink()
    sinks = [sink, RunDirSink(Path(run_dir))] if run_dir else [sink]
    emitter = Emitter(sinks)
    result = run_sweep(cfg, emitter, run_dir=run_dir)
    emitter.close()
    return result, sink


def _losses(sink: ListSink, run_id: str) -> dict[int, float]:
    out = {}
    for block in sink.of_type("losses"):
        if block["run"] == run_id:
            out.update({block["first_iter"] + i: v for i, v in enumerate(block["values"])})
    return out


def test_a_branch_at_the_base_batch_size_continues_the_base_run_bit_exactly(tiny_config, tmp_path):
    # decrease 0.9 is never reached: every branch trains its whole max_samples (one epoch), the base's epoch 2.
    result, sink = _branch_sweep(tiny_config, run_dir=str(tmp_path), decrease=0.9)
    assert result.status == "done"
    base, branch = _losses(sink, "bs20"), _losses(sink, "e1-bs20")
    assert sorted(branch) == list(range(30, 60))  # from the base's iteration 30 (its epoch 1 end) on
    assert branch == {i: base[i] for i in range(30, 60)}
    assert point_path(tmp_path, "bs20", 1).is_file()  # the branch point's checkpoint is kept
    text, _ = write_report(tmp_path, plots=False)
    assert "## Critical batch size over training (branched)" in text
    assert (
        "| 1 | 60 | 0.3 | not reached | not reached | done |" in text
    )  # the branch at batch 60, from epoch 1
    best = text.split("## Best lr per batch size")[1].split("## Critical batch size")[0]
    assert "| 20 |" in best and "| 60 |" not in best  # branches are not points of the sweep's own analysis


def test_branch_runs_say_where_they_branched_and_the_result_has_one_point(tiny_config):
    _, sink = _branch_sweep(tiny_config, decrease=0.9, max_samples=120)
    started = {e["run"]: e for e in sink.of_type("run_started")}
    assert set(started) == {"bs20", "e1-bs10", "e1-bs20", "e1-bs60"}
    assert "branch" not in started["bs20"]
    info = started["e1-bs60"]["branch"]
    assert (info["base_run"], info["epoch"], info["iters"], info["samples"]) == ("bs20", 1, 30, 600)
    # the target is the fall from the base run's trend there (its smoothed slice loss), not from one reading
    assert info["trend_loss"] is not None and info["target_loss"] == pytest.approx(info["trend_loss"] * 0.1)
    assert started["e1-bs60"]["warmup_iters"] == 0
    [result] = sink.of_type("branch_result")
    [point] = result["points"]
    assert point["epoch"] == 1 and not point["determined"]  # no branch fell by 90%
    assert [b["run"] for b in point["branches"]] == ["e1-bs10", "e1-bs20", "e1-bs60"]
    finished = sink.of_type("sweep_finished")[0]
    assert {s["run"] for s in finished["summaries"]} == set(started)


def test_a_sweep_interrupted_during_its_branches_resumes_them_from_the_kept_points(tiny_config, tmp_path):
    import json

    from trainer.sweep.resume import plan_resume

    whole = tmp_path / "whole"
    whole.mkdir()
    _, sink = _branch_sweep(tiny_config, run_dir=str(whole), decrease=0.9, max_samples=120)
    lines = (whole / "events.jsonl").read_text().splitlines()
    # Killed as the second branch began: the base run and one branch are recorded, the rest is lost.
    cut = next(i for i, line in enumerate(lines) if '"run_started"' in line and '"e1-bs20"' in line)
    (whole / "events.jsonl").write_text("\n".join(lines[:cut]) + "\n")
    plan = plan_resume(whole, ["bs20"])
    plan.apply()
    cfg = tiny_config(
        sweep={"batch_sizes": [20], "epochs": 2},
        optim={"lr": 0.3},
        perf={"cpu_threads": 1},
        gns={"every": 0, "probe_every": 0},
    )
    cfg.branch.epochs, cfg.branch.batch_sizes = [1], [10, 20, 60]
    cfg.branch.eval_every, cfg.branch.decrease, cfg.branch.max_samples = 120, 0.9, 120
    again = ListSink()
    emitter = Emitter([again, RunDirSink(whole, prior=plan.events)])
    result = run_sweep(cfg, emitter, run_dir=str(whole), resume=plan)
    emitter.close()
    assert result.status == "done"
    events = [json.loads(line) for line in (whole / "events.jsonl").read_text().splitlines()]
    started = [e["run"] for e in events if e["type"] == "run_started"]
    assert started == [
        "bs20",
        "e1-bs10",
        "e1-bs20",
        "e1-bs60",
    ]  # each branch once: the cut one measured again
    assert sum(e["type"] == "branch_result" for e in events) == 1
    for run_id in ("e1-bs10", "e1-bs60"):
        assert _losses(again, run_id) == _losses(sink, run_id)


def test_a_proposed_schedule_trains_after_the_branches_as_one_more_run(tiny_config, monkeypatch):
    # The fit itself is tested on known S(B) data (tests/unit/test_branch_fit.py); here it is fixed, so that
    # the sweep's own path from the branches' proposal to the scheduled run is what is tested.
    fits = iter([15.0, 70.0])
    monkeypatch.setattr(
        "trainer.sweep.branch.fit_point",
        lambda measured: {"determined": True, "reason": "", "B_crit": next(fits), "best_lr": {"60": 0.5}},
    )
    from trainer.config.batch_schedule import PROPOSED_SOURCE

    _, sink = _branch_sweep(tiny_config, batch_schedule="proposed", epochs=[1, 2], max_samples=120)
    [result] = sink.of_type("branch_result")
    assert [(s["samples"], s["batch_size"]) for s in result["schedule"]] == [(0, 10), (1200, 60)]
    [started] = [e for e in sink.of_type("run_started") if e.get("batch_schedule")]
    assert started["batch_schedule_source"] == PROPOSED_SOURCE
    assert [s["lr"] for s in started["batch_schedule"]] == [
        0.3,
        0.5,
    ]  # the rule's (no best lr at 10), measured
    [changed] = [e for e in sink.of_type("batch_size_changed") if e["run"] == started["run"]]
    assert (changed["samples"], changed["batch_size"], changed["lr"]) == (1200, 60, 0.5)
    [done] = [e for e in sink.of_type("run_finished") if e["run"] == started["run"]]
    assert done["status"] in ("done", "target")
