"""The other built-in datasets: kmnist / cifar10 / cifar100 (read from torchvision's on-disk layout here, written
small in tmp_path), an image folder ("folder:PATH"), data.normalize, data.augment and the device-memory check
that falls back from the resident pipeline."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from trainer.config import Config, ConfigError, config_from_toml
from trainer.data import pipelines
from trainer.data.datasets import DatasetUnavailable, data_bytes, load_dataset
from trainer.data.pipelines import CropFlip, LoaderBatches, ResidentBatches
from trainer.runlog import Emitter, ListSink
from trainer.sweep.driver import run_sweep


def write_cifar(root, name="cifar10", n_batch=20, n_test=10, seed=0):
    """A tiny CIFAR folder in torchvision's layout: the "python version" pickles."""
    rng = np.random.default_rng(seed)
    classes = 10 if name == "cifar10" else 100
    folder = root / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
    folder.mkdir(parents=True)
    key = "labels" if name == "cifar10" else "fine_labels"
    files = (
        [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"] if name == "cifar10" else ["train", "test"]
    )
    for f in files:
        n = n_test if "test" in f else n_batch
        entry = {
            "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            key: rng.integers(0, classes, n).tolist(),
        }
        with open(folder / f, "wb") as out:
            pickle.dump(entry, out)
    meta = "batches.meta" if name == "cifar10" else "meta"
    with open(folder / meta, "wb") as out:
        pickle.dump({"label_names": [f"c{i}" for i in range(classes)]}, out)
    return folder


def _cfg(root, dataset, **data):
    cfg = Config()
    cfg.data.dataset, cfg.data.root, cfg.data.download, cfg.data.fallback = dataset, str(root), False, ""
    for k, v in data.items():
        setattr(cfg.data, k, v)
    return cfg


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_is_read_from_torchvisions_folder_as_colour_32x32(tmp_path, name):
    folder = write_cifar(tmp_path, name)
    ds = load_dataset(_cfg(tmp_path, name).data)
    n_train = 100 if name == "cifar10" else 20
    assert tuple(ds.train.images.shape) == (n_train, 3, 32, 32) and ds.train.images.dtype == torch.uint8
    assert len(ds.test) == 10 and ds.source == str(folder)
    assert ds.num_classes == (10 if name == "cifar10" else 100)
    # the rows are R, G, B planes: pixel (0, 0) of the red plane is byte 0, of the green plane byte 1024
    with open(folder / ("data_batch_1" if name == "cifar10" else "train"), "rb") as f:
        raw = pickle.load(f)["data"]
    assert ds.train.images[0, 0, 0, 0] == raw[0, 0] and ds.train.images[0, 1, 0, 0] == raw[0, 1024]


def test_cifar_missing_offline_names_the_folder_and_the_fix(tmp_path):
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset(_cfg(tmp_path, "cifar10").data)
    assert "data.download = false" in err.value.cause
    assert "copy cifar-10-batches-py" in err.value.fix and str(tmp_path) in err.value.fix


def test_cifar_missing_falls_back_visibly(tmp_path):
    cfg = _cfg(tmp_path, "cifar10", fallback="synthetic-digits", train_samples=100, test_samples=50)
    ds = load_dataset(cfg.data)
    assert ds.name == "synthetic-digits" and ds.note.startswith("cifar10 was not found")


def test_a_damaged_cifar_file_is_named(tmp_path):
    folder = write_cifar(tmp_path)
    (folder / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DatasetUnavailable, match="data_batch_3: not a CIFAR batch"):
        load_dataset(_cfg(tmp_path, "cifar10").data)


class _Hostile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_hostile_cifar_pickle_is_refused_and_never_run(tmp_path):
    folder = write_cifar(tmp_path)
    marker = tmp_path / "ran"
    with open(folder / "data_batch_2", "wb") as out:
        pickle.dump({"data": _Hostile(marker), "labels": [0]}, out)
    with pytest.raises(
        DatasetUnavailable, match=r"data_batch_2: not a CIFAR batch .*names (posix|os)\.system"
    ):
        load_dataset(_cfg(tmp_path, "cifar10").data)
    assert not marker.exists()


def test_a_cifar_pickle_written_by_old_numpy_is_read(tmp_path):
    """Toronto's files name numpy.core.multiarray (numpy 1); numpy 2 writes numpy._core."""
    folder = write_cifar(tmp_path)
    entry = {"data": np.full((3, 3072), 7, dtype=np.uint8), "labels": [1, 2, 3]}
    raw = pickle.dumps(entry, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in raw
    (folder / "data_batch_1").write_bytes(raw)
    ds = load_dataset(_cfg(tmp_path, "cifar10").data)
    assert (
        len(ds.train) == 83
        and int(ds.train.images[0, 0, 0, 0]) == 7
        and ds.train.labels[:3].tolist() == [1, 2, 3]
    )


@pytest.mark.parametrize("folder", ["kmnist", "KMNIST/raw"])
def test_kmnist_reads_its_idx_folder(tmp_path, folder):
    from tests.trainer.test_data import _write_idx_dataset

    _write_idx_dataset(tmp_path / folder, n_train=30, n_test=20, gz=False)
    ds = load_dataset(_cfg(tmp_path, "kmnist").data)
    assert ds.name == "kmnist" and tuple(ds.train.images.shape) == (30, 28, 28) and len(ds.test) == 20
    assert ds.source == str(tmp_path / folder)


def test_kmnist_missing_offline_says_so(tmp_path):
    with pytest.raises(DatasetUnavailable, match="kmnist was not found under") as err:
        load_dataset(_cfg(tmp_path, "kmnist").data)
    assert "set data.download = true" in err.value.fix


def _png(path, size=(8, 8), colour=(255, 0, 0)):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_an_image_folder_is_split_by_test_fraction_deterministically(tmp_path):
    for c, colour in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        for i in range(5):
            _png(tmp_path / "imgs" / c / f"{i}.png", colour=colour)
    cfg = _cfg(tmp_path, f"folder:{tmp_path / 'imgs'}", test_fraction=0.2)
    ds = load_dataset(cfg.data, seed=3)
    assert tuple(ds.train.images.shape) == (8, 3, 8, 8) and len(ds.test) == 2 and ds.num_classes == 2
    assert sorted(ds.test.labels.tolist()) == [0, 1], "each class is split alike"
    assert torch.equal(
        ds.train.images[ds.train.labels == 1][:, 2], torch.full((4, 8, 8), 255, dtype=torch.uint8)
    )
    again = load_dataset(cfg.data, seed=3)
    assert torch.equal(again.train.images, ds.train.images) and torch.equal(again.test.labels, ds.test.labels)


def test_an_image_folder_with_train_and_test_uses_them(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        for c in ("a", "b", "c"):
            for i in range(n):
                _png(tmp_path / split / c / f"{i}.png")
    ds = load_dataset(_cfg(tmp_path, f"folder:{tmp_path}").data)
    assert len(ds.train) == 9 and len(ds.test) == 6 and ds.num_classes == 3


def test_image_folder_errors_name_the_cause_and_the_fix(tmp_path):
    with pytest.raises(DatasetUnavailable, match="not a folder"):
        load_dataset(_cfg(tmp_path, f"folder:{tmp_path / 'nope'}").data)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetUnavailable, match="has no images") as err:
        load_dataset(_cfg(tmp_path, f"folder:{tmp_path / 'empty'}").data)
    assert "subfolder of images per class" in err.value.fix
    _png(tmp_path / "one" / "only" / "1.png")
    with pytest.raises(DatasetUnavailable, match="one class only"):
        load_dataset(_cfg(tmp_path, f"folder:{tmp_path / 'one'}").data)
    _png(tmp_path / "mixed" / "a" / "1.png", size=(8, 8))
    _png(tmp_path / "mixed" / "b" / "2.png", size=(9, 8))
    with pytest.raises(DatasetUnavailable, match=r"2.png is 9x8, the first 8x8") as err:
        load_dataset(_cfg(tmp_path, f"folder:{tmp_path / 'mixed'}").data)
    assert "resize every image" in err.value.fix


def test_config_checks_the_new_keys(tmp_path):
    with pytest.raises(ConfigError, match="data.test_fraction: must be in"):
        config_from_toml("[data]\ntest_fraction = 0\n")
    with pytest.raises(ConfigError, match='data.normalize: "per_image" is not allowed'):
        config_from_toml('[data]\nnormalize = "per_image"\n')
    with pytest.raises(ConfigError, match='"crop_flip" takes 32x32 images, but mnist'):
        config_from_toml('[data]\naugment = "crop_flip"\n')
    cfg = config_from_toml('[data]\ndataset = "folder:imgs"\n', source=str(tmp_path / "exp.toml"))
    assert cfg.data.dataset == f"folder:{tmp_path / 'imgs'}", "a relative folder is the config file's"


def test_normalize_dataset_gives_zero_mean_unit_std_and_caches_in_the_root(tmp_path):
    write_cifar(tmp_path)
    cfg = _cfg(tmp_path, "cifar10", normalize="dataset")
    ds = load_dataset(cfg.data)
    x = ds.train.images
    assert x.dtype == torch.float32 and tuple(x.shape) == (100, 3, 32, 32)
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(x.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    cache = tmp_path / "bstui-normalize.json"
    assert cache.is_file() and ds.normalization["cache"] == str(cache) and len(ds.normalization["mean"]) == 3
    # the test split is shifted by the training split's statistics, not its own
    raw = load_dataset(_cfg(tmp_path, "cifar10").data).test.images.float() / 255
    mean = torch.tensor(ds.normalization["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(ds.normalization["std"]).view(1, 3, 1, 1)
    assert torch.allclose(ds.test.images, (raw - mean) / std, atol=1e-5)


def test_normalize_on_a_read_only_root_keeps_statistics_in_memory(tmp_path, monkeypatch):
    write_cifar(tmp_path, seed=5)

    def read_only(*args, **kwargs):  # chmod would not stop root, who runs these tests in CI
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr("trainer.data.datasets.normalize.os.replace", read_only)
    logged = []
    ds = load_dataset(_cfg(tmp_path, "cifar10", normalize="dataset").data, log=logged.append)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar-10-batches-py"], "nothing written"
    assert ds.normalization["cache"] == "memory" and "not writable (Read-only file system)" in logged[0]
    assert abs(float(ds.train.images[:, 0].mean())) < 1e-4


def test_crop_flip_is_deterministic_keeps_the_shape_and_moves_pixels():
    x = torch.arange(4 * 3 * 32 * 32, dtype=torch.float32).view(4, 3, 32, 32)
    a, b = CropFlip(seed=1, device=torch.device("cpu")), CropFlip(seed=1, device=torch.device("cpu"))
    a.start_epoch(0)
    b.start_epoch(0)
    out = a(x)
    assert out.shape == x.shape and torch.equal(out, b(x))
    a.start_epoch(1)
    assert not torch.equal(a(x), out), "another epoch, other crops"
    # each image is a crop of the padded image, maybe flipped: every non-zero value comes from its own image
    for i in range(4):
        vals = out[i][out[i] != 0]
        assert ((vals >= x[i].min()) & (vals <= x[i].max())).all()


def test_both_pipelines_augment_alike(tmp_path):
    write_cifar(tmp_path)
    ds = load_dataset(_cfg(tmp_path, "cifar10").data)
    cpu = torch.device("cpu")
    res = list(ResidentBatches(ds.train, 32, cpu, seed=2, augment="crop_flip").batches(0))
    plain = list(ResidentBatches(ds.train, 32, cpu, seed=2).batches(0))
    loader = list(LoaderBatches(ds.train, 32, cpu, seed=2, augment="crop_flip").batches(0))
    assert len(res) == len(loader) == 4
    for (x, y), (lx, ly), (px, _) in zip(res, loader, plain):
        assert torch.equal(x, lx) and torch.equal(y, ly) and x.shape == px.shape
    assert not all(torch.equal(x, px) for (x, _), (px, _) in zip(res, plain))


def test_augment_on_an_image_that_is_not_32x32_is_refused(tmp_path):
    for c in ("a", "b"):
        for i in range(3):
            _png(tmp_path / "imgs" / c / f"{i}.png")
    with pytest.raises(
        DatasetUnavailable, match=r"shape \[3, 8, 8\], but data.augment = \"crop_flip\" takes 32x32"
    ):
        load_dataset(_cfg(tmp_path, f"folder:{tmp_path / 'imgs'}", augment="crop_flip").data)


def _sweep(tmp_path, **data):
    write_cifar(tmp_path)
    cfg = _cfg(tmp_path, "cifar10", **data)
    cfg.model.name = "resnet_small"
    cfg.model.args = {"width": 4}
    cfg.sweep.batch_sizes, cfg.sweep.epochs, cfg.sweep.device = [50], 1, "cpu"
    cfg.gns.every = 0
    sink = ListSink()
    result = run_sweep(cfg, Emitter([sink]), log=logs.append)
    return result, sink.events


logs: list[str] = []


@pytest.mark.training
def test_a_sweep_records_the_pipeline_the_data_size_and_the_normalization(tmp_path):
    result, events = _sweep(tmp_path, normalize="dataset", augment="crop_flip")
    assert result.status == "done"
    started = next(e for e in events if e["type"] == "sweep_started")
    assert started["pipeline"] == "resident" and started["pipeline_reason"] == ""
    assert started["data_bytes"] == 110 * (3 * 32 * 32 * 4 + 8)
    assert len(started["normalize"]["mean"]) == 3 and started["augment"] == "crop_flip"
    assert started["input_shape"] == [3, 32, 32] and started["classes"] == 10


@pytest.mark.training
def test_data_that_does_not_fit_falls_back_to_the_dataloader(tmp_path, monkeypatch):
    monkeypatch.setattr(pipelines, "free_memory", lambda device: 1000)
    logs.clear()
    result, events = _sweep(tmp_path)
    assert result.status == "done"
    started = next(e for e in events if e["type"] == "sweep_started")
    assert (
        started["pipeline"] == "dataloader"
        and "does not fit in cpu's free memory" in started["pipeline_reason"]
    )
    assert started["config"]["data"]["pipeline"] == "resident", (
        "the config as given; pipeline says what trains"
    )
    assert any("data.pipeline: the data" in m for m in logs)


def test_data_bytes_counts_float_inputs_and_labels(tmp_path):
    write_cifar(tmp_path)
    ds = load_dataset(_cfg(tmp_path, "cifar10").data)
    assert data_bytes(ds) == 110 * (3072 * 4 + 8)


@pytest.mark.training
def test_the_shipped_cifar10_experiment_parses_and_trains_an_epoch_on_a_cifar_folder(tmp_path):
    from pathlib import Path

    from trainer.config import load_config

    write_cifar(tmp_path, n_batch=40)
    root = Path(__file__).resolve().parents[2] / "experiments" / "cifar10-resnet.toml"
    cfg = load_config(root)
    assert (cfg.data.dataset, cfg.data.normalize, cfg.data.augment, cfg.model.name) == (
        "cifar10",
        "dataset",
        "crop_flip",
        "resnet_small",
    )
    assert cfg.sweep.batch_sizes == [32, 128, 512] and len(cfg.sweep.lr_grid.values()) == 4
    cfg = load_config(
        root,
        overrides=[
            f'data.root="{tmp_path}"',
            "data.download=false",
            "sweep.batch_sizes=[32,128]",
            "sweep.epochs=1",
            "sweep.device=cpu",
            "model.args.width=4",
            "gns.every=0",
            "gns.probe_every=0",
            "sweep.lr_grid.points=1",
        ],
    )
    sink = ListSink()
    assert run_sweep(cfg, Emitter([sink])).status == "done"
    started = sink.of_type("sweep_started")[0]
    assert started["dataset"] == "cifar10" and started["input_shape"] == [3, 32, 32] and started["normalize"]
    assert [e["run"].split("-")[0] for e in sink.of_type("epoch_end")] == ["bs32", "bs128"]


def test_the_cuda_graph_path_runs_an_augmented_run_eagerly_and_says_why(tmp_path, monkeypatch):
    """The graph gathers its batches inside the graph by a static index; crops drawn per batch cannot be
    replayed there, so where the fast path would be a CUDA graph, an augmented run is eager with a reason."""
    import trainer.engine.steps as steps
    from trainer.config import PerfConfig
    from trainer.models.builtin import build_model

    write_cifar(tmp_path)
    ds = load_dataset(_cfg(tmp_path, "cifar10").data)
    monkeypatch.setattr(steps, "resolve_fast_path", lambda *a, **k: "cuda_graph")  # as on a GPU
    model = build_model("resnet_small")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = ResidentBatches(ds.train, 32, torch.device("cpu"), seed=0, augment="crop_flip")
    step, reason = steps.choose_step(
        model,
        opt,
        batches,
        batch_size=32,
        split_chunks=1,
        split_method="vectorized",
        micro_batch=0,
        optim_name="sgd",
        perf=PerfConfig(),
        pipeline="resident",
        device=torch.device("cpu"),
    )
    assert step.fast_path == "eager" and "data.augment = crop_flip" in reason


def test_normalize_statistics_are_read_back_from_the_cache_and_new_data_is_new_statistics(
    tmp_path, monkeypatch
):
    import trainer.data.datasets.normalize as data

    write_cifar(tmp_path, seed=9)
    first = load_dataset(_cfg(tmp_path, "cifar10", normalize="dataset").data)
    data._STATS.clear()  # a new process: only the JSON file knows

    def no_recompute(images, chunk=4096):
        raise AssertionError("computed again")

    monkeypatch.setattr(data, "channel_stats", no_recompute)
    again = load_dataset(_cfg(tmp_path, "cifar10", normalize="dataset").data)
    assert again.normalization["mean"] == first.normalization["mean"] and torch.equal(
        again.train.images, first.train.images
    )
    import shutil

    shutil.rmtree(tmp_path / "cifar-10-batches-py")
    write_cifar(tmp_path, seed=10)  # other images in the same place
    with pytest.raises(AssertionError, match="computed again"):
        load_dataset(_cfg(tmp_path, "cifar10", normalize="dataset").data)


def test_augment_after_a_fallback_says_the_fallback_is_why_the_shape_is_wrong(tmp_path):
    cfg = _cfg(
        tmp_path,
        "cifar10",
        fallback="synthetic-digits",
        augment="crop_flip",
        train_samples=100,
        test_samples=50,
    )
    with pytest.raises(
        DatasetUnavailable,
        match=r"synthetic-digits holds inputs of shape \[1, 28, 28\] \(the "
        r"fallback: cifar10 was not found",
    ) as err:
        load_dataset(cfg.data)
    assert 'data.fallback = ""' in err.value.fix


def test_resnet_small_takes_the_classes_of_cifar100_from_model_args(tmp_path):
    from trainer.models.builtin import ModelError
    from trainer.sweep.prepare import check_model

    write_cifar(tmp_path, "cifar100")
    cfg = _cfg(tmp_path, "cifar100")
    ds = load_dataset(cfg.data)
    cfg.model.name = "resnet_small"
    with pytest.raises(ModelError) as err:
        check_model(cfg, ds)
    assert err.value.fix == "set [model.args] num_classes = 100"
    cfg.model.args = {"num_classes": 100}
    check_model(cfg, ds)
    assert config_from_toml(
        '[model]\nname = "resnet_small"\n[model.args]\nnum_classes = 100\n'
    ).model.args == {"num_classes": 100}


def test_cifar_offline_with_downloads_allowed_says_downloads_fail_and_what_to_copy(tmp_path, monkeypatch):
    from trainer.data.datasets import cifar

    monkeypatch.setattr(
        cifar, "unresolvable", lambda name: "cannot resolve www.cs.toronto.edu: Name or service not known"
    )
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset(_cfg(tmp_path, "cifar10", download=True).data)
    assert str(err.value).startswith(
        f"cifar10 was not found in {tmp_path} and downloads fail (offline: cannot resolve www.cs.toronto.edu"
    )
    assert err.value.fix.startswith("copy cifar-10-batches-py") and str(tmp_path) in err.value.fix
