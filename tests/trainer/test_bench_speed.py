"""bench/speed.py --model / --dataset: resnet_small on CIFAR-shaped data, offline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.subprocess

ROOT = Path(__file__).resolve().parents[2]


def test_speed_times_resnet_small_on_cifar_shaped_tensors_when_cifar_is_missing(tmp_path):
    out = tmp_path / "speed.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "speed.py"),
            "--device",
            "cpu",
            "--model",
            "resnet_small",
            "--dataset",
            "cifar10",
            "--batches",
            "8",
            "32",
            "--budget",
            "0.05",
            "--samples",
            "64",
            "--threads",
            "1",
            "--root",
            str(tmp_path / "no-data"),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert "model resnet_small" in proc.stdout and "timing CIFAR-shaped random tensors instead" in proc.stdout
    assert "epoch time for 50,000 samples" in proc.stdout
    report = json.loads(out.read_text())
    assert report["model"] == "resnet_small" and report["epoch_samples"] == 50_000
    assert [r["batch_size"] for r in report["rows"]] == [8, 32]
    assert all(not c["error"] for r in report["rows"] for c in r["cells"].values())
