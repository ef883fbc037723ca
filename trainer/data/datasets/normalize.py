"""data.normalize = "dataset": inputs shifted and scaled per channel by the training split's mean and
std, computed once and cached in data.root (bstui-normalize.json) when it is writable, in memory
otherwise; a cache entry that is damaged, hostile or of another dataset is named and rebuilt.
"""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path
from typing import Any, Callable

import torch

from trainer.config import DataConfig
from trainer.data.datasets.dataset import Dataset, Split, as_inputs

NORMALIZE_CACHE = "bstui-normalize.json"  # in data.root: the per-channel statistics of each dataset seen
_STATS: dict[str, dict[str, Any]] = {}  # the same, in memory (the only cache when data.root is read-only)


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the inputs as the model gets them (as_inputs), in float64, in chunks."""
    total = sq = None
    count = 0
    for i in range(0, images.shape[0], chunk):
        x = as_inputs(images[i : i + chunk]).to(torch.float64)
        s, s2 = x.sum(dim=(0, 2, 3)), (x * x).sum(dim=(0, 2, 3))
        total, sq = (s, s2) if total is None else (total + s, sq + s2)
        count += x.shape[0] * x.shape[2] * x.shape[3]
    assert total is not None and sq is not None
    mean = total / count
    std = (
        (sq / count - mean * mean).clamp_min(0).sqrt().clamp_min(1e-6)
    )  # a constant channel: no division by 0
    return [float(v) for v in mean], [float(v) for v in std]


def _cache_key(ds: Dataset) -> str:
    """The dataset's identity for the statistics cache: name, source, size, shape and a digest of its first and
    last samples (new files in the same place are new statistics)."""
    import hashlib

    x = ds.train.images
    digest = hashlib.sha1(
        x[:64].contiguous().numpy().tobytes() + x[-64:].contiguous().numpy().tobytes()
    ).hexdigest()[:16]
    return f"{ds.name}|{ds.source}|{len(ds.train)}|{list(x.shape[1:])}|{digest}"


#: The normalize cache holds a few hundred bytes per dataset; a file larger than this is not one it wrote.
MAX_CACHE_BYTES = 1 << 20


def _read_cache(path: Path) -> tuple[dict[str, Any], str]:
    """The normalize cache's entries, and why it could not be used ("" when it could, or is absent).
    Opened as a regular file (never a FIFO or a device, never waited on), at most MAX_CACHE_BYTES."""
    import json

    from trainer.runlog import UnreadableFile, read_text
    from trainer.runlog.files import describe_kind

    try:
        text = read_text(path, MAX_CACHE_BYTES)
    except FileNotFoundError:
        return {}, ""
    except UnreadableFile:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            mode = stat.S_IFREG
        if not stat.S_ISREG(mode):
            return {}, f"is {describe_kind(mode)}, not a regular file"
        return {}, f"is not UTF-8 text of at most {MAX_CACHE_BYTES:,} bytes"
    except OSError as exc:
        return {}, f"cannot be read ({exc.strerror or exc})"
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return {}, "is not JSON"
    if not isinstance(data, dict):
        return {}, "is not a JSON object"
    return data, ""


def stats_problem(stats: Any, channels: int, uint8: bool) -> str:
    """Why a cache entry is not usable statistics for `channels` input channels ("" when it is): mean and
    std must be lists of `channels` finite numbers, std at least 1e-6 (what channel_stats keeps); for
    8-bit images (inputs in [0, 1]) the mean lies in [0, 1] and the std in (0, 1]."""
    if not isinstance(stats, dict):
        return "its entry is not an object"
    for what in ("mean", "std"):
        values = stats.get(what)
        if not isinstance(values, list) or len(values) != channels:
            return f"its {what} is not a list of {channels} number{'s' if channels != 1 else ''}"
        if any(
            isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in values
        ):
            return f"its {what} holds something that is not a finite number"
    mean, std = stats["mean"], stats["std"]
    if any(v < 1e-6 for v in std):
        return "its std is not positive"
    if uint8 and (any(not 0.0 <= v <= 1.0 for v in mean) or any(v > 1.0 for v in std)):
        return "its values are out of range for 8-bit images (mean in [0, 1], std in (0, 1])"
    return ""


def normalize_dataset(ds: Dataset, cfg: DataConfig, log: Callable[[str], None] | None = None) -> None:
    """data.normalize = "dataset": train and test become float32 (x - mean) / std per channel, with the
    training split's mean and std, read from the cache (data.root/bstui-normalize.json, or memory) or
    computed once and cached. A cache that cannot be used (not a regular file, too large, not JSON, an
    entry of the wrong type or out of range) is said, naming the file, and rebuilt.
    ds.normalization records them and where they were kept."""
    import json

    key = _cache_key(ds)
    path = Path(os.path.expanduser(cfg.root)) / NORMALIZE_CACHE
    channels = as_inputs(ds.train.images[:1]).shape[1]
    uint8 = ds.train.images.dtype == torch.uint8
    say = log or (lambda msg: None)
    remembered = _STATS.get(key)
    if remembered is not None and not stats_problem(remembered, channels, uint8):
        mean, std, cached = (
            list(remembered["mean"]),
            list(remembered["std"]),
            remembered.get("cache", "memory"),
        )
    else:
        entries, problem = _read_cache(path)
        stats = entries.get(key)
        if key in entries and not problem:
            problem = stats_problem(stats, channels, uint8)
        if key in entries and not problem:
            mean, std, cached = [float(v) for v in stats["mean"]], [float(v) for v in stats["std"]], str(path)
        else:
            if problem:
                say(
                    f"data.normalize: the cache {path} {problem}; the statistics are computed again and the "
                    "file rewritten"
                )
            mean, std = channel_stats(ds.train.images)
            cached = "memory"
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                data, unusable = _read_cache(path)
                if unusable:
                    data = {}  # what is there is not a cache: replaced whole
                data[key] = {"mean": mean, "std": std}
                tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
                try:
                    tmp.write_text(json.dumps(data, indent=1))
                    os.replace(tmp, path)  # replaces a link or a FIFO there, never writes through it
                finally:
                    tmp.unlink(missing_ok=True)
                cached = str(path)
            except OSError as exc:  # a read-only data.root: memory only, said once
                say(
                    f"data.normalize: {path.parent} is not writable ({exc.strerror or exc}); statistics kept in memory"
                )
    _STATS[key] = {"mean": mean, "std": std, "cache": cached}
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    ds.train = Split(as_inputs(ds.train.images).sub_(m).div_(s), ds.train.labels)
    ds.test = Split(as_inputs(ds.test.images).sub_(m).div_(s), ds.test.labels)
    ds.normalization = {"mean": mean, "std": std, "cache": cached}
