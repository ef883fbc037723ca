"""trainer.data.datasets: datasets (synthetic, IDX, fallback) and the two input pipelines."""

from __future__ import annotations

import gzip
import os
import socket
import struct
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch

from trainer.config import DataConfig
from trainer.data import synthetic as data_synthetic
from trainer.data.datasets import (
    DatasetUnavailable,
    IdxFormatError,
    Split,
    download,
    idx,
    load_dataset,
    read_idx,
    synthetic_digits,
)
from trainer.data.pipelines import (
    LoaderBatches,
    ResidentBatches,
    epoch_permutation,
    eval_batches,
    make_batches,
)

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def small() -> Split:
    """250 synthetic training digits: batch 60 gives 4 full batches and a partial one of 10."""
    return synthetic_digits(250, 50, seed=0).train


def _collect(batches, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x.clone(), y.clone()) for x, y in batches.batches(epoch)]


def _assert_same_batches(a, b) -> None:
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert xa.dtype == xb.dtype == torch.float32 and ya.dtype == yb.dtype == torch.int64
        assert torch.equal(xa, xb)  # bit-for-bit, not approximately
        assert torch.equal(ya, yb)


def _write_idx(path: Path, array: np.ndarray, magic: bytes | None = None) -> Path:
    header = magic if magic is not None else bytes([0, 0, 8, array.ndim])
    raw = header + b"".join(struct.pack(">I", d) for d in array.shape) + array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)
    return path


