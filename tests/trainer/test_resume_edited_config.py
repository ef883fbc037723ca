"""Resume compares config.toml with the config the sweep recorded when it started: an edit that changes
what the runs train refuses (exit 2, the keys named, nothing rewritten), never throwing away trained
epochs; a key that is safe to change is said, with what the continuation does about it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import tomli_w
import tomllib

from tests.trainer.test_resume import events_of
from trainer.cli.exits import EXIT_USAGE
from trainer.cli.main import main
from trainer.engine.checkpoint import checkpoint_path
from trainer.runlog.commands import trainer_command
from trainer.sweep.resume_config import config_changes


def edited(interrupted: Path, tmp_path: Path, section: str, key: str, value) -> Path:
    out = tmp_path / "run"
    shutil.copytree(interrupted, out)
    config = out / "config.toml"
    toml = tomllib.loads(config.read_text())
    toml[section][key] = value
    config.write_text(tomli_w.dumps(toml))
    return out


@pytest.mark.parametrize(
    "section, key, value, shown",
    [
        ("optim", "lr", 0.3, "optim.lr = 0.3 (recorded 0.02)"),
        ("sweep", "epochs", 4, "sweep.epochs = 4 (recorded 3)"),
        ("optim", "momentum", 0.0, "optim.momentum = 0.0 (recorded 0.5)"),
    ],
)
def test_an_edit_that_changes_training_is_refused_and_nothing_is_thrown_away(
    interrupted, tmp_path, capsys, section, key, value, shown
):
    out = edited(interrupted, tmp_path, section, key, value)
    events = (out / "events.jsonl").read_bytes()
    checkpoint = checkpoint_path(out, "bs200").read_bytes()
    capsys.readouterr()
    assert main(["resume", str(out), "--quiet"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "was edited since the sweep started" in err and shown in err, err
    assert (
        "Put the recorded value back" in err and f"{trainer_command('run', out / 'config.toml')} --out" in err
    )
    assert "Traceback" not in err and "starts again" not in err
    assert (out / "events.jsonl").read_bytes() == events  # the trained epochs are all still there
    assert checkpoint_path(out, "bs200").read_bytes() == checkpoint


def test_a_safe_edit_is_said_and_the_sweep_continues_as_before(interrupted, tmp_path, capsys):
    out = edited(interrupted, tmp_path, "output", "dir", "somewhere-else")
    capsys.readouterr()
    assert main(["resume", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "output.dir changed from 'runs' to 'somewhere-else'" in err
    assert "bs200: continues after epoch 1" in err
    finished = [(e["run"], e["status"]) for e in events_of(out) if e["type"] == "run_finished"]
    assert finished == [("bs20", "done"), ("bs200", "done")]


def test_config_changes_ignores_keys_only_one_side_has():
    recorded = {"optim": {"lr": 0.1, "retired_key": 1}, "sweep": {"batch_sizes": [20, 200]}}
    current = {"optim": {"lr": 0.1, "new_key": 2}, "sweep": {"batch_sizes": [20, 200]}}
    assert config_changes(recorded, current) == []
    current["sweep"]["batch_sizes"] = [20, 400]
    assert config_changes(recorded, current) == [("sweep.batch_sizes", [20, 200], [20, 400])]
    assert config_changes({"a": {"b": 1}}, {"a": {"b": 1.0}}) == []  # TOML 1 and JSON 1.0 are one value
    assert config_changes({"a": {"b": True}}, {"a": {"b": 1}}) == [("a.b", True, 1)]
