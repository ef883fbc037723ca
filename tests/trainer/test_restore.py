"""A checkpoint that cannot be restored: reported, its run trained again from the
start, never a traceback, and never on every later resume; a crafted pickle in a checkpoint never runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from tests.trainer.test_resume import events_of, training_results
from trainer.cli.main import main
from trainer.engine.checkpoint import checkpoint_path


def _damage_rng_torch(state: dict) -> None:
    state["rng"]["torch"] = torch.arange(7, dtype=torch.uint8)  # valid weights, an RNG state of 7 bytes


def _damage_rng_python(state: dict) -> None:
    state["rng"]["python"] = ["not", "an", "rng"]


def _damage_rng_numpy(state: dict) -> None:
    state["rng"]["numpy"]["keys"] = torch.zeros(3, dtype=torch.int64)


def _damage_optimizer(state: dict) -> None:
    buffers = state["optimizer"]["state"]
    first = next(iter(buffers))
    buffers[first]["momentum_buffer"] = torch.zeros(2, 2)  # not its parameter's shape


def _damage_totals(state: dict) -> None:
    state["totals"]["epoch_walls"] = "garbage"


def _damage_probes(state: dict) -> None:
    state["probes"]["cosines"] = ["not a tensor"]


def _damage_split(state: dict) -> None:
    state["split_chunks"] = 7  # does not divide batch size 200


def _damage_header(state: dict) -> None:
    state["epoch"] = "one"


DAMAGE = {
    "rng-torch": (_damage_rng_torch, "RNG state"),
    "rng-python": (_damage_rng_python, "RNG state"),
    "rng-numpy": (_damage_rng_numpy, "RNG state"),
    "optimizer": (_damage_optimizer, "optimizer state"),
    "totals": (_damage_totals, "totals"),
    "probes": (_damage_probes, "probe state"),
    "split": (_damage_split, "split_chunks"),
    "header": (_damage_header, "epoch"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_checkpoint_whose_part_cannot_be_restored_restarts_its_run(
    damage, interrupted, reference, tmp_path, capsys
):
    out = tmp_path / "run"
    shutil.copytree(interrupted, out)
    path = checkpoint_path(out, "bs200")
    state = torch.load(path, weights_only=True)
    spoil, what = DAMAGE[damage]
    spoil(state)
    torch.save(state, path)
    capsys.readouterr()

    assert main(["resume", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = next(line for line in err.splitlines() if "bs200:" in line)
    assert "starts again from the beginning" in line and what in line, line
    resumed = [e for e in events_of(out) if e["type"] == "sweep_resumed"]
    assert [(r["run"], r["checkpoint"]) for r in resumed[0]["runs"]] == [("bs200", False)]
    assert what in resumed[0]["runs"][0]["reason"]  # recorded in the run directory, too
    assert training_results(out) == reference  # trained again from the start: as if never interrupted
    assert not (out / "errors.log").exists()

    # The damaged file is gone (its run finished with a good one); a later resume has nothing to do.
    assert main(["resume", str(out), "--quiet"]) == 0
    assert "nothing to resume" in capsys.readouterr().err


class _Marker:
    """Unpickling this creates the marker file (open(path, "w")): what a hostile checkpoint could run."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_crafted_pickle_in_a_checkpoint_is_never_executed(interrupted, reference, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(interrupted, out)
    path = checkpoint_path(out, "bs200")
    state = torch.load(path, weights_only=True)

    # The same payload is live: unpickled without weights_only, it does create its marker.
    armed = tmp_path / "armed.pt"
    torch.save({**state, "model": _Marker(tmp_path / "proof")}, armed)
    torch.load(armed, weights_only=False)
    assert (tmp_path / "proof").exists()

    marker = tmp_path / "pwned"
    torch.save({**state, "model": _Marker(marker)}, path)
    capsys.readouterr()
    assert main(["resume", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert not marker.exists()
    assert "bs200: starts again from the beginning" in err and "cannot be read" in err
    assert training_results(out) == reference