def _write_idx_dataset(folder: Path, n_train: int, n_test: int, gz: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ext = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        _write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", rng.integers(0, 10, n))


# ---------------------------------------------------------------- synthetic-digits


def test_synthetic_same_seed_gives_same_bytes() -> None:
    a, b = synthetic_digits(300, 100, seed=7), synthetic_digits(300, 100, seed=7)
    for sa, sb in ((a.train, b.train), (a.test, b.test)):
        assert torch.equal(sa.images, sb.images) and torch.equal(sa.labels, sb.labels)


def test_synthetic_other_seed_differs() -> None:
    a, b = synthetic_digits(300, 0, seed=0), synthetic_digits(300, 0, seed=1)
    assert not torch.equal(a.train.images, b.train.images)


def test_synthetic_train_and_test_differ() -> None:
    ds = synthetic_digits(300, 300, seed=0)
    assert not torch.equal(ds.train.images, ds.test.images)
    # Not just shuffled: no test image appears in the training set.
    train_rows = {bytes(row) for row in ds.train.images.view(300, -1).numpy()}
    assert not any(bytes(row) in train_rows for row in ds.test.images.view(300, -1).numpy())


def test_synthetic_first_n_equal_the_smaller_set() -> None:
    # Quick runs (data.train_samples = N) must see the same images as full runs.
    big, little = synthetic_digits(1500, 0, seed=3), synthetic_digits(1100, 0, seed=3)
    assert torch.equal(big.train.images[:1100], little.train.images)
    assert torch.equal(big.train.labels[:1100], little.train.labels)


def test_synthetic_looks_like_mnist() -> None:
    ds = synthetic_digits(1000, 200, seed=0)
    x, y = ds.train.images, ds.train.labels
    assert x.shape == (1000, 28, 28) and x.dtype == torch.uint8 and x.device.type == "cpu"
    assert y.shape == (1000,) and y.dtype == torch.int64
    assert ds.test.images.shape == (200, 28, 28)
    assert int(y.min()) == 0 and int(y.max()) == 9
    counts = torch.bincount(y, minlength=10)
    assert int(counts.min()) >= 80 and int(counts.max()) <= 120  # roughly uniform labels
    # Dark background, bright digit: the border is mostly dark, every image has bright ink.
    border = torch.cat([x[:, :2].flatten(1), x[:, -2:].flatten(1)], 1).float()
    assert float(border.median()) < 40
    assert int(x.flatten(1).amax(1).min()) >= 100
    assert ds.name == "synthetic-digits" and ds.source == "generated (seed 0)" and ds.note == ""


def test_synthetic_cache_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = synthetic_digits(200, 100, seed=2, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1

    def no_generation(*args, **kwargs):
        raise AssertionError("generated again instead of reading the cache")

    monkeypatch.setattr(data_synthetic, "generate_digits", no_generation)
    again = synthetic_digits(200, 100, seed=2, cache_dir=tmp_path)
    assert torch.equal(first.train.images, again.train.images)
    assert torch.equal(first.test.labels, again.test.labels)


def test_load_dataset_synthetic_takes_the_first_samples(tmp_path: Path) -> None:
    cfg = DataConfig(dataset="synthetic-digits", root=str(tmp_path), train_samples=150, test_samples=40)
    ds = load_dataset(cfg, seed=5)
    ref = synthetic_digits(150, 40, seed=5)
    assert len(ds.train) == 150 and len(ds.test) == 40
    assert torch.equal(ds.train.images, ref.train.images) and torch.equal(ds.test.labels, ref.test.labels)
    assert ds.source == "generated (seed 5)"


# ---------------------------------------------------------------- IDX files


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_read_idx_reads_plain_and_gzipped(tmp_path: Path, name: str) -> None:
    array = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    out = read_idx(_write_idx(tmp_path / name, array))
    assert out.dtype == np.uint8 and out.shape == (2, 28, 28)
    assert np.array_equal(out, array)


def test_read_idx_rejects_bad_magic_naming_the_file(tmp_path: Path) -> None:
    path = _write_idx(tmp_path / "bad-idx3-ubyte", np.zeros((2, 28, 28)), magic=b"PK\x03\x04")
    with pytest.raises(IdxFormatError, match="not an IDX file") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_rejects_truncated_data(tmp_path: Path) -> None:
    path = _write_idx(tmp_path / "labels-idx1-ubyte", np.zeros(100))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(IdxFormatError, match="truncated or corrupt"):
        read_idx(path)


def test_read_idx_checks_dimensions(tmp_path: Path) -> None:
    path = _write_idx(tmp_path / "labels-idx1-ubyte", np.zeros(10))
    with pytest.raises(IdxFormatError, match="expected 3"):
        read_idx(path, ndim=3)


def test_fashion_mnist_prefers_a_local_idx_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_idx_dataset(tmp_path / "fashion-mnist", n_train=30, n_test=20, gz=True)

    def no_download(*args, **kwargs):
        raise AssertionError("downloaded although a local folder holds the files")

    monkeypatch.setattr(idx, "_torchvision_download", no_download)
    ds = load_dataset(DataConfig(dataset="fashion-mnist", root=str(tmp_path), fallback=""))
    assert ds.name == "fashion-mnist" and ds.note == ""
    assert ds.source == str(tmp_path / "fashion-mnist")
    assert ds.train.images.shape == (30, 28, 28) and ds.test.labels.shape == (20,)
    assert ds.train.images.dtype == torch.uint8 and ds.train.labels.dtype == torch.int64


def test_a_corrupt_local_file_is_reported_not_skipped(tmp_path: Path) -> None:
    _write_idx_dataset(tmp_path, n_train=30, n_test=20, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x14short")
    with pytest.raises(DatasetUnavailable, match="t10k-labels-idx1-ubyte"):
        load_dataset(DataConfig(dataset="fashion-mnist", root=str(tmp_path), fallback=""))


def test_fashion_mnist_from_the_debian_folder(tmp_path: Path) -> None:
    folder = idx.SYSTEM_FASHION_MNIST
    if not all(idx._find_idx(folder, base) for base in idx.IDX_FILES.values()):
        reason = f"{folder} is missing; install the Debian package dataset-fashion-mnist"
        if os.environ.get("CI"):
            pytest.fail(f"CI must have it: {reason}")
        pytest.skip(reason)
    cfg = DataConfig(
        dataset="fashion-mnist", root=str(tmp_path), download=False, fallback="", test_samples=500
    )
    ds = load_dataset(cfg)
    assert ds.name == "fashion-mnist" and ds.note == "" and ds.source == str(folder)
    assert ds.train.images.shape == (60_000, 28, 28) and ds.train.images.dtype == torch.uint8
    assert len(ds.test) == 500
    assert torch.bincount(ds.train.labels, minlength=10).tolist() == [6000] * 10


# ---------------------------------------------------------------- unavailable datasets and fallback


def test_missing_mnist_falls_back_visibly(tmp_path: Path) -> None:
    logged: list[str] = []
    cfg = DataConfig(dataset="mnist", root=str(tmp_path), download=False, train_samples=120, test_samples=30)
    ds = load_dataset(cfg, log=logged.append)
    assert ds.name == "synthetic-digits"
    assert ds.note.startswith("mnist was not found under") and ds.note.endswith(
        "using synthetic-digits (data.fallback)"
    )
    assert logged == [ds.note]
    assert len(ds.train) == 120 and len(ds.test) == 30


def test_failed_download_falls_back_and_restores_the_socket_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision.datasets.mnist as tv_mnist

    seen: list[float | None] = []

    def offline(url, *args, **kwargs):
        seen.append(socket.getdefaulttimeout())
        raise URLError("no network here")

    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", offline)
    monkeypatch.setattr(idx, "unresolvable", lambda name: "")  # names resolve; the download fails
    before = socket.getdefaulttimeout()
    logged: list[str] = []
    cfg = DataConfig(dataset="mnist", root=str(tmp_path), download=True, train_samples=50, test_samples=20)
    ds = load_dataset(cfg, log=logged.append)
    assert ds.name == "synthetic-digits"
    assert "mnist could not be downloaded" in ds.note and "no network here" in ds.note
    assert logged == [ds.note]
    assert seen and all(t == download.DOWNLOAD_TIMEOUT_S for t in seen)  # bounded while downloading
    assert socket.getdefaulttimeout() == before


def test_with_no_name_lookup_the_download_is_not_tried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Offline, a download cannot work: say so at once rather than import torchvision to fail.
    import torchvision.datasets.mnist as tv_mnist

    looked: list[str] = []

    def no_dns(host, *args, **kwargs):
        looked.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setattr(
        tv_mnist,
        "download_and_extract_archive",
        lambda *a, **k: pytest.fail("a download was tried with no name lookup"),
    )
    cfg = DataConfig(dataset="mnist", root=str(tmp_path), download=True, train_samples=50, test_samples=20)
    ds = load_dataset(cfg)
    assert ds.name == "synthetic-digits"
    assert "mnist could not be downloaded (offline: cannot resolve ossci-datasets.s3.amazonaws.com" in ds.note
    assert looked == list(download.DOWNLOAD_HOSTS["mnist"])  # every mirror was looked up first


def test_no_fallback_raises_with_cause_and_fix(tmp_path: Path) -> None:
    cfg = DataConfig(dataset="mnist", root=str(tmp_path), download=False, fallback="")
    with pytest.raises(DatasetUnavailable) as info:
        load_dataset(cfg, log=lambda note: pytest.fail("nothing may be substituted"))
    message = str(info.value)
    assert "mnist was not found under" in message and "data.download = false" in message
    assert "data.download = true" in message and str(tmp_path) in message
    assert 'data.fallback = "synthetic-digits"' in message


# ---------------------------------------------------------------- pipelines


def test_epoch_permutation_is_a_seeded_permutation() -> None:
    p = epoch_permutation(100, seed=4, epoch=2, device=CPU)
    assert p.dtype == torch.int64 and torch.equal(p.sort().values, torch.arange(100))
    assert torch.equal(p, epoch_permutation(100, seed=4, epoch=2, device=CPU))
    assert not torch.equal(p, epoch_permutation(100, seed=5, epoch=2, device=CPU))


def test_both_pipelines_give_identical_batches(small: Split) -> None:
    resident = ResidentBatches(small, 60, CPU, seed=11)
    loader = LoaderBatches(small, 60, CPU, seed=11)
    assert resident.iters_per_epoch == loader.iters_per_epoch == 5
    for epoch in range(2):
        a, b = _collect(resident, epoch), _collect(loader, epoch)
        assert [len(y) for _, y in a] == [60, 60, 60, 60, 10]  # drop_last=False, like the study
        _assert_same_batches(a, b)


def test_worker_processes_keep_the_same_batches(small: Split) -> None:
    resident = ResidentBatches(small, 64, CPU, seed=2)
    loader = LoaderBatches(small, 64, CPU, seed=2, num_workers=1)
    for epoch in range(2):  # the second epoch reuses the persistent worker
        _assert_same_batches(_collect(resident, epoch), _collect(loader, epoch))


def test_epochs_are_shuffled_differently(small: Split) -> None:
    for data in (ResidentBatches(small, 60, CPU, seed=0), LoaderBatches(small, 60, CPU, seed=0)):
        first, second = _collect(data, 0), _collect(data, 1)
        assert not torch.equal(torch.cat([y for _, y in first]), torch.cat([y for _, y in second]))
        assert not torch.equal(data.epoch_indices(0), data.epoch_indices(1))


def test_batches_cover_the_split_once_per_epoch(small: Split) -> None:
    data = ResidentBatches(small, 60, CPU, seed=0)
    seen = torch.cat([y for _, y in data.batches(0)])
    assert torch.equal(seen, small.labels[data.epoch_indices(0)])
    assert torch.equal(seen.sort().values, small.labels.sort().values)


def test_resident_values_are_what_to_tensor_gives(small: Split) -> None:
    from PIL import Image
    from torchvision.transforms import ToTensor

    data = ResidentBatches(small, 60, CPU, seed=0)
    assert data.images.shape == (250, 1, 28, 28) and data.labels.shape == (250,)
    for i in (0, 123, 249):
        expected = ToTensor()(Image.fromarray(small.images[i].numpy(), mode="L"))
        assert torch.equal(data.images[i], expected)


def test_runs_over_one_split_share_its_converted_copy(small: Split) -> None:
    # Every run of a sweep trains from the same split: converted and copied once, not once per run.
    a, b = ResidentBatches(small, 60, CPU, seed=0), ResidentBatches(small, 7, CPU, seed=3)
    assert a.images.data_ptr() == b.images.data_ptr() and a.labels.data_ptr() == b.labels.data_ptr()
    other = Split(small.images.clone(), small.labels.clone())  # equal values, another tensor: its own copy
    c = ResidentBatches(other, 60, CPU, seed=0)
    assert c.images.data_ptr() != a.images.data_ptr() and torch.equal(c.images, a.images)
    head = small.head(100)  # a view of the first samples: converted on its own, to its own length
    assert ResidentBatches(head, 10, CPU, seed=0).images.shape[0] == 100


def test_iterators_resume_mid_epoch_when_interleaved(small: Split) -> None:
    # The sweep takes a few iterations from one run's iterator, then another's.
    reference = [
        _collect(ResidentBatches(small, 50, CPU, seed=1), 0),
        _collect(LoaderBatches(small, 50, CPU, seed=1), 0),
    ]
    its = [
        iter(ResidentBatches(small, 50, CPU, seed=1).batches(0)),
        iter(LoaderBatches(small, 50, CPU, seed=1).batches(0)),
    ]
    got: list[list] = [[], []]
    for step in range(5):
        for k in (0, 1) if step % 2 else (1, 0):
            got[k].append(next(its[k]))
    for k in (0, 1):
        _assert_same_batches(got[k], reference[k])
        assert next(its[k], None) is None


def test_make_batches_follows_data_pipeline(small: Split) -> None:
    assert isinstance(make_batches(DataConfig(pipeline="resident"), small, 32, CPU, 0), ResidentBatches)
    loader = make_batches(DataConfig(pipeline="dataloader", pin_memory=True), small, 32, CPU, 0)
    assert isinstance(loader, LoaderBatches) and loader.iters_per_epoch == 8
    assert not loader.pinned  # pinning is for copies to a GPU only
    with pytest.raises(ValueError, match="unknown data.pipeline 'disk'"):
        make_batches(DataConfig(pipeline="disk"), small, 32, CPU, 0)


def test_eval_batches_hold_the_split_in_order(small: Split) -> None:
    batches = eval_batches(small, CPU, batch_size=100)
    assert [len(y) for _, y in batches] == [100, 100, 50]
    assert torch.equal(torch.cat([y for _, y in batches]), small.labels)
    assert torch.equal(
        torch.cat([x for x, _ in batches]).mul(255).round().to(torch.uint8).squeeze(1), small.images
    )


@pytest.mark.cuda
@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU: checks both pipelines agree on the device"
)
def test_both_pipelines_agree_on_cuda(small: Split) -> None:
    device = torch.device("cuda")
    resident = ResidentBatches(small, 60, device, seed=3)
    loader = LoaderBatches(small, 60, device, seed=3, pin_memory=True)
    assert loader.pinned
    assert resident.epoch_indices(0).device.type == "cuda"
    for epoch in range(2):
        a, b = _collect(resident, epoch), _collect(loader, epoch)
        assert all(x.device.type == "cuda" for x, _ in a + b)
        _assert_same_batches(a, b)
