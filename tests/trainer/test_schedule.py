"""A scheduled run (sweep.batch_schedule) on tiny data: one change equals two runs glued at the change,
resume mid-schedule equals an uninterrupted run, the data order goes on across a change mid-epoch, and the
report states the verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from trainer.report.build import write_report
from trainer.runlog import Emitter, ListSink, RunDirSink
from trainer.sweep.driver import run_sweep


@pytest.fixture(autouse=True)
def _shared_dataset(tiny_dataset, monkeypatch):
    monkeypatch.setattr("trainer.sweep.prepare.load_dataset", lambda cfg, **kwargs: tiny_dataset)


def _sweep(tiny_config, run_dir: str = "", resume=None, **sweep):
    cfg = tiny_config(
        sweep={"batch_sizes": [20, 60], "epochs": 2, "eval_every": 120, **sweep},
        optim={"lr": 0.2, "momentum": 0.5},
        perf={"cpu_threads": 1, "fuse_runs": "off"},
        gns={"every": 0, "probe_every": 0},
    )
    sink = ListSink()
    if run_dir:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
    sinks = [sink, RunDirSink(Path(run_dir), prior=resume.events if resume else ())] if run_dir else [sink]
    emitter = Emitter(sinks)
    result = run_sweep(cfg, emitter, run_dir=run_dir, resume=resume)
    emitter.close()
    return result, sink


def _losses(sink: ListSink, run_id: str) -> dict[int, float]:
    out = {}
    for block in sink.of_type("losses"):
        if block["run"] == run_id:
            out.update({block["first_iter"] + i: v for i, v in enumerate(block["values"])})
    return out


def test_one_change_at_an_epoch_equals_the_two_runs_glued_there(tiny_config, tmp_path):
    # 600 samples an epoch: batch 20 for the first epoch (30 steps), then batch 60 (10 steps).
    _, sink = _sweep(tiny_config, run_dir=str(tmp_path / "a"), batch_schedule="0:20 600:60")
    sched, first = _losses(sink, "sched20-60"), _losses(sink, "bs20")
    assert sorted(sched) == list(range(40))
    assert [sched[i] for i in range(30)] == [first[i] for i in range(30)]  # the first epoch is bs20's
    [change] = [e for e in sink.of_type("batch_size_changed") if e["run"] == "sched20-60"]
    assert (change["iter"], change["samples"], change["batch_size"]) == (30, 600, 60)
    assert change["lr"] == pytest.approx(0.2)
    # The second half glued: batch 60 from bs20's checkpoint after epoch 1 (a branch continues it exactly).
    from trainer.config import Config  # noqa: F401 - the branch run below is built as the sweep builds it
    from trainer.sweep.branch import point_path

    cfg = tiny_config(
        sweep={"batch_sizes": [20], "epochs": 1, "eval_every": 120},
        optim={"lr": 0.2, "momentum": 0.5},
        perf={"cpu_threads": 1, "fuse_runs": "off"},
        gns={"every": 0, "probe_every": 0},
    )
    cfg.branch.epochs, cfg.branch.batch_sizes, cfg.branch.decrease = [1], [10, 20, 60], 0.99
    cfg.branch.max_samples, cfg.branch.eval_every = 600, 120
    glued = ListSink()
    (tmp_path / "b").mkdir()
    emitter = Emitter([glued, RunDirSink(tmp_path / "b")])
    run_sweep(cfg, emitter, run_dir=str(tmp_path / "b"))
    emitter.close()
    assert point_path(tmp_path / "b", "bs20", 1).is_file()
    second = _losses(glued, "e1-bs60")
    assert sorted(second) == list(range(30, 40))  # the epoch after the point, at batch 60
    base = _losses(glued, "bs20")
    assert [first[i] for i in range(30)] == [base[i] for i in range(30)], "bs20 differs between sweeps"
    assert [sched[i] for i in range(30, 40)] == [second[i] for i in range(30, 40)]


def test_a_change_mid_epoch_goes_on_with_the_epochs_order():
    from trainer.data.pipelines import ResidentBatches, epoch_permutation

    class Split:
        def __init__(self, n):
            self.images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
            self.labels = torch.arange(n)

        def __len__(self):
            return int(self.labels.shape[0])

    split = Split(100)
    small = ResidentBatches(split, 8, torch.device("cpu"), seed=3)
    big = ResidentBatches(split, 24, torch.device("cpu"), seed=3)
    seen = [y for _, (_, y) in zip(range(5), small.batches(2))]  # 40 samples at batch 8
    seen += list(y for _, y in big.batches(2, start=40))  # then batch 24 from sample 40 on
    order = torch.cat(seen)
    assert torch.equal(order, epoch_permutation(100, 3, 2, torch.device("cpu")))
    assert [len(y) for y in seen[5:]] == [24, 24, 12]


def test_resume_in_the_middle_of_a_schedule_equals_an_uninterrupted_run(tiny_config, tmp_path):
    from trainer.sweep.resume import plan_resume

    schedule = "0:20 300:60 840:30"  # mid-epoch changes: at sample 300 (epoch 1) and 840 (epoch 2)
    whole = tmp_path / "whole"
    _, sink = _sweep(tiny_config, run_dir=str(whole), batch_schedule=schedule, epochs=3)
    # The same sweep killed after its second epoch: its checkpoints are those after epoch 2, and nothing
    # after them is recorded (the run_finished of a 2-epoch sweep go, so every run continues).
    cut = tmp_path / "cut"
    _sweep(tiny_config, run_dir=str(cut), batch_schedule=schedule, epochs=2)
    lines = (cut / "events.jsonl").read_text().splitlines()
    kept = [line for line in lines if '"run_finished"' not in line and '"sweep_finished"' not in line]
    (cut / "events.jsonl").write_text("\n".join(kept) + "\n")
    plan = plan_resume(cut, ["bs20", "bs60", "sched20-60-30"])
    assert plan.runs["sched20-60-30"].action == "checkpoint"
    plan.apply()
    result, again = _sweep(tiny_config, run_dir=str(cut), resume=plan, batch_schedule=schedule, epochs=3)
    assert result.status == "done"
    mine, theirs = _losses(again, "sched20-60-30"), _losses(sink, "sched20-60-30")
    assert sorted(mine) == list(
        range(36, 56)
    )  # the third epoch: 20 steps at batch 30 (15 + 5, 4 + 12 before)
    assert mine == {i: theirs[i] for i in mine}
    events = [json.loads(line) for line in (cut / "events.jsonl").read_text().splitlines()]
    changes = [(e["iter"], e["batch_size"]) for e in events if e["type"] == "batch_size_changed"]
    assert changes == [(e["iter"], e["batch_size"]) for e in sink.of_type("batch_size_changed")]
    assert changes == [(15, 60), (24, 30)]  # 300 / 20; then 9 steps of 60 to sample 840


def test_the_report_states_the_schedule_and_the_verdict(tiny_config, tmp_path):
    _sweep(tiny_config, run_dir=str(tmp_path), batch_schedule="0:20 600:60")
    text, _ = write_report(tmp_path, plots=False)
    assert text.count("## Batch-size schedule against the best fixed batch size") == 1
    section = text.split("## Batch-size schedule against the best fixed batch size")[1]
    assert '`--step-batch-size-schedule "0:20 600:60"`' in section
    assert "changed at iteration 30 (600 samples) to 60" in section
    assert "The schedule 20 -> 60 " in section and "best fixed batch" in section
    best = text.split("## Best lr per batch size")[1].split("## Batch-size schedule")[0]
    assert "sched20-60" not in best  # the scheduled run is not a point of the fixed batch sizes' analysis
    assert "- left out: ramp 20→60 (a scheduled run): its batch size changes" in best  # said where the fit is
    matrix = text.split("## Batch size x lr")[1].split("## Best lr per batch size")[0]
    assert "| ramp 20→60 | " in matrix and "| sched20-60 |" in matrix  # its own row under the matrix
