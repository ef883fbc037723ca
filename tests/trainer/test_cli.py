"""`python -m trainer run`: the run directory it writes, and its exit codes."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.waiting import wait_until
from trainer.analysis.answer import answers
from trainer.analysis.recommend import recommendations
from trainer.cli.main import main
from trainer.config import load_config
from trainer.runlog import SUMMARY_FIELDS
from trainer.runlog.contract import SWEEP_EVENTS

ROOT = Path(__file__).resolve().parents[2]


def tiny_args(data_root: Path, *extra: str) -> list[str]:
    return [
        "run",
        str(ROOT / "experiments.toml"),
        "--set",
        'data.dataset="synthetic-digits"',
        "--set",
        f'data.root="{data_root}"',
        "--set",
        "data.train_samples=600",
        "--set",
        "data.test_samples=200",
        "--set",
        "sweep.batch_sizes=[60,600]",
        "--set",
        "sweep.epochs=2",
        "--device",
        "cpu",
        "--quiet",
        *extra,
    ]


def test_run_writes_a_run_directory_that_follows_the_design(data_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(tiny_args(data_root, "--out", str(out))) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "bs600" in printed

    lines = (out / "events.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]  # every line is whole, valid JSON
    assert events[0]["type"] == "sweep_started" and events[-1]["type"] == "sweep_finished"
    assert events[0]["run_dir"] == str(out) and events[0]["torch"] == torch.__version__
    assert all("t" in e and ("run" in e or e["type"] in SWEEP_EVENTS) for e in events)

    with open(out / "summary.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert reader.fieldnames == SUMMARY_FIELDS
    assert [(r["run"], r["status"], r["epochs"]) for r in rows] == [
        ("bs60", "done", "2"),
        ("bs600", "done", "2"),
    ]

    resolved = load_config(out / "config.toml")
    assert resolved.sweep.batch_sizes == [60, 600] and resolved.data.dataset == "synthetic-digits"

    # The sweep's answer in one sentence, the same one report.md and the scaling view give.
    answer = recommendations(events[-1]["scaling"], resolved.sweep.target_accuracy, events[0]["device"])
    assert len(answer) == 1 and answer[0] in printed.replace("\n", " ")
    assert answer[0].startswith(("fastest to ", "no batch size reached "))
    # ...followed by the rest of the answer report.md and the scaling screen give (trainer/analysis/answer/).
    for line in answers(events[-1]["scaling"], resolved.sweep.target_accuracy, events[0]["device"]):
        assert line in printed.replace("\n", " ")


def test_bad_config_exits_2_naming_the_key_before_training(data_root, tmp_path, capsys):
    code = main(tiny_args(data_root, "--out", str(tmp_path / "r"), "--set", "sweep.batch_sise=[1]"))
    assert code == 2
    err = capsys.readouterr().err
    assert "batch_sise" in err and "batch_sizes" in err
    assert not (tmp_path / "r").exists()


def test_a_batch_larger_than_the_loaded_training_set_exits_2_before_training(
    data_root, tmp_path, capsys, monkeypatch, tiny_dataset
):
    # data.train_samples = 0 (all): only the loaded dataset knows its size (600 samples here).
    monkeypatch.setattr("trainer.sweep.prepare.load_dataset", lambda cfg, **kwargs: tiny_dataset)
    args = tiny_args(
        data_root,
        "--out",
        str(tmp_path / "r"),
        "--set",
        "data.train_samples=0",
        "--set",
        "sweep.batch_sizes=[60,6000]",
    )
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "batch size 6000 (sweep.batch_sizes) is larger than the training set (600 samples)" in err
    assert "Fix: drop them from sweep.batch_sizes" in err
    assert not (tmp_path / "r").exists()


def test_an_existing_run_is_not_overwritten_without_force(data_root, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "events.jsonl").write_text('{"type":"sweep_started","t":0}\n')
    assert main(tiny_args(data_root, "--out", str(out))) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "events.jsonl").read_text() == '{"type":"sweep_started","t":0}\n'
    assert main(tiny_args(data_root, "--out", str(out), "--force")) == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown when no GPU is present")
def test_asking_for_cuda_without_a_gpu_exits_2_with_the_fix(data_root, tmp_path, capsys):
    args = tiny_args(data_root, "--out", str(tmp_path / "r"))
    args[args.index("--device") + 1] = "cuda"
    assert main(args) == 2
    assert "--device cpu" in capsys.readouterr().err


@pytest.mark.subprocess
def test_ctrl_c_exits_130_and_leaves_a_valid_run_directory(data_root, tmp_path):
    out = tmp_path / "run"
    args = tiny_args(data_root, "--out", str(out))
    args[args.index("sweep.epochs=2")] = "sweep.epochs=200"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainer", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    events_file = out / "events.jsonl"
    wait_until(
        lambda: events_file.exists() and '"epoch_end"' in events_file.read_text(), "an epoch's end", proc=proc
    )
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    assert events[-1]["type"] == "sweep_finished" and events[-1]["status"] == "stopped"
    assert {e["status"] for e in events if e["type"] == "run_finished"} == {"stopped"}
    assert (out / "summary.csv").exists()


@pytest.mark.subprocess
def test_trainer_imports_no_textual():
    code = (
        "import sys, trainer, trainer.cli.main, trainer.sweep.driver, trainer.cli.child; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'textual_plotext')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
