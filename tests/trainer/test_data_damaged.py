"""Damaged dataset files: a synthetic-digits cache that is empty, truncated,
garbled or of the wrong shape is rebuilt with one line said; an MNIST labels file that is valid
IDX but holds a label outside 0-9 is a dataset error (or the fallback), never a run's traceback."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.config import DataConfig
from trainer.data import synthetic as data_synthetic
from trainer.data.datasets import DatasetUnavailable, load_dataset, synthetic_digits

ROOT = Path(__file__).resolve().parents[2]
N_TRAIN, N_TEST, SEED = 100, 30, 4


def _cache_file(folder: Path) -> Path:
    (path,) = folder.glob("*.npz")
    return path


@pytest.fixture(scope="module")
def reference() -> tuple[torch.Tensor, ...]:
    ds = synthetic_digits(N_TRAIN, N_TEST, SEED)
    return ds.train.images, ds.train.labels, ds.test.images, ds.test.labels


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _good_arrays(ref) -> dict[str, np.ndarray]:
    return dict(zip(("train_x", "train_y", "test_x", "test_y"), (t.numpy() for t in ref)))


def _damages(ref) -> dict[str, bytes]:
    good = _good_arrays(ref)
    whole = _npz(**good)
    return {
        "empty": b"",
        "truncated": whole[: len(whole) // 2],
        "garbled": bytes(b ^ 0x5A for b in whole),
        "not a zip": b"hello, I am not an npz\n" * 10,
        "a key missing": _npz(**{k: v for k, v in good.items() if k != "test_y"}),
        "wrong shape": _npz(**{**good, "train_x": good["train_x"][:, :14, :]}),
        "wrong dtype": _npz(**{**good, "train_x": good["train_x"].astype(np.float32)}),
        "too few samples": _npz(**{**good, "train_y": good["train_y"][:10]}),
        "a label of 200": _npz(**{**good, "train_y": np.full_like(good["train_y"], 200)}),
        "a pickled object": _pickled(good),
    }


def _pickled(good: dict[str, np.ndarray]) -> bytes:
    """An npz whose test_y is an object array (would need unpickling to read)."""
    buf = io.BytesIO()
    np.savez(buf, **{**good, "test_y": np.array([{"x": 1}] * N_TEST, dtype=object)})
    return buf.getvalue()


@pytest.mark.parametrize(
    "damage",
    [
        "empty",
        "truncated",
        "garbled",
        "not a zip",
        "a key missing",
        "wrong shape",
        "wrong dtype",
        "too few samples",
        "a label of 200",
        "a pickled object",
    ],
)
def test_a_damaged_synthetic_cache_is_rebuilt_with_one_line(tmp_path: Path, reference, damage: str) -> None:
    synthetic_digits(N_TRAIN, N_TEST, SEED, cache_dir=tmp_path)
    path = _cache_file(tmp_path)
    path.write_bytes(_damages(reference)[damage])
    logged: list[str] = []
    ds = synthetic_digits(N_TRAIN, N_TEST, SEED, cache_dir=tmp_path, log=logged.append)
    for got, want in zip((ds.train.images, ds.train.labels, ds.test.images, ds.test.labels), reference):
        assert torch.equal(got, want)
    assert len(logged) == 1 and "\n" not in logged[0]
    assert str(path) in logged[0] and "damaged" in logged[0] and "rebuilding" in logged[0]
    # Rebuilt on disk: the next read uses the cache again, silently.
    logged.clear()
    again = synthetic_digits(N_TRAIN, N_TEST, SEED, cache_dir=tmp_path, log=logged.append)
    assert torch.equal(again.train.images, reference[0]) and logged == []


def test_a_fifo_in_place_of_the_cache_is_not_waited_on(tmp_path: Path, reference) -> None:
    synthetic_digits(N_TRAIN, N_TEST, SEED, cache_dir=tmp_path)
    path = _cache_file(tmp_path)
    path.unlink()
    os.mkfifo(path)
    logged: list[str] = []
    ds = synthetic_digits(N_TRAIN, N_TEST, SEED, cache_dir=tmp_path, log=logged.append)
    assert torch.equal(ds.train.images, reference[0])
    assert len(logged) == 1 and "not a regular file" in logged[0]


def test_a_good_cache_is_read_without_a_word(
    tmp_path: Path, reference, monkeypatch: pytest.MonkeyPatch
) -> None:
    synthetic_digits(N_TRAIN, N_TEST, SEED, cache_dir=tmp_path)
    monkeypatch.setattr(data_synthetic, "generate_digits", lambda *a, **k: pytest.fail("generated again"))
    logged: list[str] = []
    ds = synthetic_digits(N_TRAIN, N_TEST, SEED, cache_dir=tmp_path, log=logged.append)
    assert torch.equal(ds.test.images, reference[2]) and logged == []


# ---------------------------------------------------------------- IDX labels out of range


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _idx_folder(folder: Path, bad_label: int | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 20)):
        labels = rng.integers(0, 10, n)
        if prefix == "train" and bad_label is not None:
            labels[7] = bad_label
        _write_idx(folder / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels)
    return folder


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_a_label_outside_0_9_is_a_dataset_error(tmp_path: Path, name: str) -> None:
    folder = _idx_folder(tmp_path / "mnist" if name == "mnist" else tmp_path, bad_label=200)
    cfg = DataConfig(dataset=name, root=str(tmp_path), download=False, fallback="")
    with pytest.raises(DatasetUnavailable) as info:
        load_dataset(cfg)
    message = str(info.value)
    assert str(folder / "train-labels-idx1-ubyte") in message and "label 200" in message
    assert "replace" in message


def test_a_label_outside_0_9_takes_the_fallback_visibly(tmp_path: Path) -> None:
    _idx_folder(tmp_path / "mnist", bad_label=200)
    logged: list[str] = []
    cfg = DataConfig(dataset="mnist", root=str(tmp_path), download=False, train_samples=50, test_samples=20)
    ds = load_dataset(cfg, log=logged.append)
    assert ds.name == "synthetic-digits" and "label 200" in ds.note and logged == [ds.note]


def test_labels_0_to_9_still_load(tmp_path: Path) -> None:
    _idx_folder(tmp_path / "mnist", bad_label=9)
    ds = load_dataset(DataConfig(dataset="mnist", root=str(tmp_path), download=False, fallback=""))
    assert ds.name == "mnist" and int(ds.train.labels.max()) == 9


@pytest.mark.subprocess
def test_the_cli_gives_exit_2_not_a_traceback_for_a_label_of_200(tmp_path: Path) -> None:
    _idx_folder(tmp_path / "data" / "mnist", bad_label=200)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainer",
            "run",
            "--device",
            "cpu",
            "--quiet",
            "--out",
            str(tmp_path / "run"),
            "--set",
            "data.dataset=\"mnist\"",
            "--set",
            f"data.root=\"{tmp_path / 'data'}\"",
            "--set",
            "data.download=false",
            "--set",
            "data.fallback=\"\"",
            "--set",
            "sweep.batch_sizes=[10]",
            "--set",
            "sweep.epochs=1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2, out.stderr
    assert "label 200" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "run").exists()  # nothing trained, nothing written
