"""Start-up stages: the app's trainer says what it is doing before its first loss point
(loading torch, loading or generating the dataset with its share done, opening the run directory),
as live-only `startup` events that the run directory never records."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from tests.waiting import HANG_GUARD_S, collect_until
from trainer.cli.child import run_child
from trainer.config import load_config
from trainer.data.datasets import load_dataset


def test_generating_synthetic_digits_reports_its_share_done_in_tenths(tmp_path: Path) -> None:
    cfg = load_config(
        None,
        [
            'data.dataset="synthetic-digits"',
            f'data.root="{tmp_path}"',
            "data.train_samples=3000",
            "data.test_samples=500",
            "sweep.batch_sizes=[30]",
        ],
    )
    stages: list[tuple[str, float | None]] = []
    load_dataset(cfg.data, seed=0, stage=lambda text, fraction: stages.append((text, fraction)))
    fractions = [f for text, f in stages if text == "generating synthetic-digits"]
    assert fractions and fractions[-1] == pytest.approx(1.0)
    assert fractions == sorted(fractions) and len(fractions) <= 11  # one per 10% at most: a status, not a log


@pytest.mark.training
@pytest.mark.subprocess
def test_the_app_trainer_tells_its_stages_before_training_and_records_none(tmp_path: Path) -> None:
    out = tmp_path / "run"
    overrides = [
        'data.dataset="synthetic-digits"',
        f'data.root="{tmp_path / "data"}"',
        "data.train_samples=600",
        "data.test_samples=200",
        "sweep.batch_sizes=[200]",
        "sweep.epochs=1",
        'sweep.device="cpu"',
    ]
    ctx = multiprocessing.get_context("spawn")
    events_q, control_q = ctx.Queue(), ctx.Queue()
    proc = ctx.Process(target=run_child, args=(None, overrides, str(out), events_q, control_q))
    proc.start()
    try:
        events = collect_until(
            events_q, lambda seen: seen[-1]["type"] == "sweep_finished", "the sweep's end", proc
        )
        proc.join(HANG_GUARD_S)
    finally:
        if proc.is_alive():
            proc.kill()
    assert events[-1]["status"] == "done", events[-1]
    first_start = next(i for i, e in enumerate(events) if e["type"] == "sweep_started")
    stages = [e["stage"] for e in events[:first_start] if e["type"] == "startup"]
    assert stages[0] == "loading torch"
    assert stages.index("loading synthetic-digits") < stages.index("generating synthetic-digits")
    assert stages[-1] == "opening the run directory"
    assert all(e["type"] != "startup" for e in events[first_start:])  # on a CPU no CUDA graph is captured
    recorded = [json.loads(line)["type"] for line in (out / "events.jsonl").read_text().splitlines()]
    assert "startup" not in recorded and recorded[0] == "sweep_started"
