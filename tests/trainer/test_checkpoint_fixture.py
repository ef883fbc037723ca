"""Checkpoints written by an earlier trainer still resume (the checkpoint format is a contract).

tests/fixtures/resume_v1 is a run directory that the trainer of before the layered rewrite wrote
(tests/fixtures/make_resume_fixture.py): a two-run sweep stopped after its first epoch, each run with
its epoch-1 checkpoint. Today's trainer must continue it to the end and train exactly what an
uninterrupted sweep trains.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.trainer.test_resume import _sweep_into, events_of, training_results
from trainer.cli.main import resume_sweep
from trainer.config import load_config
from trainer.data.datasets import load_dataset

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "resume_v1"


def test_a_run_directory_checkpointed_by_the_earlier_trainer_resumes_to_the_end(tmp_path, data_root, capsys):
    out = tmp_path / "run"
    shutil.copytree(FIXTURE, out)
    cfg = load_config(out / "config.toml", [f'data.root="{data_root}"'])
    assert resume_sweep(cfg, out, quiet=True) == 0
    err = capsys.readouterr().err
    assert "bs20: continues after epoch 1 (iteration 30)" in err
    assert "bs200: continues after epoch 1 (iteration 3)" in err

    resumed = [e for e in events_of(out) if e["type"] == "sweep_resumed"]
    assert [(r["run"], r["from_epoch"], r["checkpoint"]) for r in resumed[0]["runs"]] == [
        ("bs20", 1, True),
        ("bs200", 1, True),
    ]
    got = training_results(out)
    for run_id in ("bs20", "bs200"):
        assert got[run_id]["finished"] == ["done"]
        assert [e["epoch"] for e in got[run_id]["epochs"]] == [1, 2]
    # The probes went on from their saved state: the epoch-2 count of estimates includes epoch 1's.
    assert got["bs20"]["epochs"][1]["gns_estimates"] > got["bs20"]["epochs"][0]["gns_estimates"] > 0

    # An uninterrupted sweep of the same config, trained now.
    _sweep_into(cfg, load_dataset(cfg.data, seed=cfg.sweep.seed), tmp_path / "ref")
    want = training_results(tmp_path / "ref")
    recorded = training_results(FIXTURE)
    # The fixture's first epoch was trained on the machine that wrote it; where this machine's CPU
    # kernels give the same first epoch bit for bit, the continuation must match bit for bit too.
    same_machine = all(
        want[r]["losses"][: len(recorded[r]["losses"])] == recorded[r]["losses"] for r in ("bs20", "bs200")
    )
    tol = {"rel": 0, "abs": 0} if same_machine else {"rel": 1e-4, "abs": 1e-6}
    for run_id in ("bs20", "bs200"):
        assert len(got[run_id]["losses"]) == len(want[run_id]["losses"])
        assert got[run_id]["losses"] == pytest.approx(want[run_id]["losses"], **tol), run_id
        for mine, theirs in zip(got[run_id]["epochs"], want[run_id]["epochs"]):
            added = {"eval_set"}  # this trainer writes it; the fixture's first epoch has it not
            assert mine.keys() - added == theirs.keys() - added
            for key, value in mine.items():
                if isinstance(value, float):
                    assert value == pytest.approx(theirs[key], **tol), (run_id, key)
                else:
                    assert value == theirs[key], (run_id, key)
