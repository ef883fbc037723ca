"""User data read carelessly or with malice in mind: image folders with symbolic links and FIFOs, a
damaged or hostile data.normalize cache, and data holding NaN or infinity."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
import torch

from trainer.config import Config
from trainer.data.datasets import NORMALIZE_CACHE, DatasetUnavailable, load_dataset


def _cfg(root, dataset, **data):
    cfg = Config()
    cfg.data.dataset, cfg.data.root, cfg.data.download, cfg.data.fallback = dataset, str(root), False, ""
    for k, v in data.items():
        setattr(cfg.data, k, v)
    return cfg


def _png(path: Path, colour=(255, 0, 0)) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)


def _folder(root: Path, per_class: int = 6) -> Path:
    for c, colour in (("a", (255, 0, 0)), ("b", (0, 0, 255))):
        for i in range(per_class):
            _png(root / c / f"{i}.png", colour)
    return root


def _load_within(cfg, seconds: float = 60.0):
    """load_dataset in a thread: a read that hangs fails the test instead of hanging it."""
    result: dict = {}

    def load():
        try:
            result["ds"] = load_dataset(cfg.data, seed=0)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            result["error"] = exc

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "loading the data hung"
    if "error" in result:
        raise result["error"]
    return result["ds"]


# -- image folders ---------------------------------------------------------------------------------------


def test_a_symlink_loop_in_an_image_folder_is_not_followed(tmp_path):
    imgs = _folder(tmp_path / "imgs")
    os.symlink("..", imgs / "a" / "up")  # back into the tree: every image again, 40 times over
    os.symlink(str(tmp_path / "imgs" / "b"), imgs / "c")  # a class that is a link to another class
    ds = _load_within(_cfg(tmp_path, f"folder:{imgs}", test_fraction=0.5))
    assert len(ds.train) + len(ds.test) == 12 and ds.num_classes == 2
    assert "2 symbolic links or non-regular files skipped" in ds.source


def test_a_link_to_an_image_outside_the_tree_is_not_read(tmp_path):
    imgs = _folder(tmp_path / "imgs")
    _png(tmp_path / "outside" / "secret.png", (0, 255, 0))
    os.symlink(tmp_path / "outside" / "secret.png", imgs / "a" / "z.png")
    ds = _load_within(_cfg(tmp_path, f"folder:{imgs}", test_fraction=0.5))
    assert len(ds.train) + len(ds.test) == 12
    green = torch.tensor([0, 255, 0], dtype=torch.uint8).view(1, 3, 1, 1)
    assert not (torch.cat([ds.train.images, ds.test.images]) == green).all(dim=1).any()


def test_a_fifo_named_like_an_image_does_not_hang_loading(tmp_path):
    imgs = _folder(tmp_path / "imgs")
    os.mkfifo(imgs / "b" / "zz.png")
    ds = _load_within(_cfg(tmp_path, f"folder:{imgs}", test_fraction=0.5))
    assert len(ds.train) + len(ds.test) == 12 and "1 symbolic link or non-regular file skipped" in ds.source


def test_a_class_left_with_no_regular_image_is_named(tmp_path):
    imgs = _folder(tmp_path / "imgs")
    (imgs / "c").mkdir()
    os.mkfifo(imgs / "c" / "1.png")
    with pytest.raises(DatasetUnavailable, match=r"has no images in class subfolders .*none in c"):
        _load_within(_cfg(tmp_path, f"folder:{imgs}"))


# -- the data.normalize cache ----------------------------------------------------------------------------


def _tiny(seed: int = 0):
    from trainer.data.datasets import Dataset, Split

    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (40, 3, 4, 4), dtype=torch.uint8, generator=g)
    labels = torch.arange(40) % 2
    return Dataset(
        "tiny", "", f"test {seed}", Split(images[:30], labels[:30]), Split(images[30:], labels[30:]), 2
    )


def _normalize(tmp_path, monkeypatch, ds=None):
    import trainer.data.datasets.normalize as data

    monkeypatch.setattr(data, "_STATS", {})  # the in-memory cache of this process would hide the file
    ds = ds or _tiny()
    logged: list[str] = []
    cfg = _cfg(tmp_path, "mnist", normalize="dataset")
    data.normalize_dataset(ds, cfg.data, logged.append)
    return ds, logged


def _fresh_stats():
    from trainer.data.datasets import channel_stats

    return channel_stats(_tiny().train.images)


def _key():
    from trainer.data.datasets.normalize import _cache_key

    return _cache_key(_tiny())


@pytest.mark.parametrize(
    "entry, said",
    [
        ({"mean": ["abc"] * 3, "std": [0.2] * 3}, "its mean holds something that is not a finite number"),
        (None, "its entry is not an object"),
        ({"mean": None, "std": None}, "its mean is not a list of 3 numbers"),
        ({"mean": [0.5] * 3, "std": [0.0] * 3}, "its std is not positive"),
        ({"mean": [float("nan")] * 3, "std": [0.2] * 3}, "not a finite number"),
        ({"mean": [0.5] * 3, "std": [0.2] * 2}, "its std is not a list of 3 numbers"),
        ({"mean": [40.0] * 3, "std": [0.2] * 3}, "out of range for 8-bit images"),
        ({"mean": [True] * 3, "std": [0.2] * 3}, "not a finite number"),
    ],
)
def test_a_wrong_cache_entry_is_named_and_rebuilt(tmp_path, monkeypatch, entry, said):
    cache = tmp_path / NORMALIZE_CACHE
    cache.write_text(json.dumps({_key(): entry}))
    ds, logged = _normalize(tmp_path, monkeypatch)
    assert logged and str(cache) in logged[0] and said in logged[0], logged
    mean, std = _fresh_stats()
    assert ds.normalization["mean"] == pytest.approx(mean) and ds.normalization["std"] == pytest.approx(std)
    assert torch.isfinite(ds.train.images).all()
    assert json.loads(cache.read_text())[_key()] == {
        "mean": ds.normalization["mean"],
        "std": ds.normalization["std"],
    }
    _, again = _normalize(tmp_path, monkeypatch)  # rebuilt: read back silently
    assert again == []


@pytest.mark.parametrize("kind", ["link to /dev/zero", "fifo", "too large", "not json", "a list", "deep"])
def test_a_cache_that_is_not_a_cache_is_never_waited_on_and_is_replaced(tmp_path, monkeypatch, kind):
    cache = tmp_path / NORMALIZE_CACHE
    if kind == "link to /dev/zero":
        os.symlink("/dev/zero", cache)
    elif kind == "fifo":
        os.mkfifo(cache)
    elif kind == "too large":
        cache.write_text(json.dumps({_key(): {"mean": [0.5] * 3, "std": [0.2] * 3}, "pad": "x" * (2 << 20)}))
    elif kind == "not json":
        cache.write_bytes(b"\xff\x00{")
    elif kind == "a list":
        cache.write_text("[1, 2]")
    else:
        cache.write_text("[" * 100_000)
    result: dict = {}
    thread = threading.Thread(
        target=lambda: result.update(zip(("ds", "log"), _normalize(tmp_path, monkeypatch))), daemon=True
    )
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "reading the cache hung"
    logged = result["log"]
    assert logged and str(cache) in logged[0] and "computed again" in logged[0], logged
    assert (
        cache.is_file() and not cache.is_symlink() and cache.stat().st_size < 4096
    )  # replaced by a real cache
    assert result["ds"].normalization["cache"] == str(cache)


# -- property: whatever the cache holds ------------------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["mean", "std", "x"]), children, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(entry=_json, channels=st.integers(min_value=1, max_value=4), uint8=st.booleans())
def test_any_cache_entry_is_either_usable_statistics_or_refused(entry, channels, uint8):
    import math

    from trainer.data.datasets import stats_problem

    problem = stats_problem(entry, channels, uint8)
    assert isinstance(problem, str)
    if not problem:
        for what in ("mean", "std"):
            assert len(entry[what]) == channels and all(math.isfinite(float(v)) for v in entry[what])
        assert all(v >= 1e-6 for v in entry["std"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=200) | _json.map(lambda v: json.dumps(v).encode()))
def test_any_cache_file_reads_as_entries_or_a_reason(tmp_path_factory, content):
    from trainer.data.datasets.normalize import _read_cache

    path = tmp_path_factory.mktemp("root") / NORMALIZE_CACHE
    path.write_bytes(content)
    entries, problem = _read_cache(path)
    assert isinstance(entries, dict) and isinstance(problem, str)
    assert not (entries and problem)
