"""Branches of one batch size trained as one fused group equal the same branches trained alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.config import Config
from trainer.report.branch import section
from trainer.runlog import Emitter, ListSink
from trainer.sweep.driver import run_sweep


def _sweep(data_root: Path, dataset, fuse: str) -> ListSink:
    """A base run at batch 20 for 5 epochs, branches after epoch 4 at 10, 20, 60 x two lr factors. With these
    settings batches 20 and 60 reach the 10% fall, each lr at its own step, and batch 10 does not."""
    cfg = Config()
    cfg.data.dataset, cfg.data.root, cfg.data.download = "synthetic-digits", str(data_root), False
    cfg.data.train_samples, cfg.data.test_samples = 600, 200
    cfg.sweep.batch_sizes, cfg.sweep.epochs, cfg.sweep.device = [20], 5, "cpu"
    cfg.optim.lr, cfg.optim.momentum = 0.2, 0.9
    cfg.perf.cpu_threads, cfg.perf.fuse_runs = 1, fuse
    cfg.gns.every = cfg.gns.probe_every = 0
    br = cfg.branch
    br.epochs, br.batch_sizes, br.lr_factors = [4], [10, 20, 60], [0.5, 1.0]
    br.decrease, br.max_samples, br.eval_every = 0.1, 900, 60
    sink = ListSink()
    emitter = Emitter([sink])
    run_sweep(cfg, emitter, dataset=dataset)
    emitter.close()
    return sink


@pytest.fixture(scope="module")
def sweeps(data_root, tiny_dataset) -> dict[str, ListSink]:
    return {fuse: _sweep(data_root, tiny_dataset, fuse) for fuse in ("on", "off")}


def _evaluations(sink: ListSink) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = {}
    for e in sink.of_type("evaluation"):
        out.setdefault(e["run"], []).append((e["iter"], e["test_loss"]))
    return out


def test_a_fused_branch_group_measures_what_each_branch_measures_alone(sweeps):
    fused, alone = sweeps["on"], sweeps["off"]
    started = {e["run"]: e for e in fused.of_type("run_started") if e.get("branch")}
    assert len(started) == 6
    for run, e in started.items():  # every branch trained fused, with its lr twin
        assert len(e["fused_runs"]) == 2 and run in e["fused_runs"]
    assert all(not e["fused_runs"] for e in alone.of_type("run_started"))
    evals_fused, evals_alone = _evaluations(fused), _evaluations(alone)
    for run in started:  # the same evaluations, at the same iterations, up to the stacked step's float order
        assert [i for i, _ in evals_fused[run]] == [i for i, _ in evals_alone[run]]
        assert [v for _, v in evals_fused[run]] == pytest.approx([v for _, v in evals_alone[run]], abs=1e-5)
    [point_fused] = fused.of_type("branch_point")
    [point_alone] = alone.of_type("branch_point")
    keys = ("run", "status", "steps_lo", "steps", "samples_lo", "samples")
    rows_fused = [{k: b[k] for k in keys} for b in point_fused["branches"]]
    assert rows_fused == [{k: b[k] for k in keys} for b in point_alone["branches"]]
    crossed = {b["run"]: b["steps"] for b in point_fused["branches"] if b["steps"] is not None}
    # Both lrs of batch 20 and of batch 60 crossed, each at its own step: the group lost a member midway.
    assert {r.rsplit("-", 1)[0] for r in crossed} == {"e4-bs20", "e4-bs60"}
    assert crossed["e4-bs20-lr0.1"] != crossed["e4-bs20-lr0.2"]


def test_a_member_that_reached_its_target_leaves_the_group_and_each_is_charged_its_share(sweeps):
    fused = sweeps["on"]
    groups = {g["group"]: g for g in fused.of_type("fused_group")}
    assert set(groups) == {"e4-bs10", "e4-bs20", "e4-bs60"}
    last = {run: evals[-1] for run, evals in _evaluations(fused).items()}
    walls = {e["run"]: e["wall_s"] for e in fused.of_type("evaluation")}  # each run's last
    for label in ("e4-bs20", "e4-bs60"):
        g = groups[label]
        first, then = sorted(g["runs"], key=lambda r: last[r][0])
        assert last[first][0] < last[then][0]
        assert g["continues_alone"] == then  # the other went on with its own step
    g = groups["e4-bs10"]  # neither reached it: both trained branch.max_samples (900) together
    assert "continues_alone" not in g and g["steps"] == 90
    # Each member's clocks hold half the group's time: equal shares, which add up to the group's wall time
    # (the last evaluations are at the last step; the group's clock ran a few microseconds more).
    a, b = g["runs"]
    assert walls[a] == walls[b] and 2 * walls[a] == pytest.approx(g["wall_s"], rel=0.01)
    ended = {e["run"]: e["summary"] for e in fused.of_type("run_finished")}
    assert all(ended[run]["fused_runs"] == 2 for run in g["runs"])
    # The seconds per step handed to the schedule are a time alone, timed for the fused batch sizes.
    timed = {e["batch_size"]: e["runs"] for e in fused.of_type("step_time")}
    assert set(timed[10]) == set(g["runs"]) and {20, 60} <= set(timed)
    [result] = fused.of_type("branch_result")
    assert set(result["step_s"]) == {"10", "20", "60"}
    assert all(b["fused_runs"] == 2 for b in result["points"][0]["branches"])
    text = "\n".join(section(result, "cpu"))  # report.md says which times are shares
    assert "The branches of batch 10, 20, 60 trained fused" in text and "shares of their group's time" in text
    [alone] = sweeps["off"].of_type("branch_result")
    assert "trained fused" not in "\n".join(section(alone, "cpu"))
