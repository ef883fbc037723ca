"""The two input pipelines a run trains from (`make_batches`).

Both yield the same batches, in the same order, for the same seed and device, so any difference in
their timings is the input pipeline alone.
- `ResidentBatches`: the whole split on the device as float32 once; a batch is one gather by a slice
  of the epoch's permutation (no host work, no host sync).
- `LoaderBatches`: the study's loop: a DataLoader whose dataset makes a PIL image and applies
  ToTensor per sample, collates on the host, then copies to the device.
"""

from __future__ import annotations

import math
import weakref
from typing import Iterator

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Sampler
from torch.utils.data import Dataset as TorchDataset

from trainer.config import PIPELINES, DataConfig
from trainer.data.datasets import Split, as_inputs, is_grey


def epoch_permutation(n: int, seed: int, epoch: int, device: torch.device) -> torch.Tensor:
    """The order of an epoch: int64 [n] on `device`, from a generator on that device
    (no host sync on a GPU). Both pipelines use it, so on one device they agree."""
    g = torch.Generator(device=device)
    g.manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g, device=device)


#: Converted splits, per source tensor and device: every run of a sweep trains from the same split,
#: so it is converted and copied once (that took ~2.5 s per run at 60,000 samples on a 2-core CPU,
#: and each copy is 188 MB of device memory). An entry lives as long as its source tensor.
_RESIDENT: dict[int, tuple[weakref.ref[Split], dict[torch.device, tuple[torch.Tensor, torch.Tensor]]]] = {}


def resident(split: Split, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """`split` as float32 [N, 1, 28, 28] in [0, 1] (a factory's: its inputs as float32) and int64 labels on
    `device`, converted once.

    Converted on the CPU exactly as ToTensor does (float, then / 255), then copied: on CUDA,
    dividing by a scalar multiplies by its reciprocal and can differ in the last bit, and the two
    pipelines must give identical batches. The tensors are shared and read-only by contract.
    """
    device = torch.device(device)
    key = id(split)  # a Split is immutable (frozen): its tensors are its own for its life
    entry = _RESIDENT.get(key)
    if entry is None or entry[0]() is not split:
        entry = _RESIDENT[key] = (weakref.ref(split), {})
        weakref.finalize(split, _RESIDENT.pop, key, None)
    per_device = entry[1]
    if device not in per_device:
        per_device[device] = (as_inputs(split.images).to(device), split.labels.to(device, torch.int64))
    return per_device[device]


PAD = 4  # data.augment = "crop_flip": pixels of zero padding around each image before the 32x32 crop


class CropFlip:
    """data.augment = "crop_flip": each image of a training batch padded by PAD zero pixels, cropped back at a
    random offset and flipped left-right with probability 1/2, in one gather on the batch's device.

    Deterministic: the offsets and flips of an epoch come from one generator on the device seeded by
    (seed, epoch), drawn batch after batch, so both pipelines (which give the same batches) augment alike.
    Zero padding is of the inputs as the model gets them (after data.normalize)."""

    def __init__(self, seed: int, device: torch.device) -> None:
        self.seed, self.device = seed, torch.device(device)
        self.generator = torch.Generator(device=self.device)

    def start_epoch(self, epoch: int) -> None:
        self.generator.manual_seed((self.seed * 1_000_003 + epoch) * 7919 + 17)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g, dev = self.generator, x.device
        dy = torch.randint(0, 2 * PAD + 1, (b,), generator=g, device=dev)
        dx = torch.randint(0, 2 * PAD + 1, (b,), generator=g, device=dev)
        flip = torch.rand((b,), generator=g, device=dev) < 0.5
        padded = F.pad(x, (PAD, PAD, PAD, PAD))
        ar_h, ar_w = torch.arange(h, device=dev), torch.arange(w, device=dev)
        rows = dy[:, None] + ar_h[None, :]  # [b, h]
        cols = dx[:, None] + torch.where(flip[:, None], (w - 1) - ar_w[None, :], ar_w[None, :])  # [b, w]
        return padded[
            torch.arange(b, device=dev)[:, None, None, None],
            torch.arange(c, device=dev)[None, :, None, None],
            rows[:, None, :, None],
            cols[:, None, None, :],
        ]


def make_augment(name: str, seed: int, device: torch.device) -> CropFlip | None:
    if name == "none":
        return None
    if name == "crop_flip":
        return CropFlip(seed, device)
    raise ValueError(f"unknown data.augment {name!r}; known: none, crop_flip")


class ResidentBatches:
    """The whole split on the device, converted once; batches are gathers (then, with data.augment =
    "crop_flip", cropped and flipped on the device: `augment`, None without).

    `images` float32 [N, 1, 28, 28] in [0, 1] (x / 255, exactly what ToTensor gives)
    and `labels` int64 [N] are public, with `batch_size` and `n`, so a CUDA-graph path
    can gather inside a graph."""

    def __init__(
        self, split: Split, batch_size: int, device: torch.device, seed: int, augment: str = "none"
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.augment = make_augment(augment, seed, self.device)
        self.batch_size = batch_size
        self.seed = seed
        self.n = len(split)
        self.images, self.labels = resident(split, self.device)
        self.input_shape = tuple(self.images.shape[1:])  # one sample as the model sees it: (1, 28, 28)

    @property
    def iters_per_epoch(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def epoch_indices(self, epoch: int) -> torch.Tensor:
        return epoch_permutation(self.n, self.seed, epoch, self.device)

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(x, y) for each iteration of `epoch`, from its sample `start` on (a run whose batch size
        changed mid-epoch); the last batch may be smaller."""
        perm = self.epoch_indices(epoch)
        if self.augment is not None:
            self.augment.start_epoch(epoch)
        for first in range(start, self.n, self.batch_size):
            idx = perm[first : first + self.batch_size]
            x = self.images[idx]
            yield (self.augment(x) if self.augment is not None else x), self.labels[idx]


class SplitImages(TorchDataset):
    """Per-sample work like torchvision's MNIST.__getitem__: a PIL "L" image from the
    uint8 array, then ToTensor. This is the CPU cost the study's epoch time includes."""

    def __init__(self, split: Split) -> None:
        from torchvision.transforms import ToTensor

        self.grey = is_grey(split.images)  # a factory's inputs are already tensors: no PIL image to make
        self.images = split.images.numpy() if self.grey else split.images
        self.labels = split.labels
        self.to_tensor = ToTensor()

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not self.grey:
            return as_inputs(self.images[index : index + 1])[0], int(self.labels[index])
        from PIL import Image

        img = Image.fromarray(self.images[index])  # 2-D uint8 -> mode "L"
        return self.to_tensor(img), int(self.labels[index])


class _EpochSampler(Sampler[int]):
    """Yields the current epoch's permutation (one host copy per epoch)."""

    def __init__(self, n: int, seed: int, device: torch.device) -> None:
        self.n, self.seed, self.device = n, seed, device
        self.epoch = 0
        self.start = 0  # the epoch's first sample to yield (a batch size changed mid-epoch)

    def __iter__(self) -> Iterator[int]:
        return iter(epoch_permutation(self.n, self.seed, self.epoch, self.device)[self.start :].tolist())

    def __len__(self) -> int:
        return self.n - self.start


class LoaderBatches:
    """The study's input loop: DataLoader over per-sample PIL + ToTensor, host collate,
    copy to the device. Same order and values as ResidentBatches for the same seed."""

    def __init__(
        self,
        split: Split,
        batch_size: int,
        device: torch.device,
        seed: int,
        num_workers: int = 0,
        pin_memory: bool = False,
        augment: str = "none",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.augment = make_augment(augment, seed, self.device)  # on the device, after the copy
        self.batch_size = batch_size
        self.seed = seed
        self.n = len(split)
        self.input_shape = tuple(as_inputs(split.images[:1]).shape[1:])  # one sample as the model sees it
        # Pinning only helps copies to a GPU (and warns without one).
        self.pinned = bool(pin_memory) and self.device.type == "cuda"
        self.sampler = _EpochSampler(self.n, seed, self.device)
        self.loader = DataLoader(
            SplitImages(split),
            batch_size=batch_size,
            sampler=self.sampler,
            num_workers=num_workers,
            pin_memory=self.pinned,
            drop_last=False,
            # Keep workers across epochs: their start-up is not the per-sample cost under study.
            persistent_workers=num_workers > 0,
        )

    @property
    def iters_per_epoch(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def epoch_indices(self, epoch: int) -> torch.Tensor:
        return epoch_permutation(self.n, self.seed, epoch, self.device)

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(x, y) on the device for each iteration of `epoch`, from its sample `start` on; the last may
        be smaller."""
        self.sampler.epoch, self.sampler.start = epoch, start
        if self.augment is not None:
            self.augment.start_epoch(epoch)
        for x, y in self.loader:
            x = x.to(self.device, non_blocking=self.pinned)
            yield (
                (self.augment(x) if self.augment is not None else x),
                y.to(self.device, non_blocking=self.pinned),
            )


Batches = ResidentBatches | LoaderBatches


def make_batches(cfg: DataConfig, split: Split, batch_size: int, device: torch.device, seed: int) -> Batches:
    """The input pipeline cfg.pipeline names, over `split`."""
    if cfg.pipeline == "resident":
        return ResidentBatches(split, batch_size, device, seed, cfg.augment)
    if cfg.pipeline == "dataloader":
        return LoaderBatches(split, batch_size, device, seed, cfg.num_workers, cfg.pin_memory, cfg.augment)
    raise ValueError(f"unknown data.pipeline {cfg.pipeline!r}; known: {', '.join(PIPELINES)}")


def eval_batches(
    split: Split, device: torch.device, batch_size: int = 2000
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The split resident on the device in large batches, in order, for evaluation
    (not part of the study's timings, so both pipelines evaluate the fast way).
    Returned as a list so a run converts it once and reuses it every epoch."""
    data = ResidentBatches(split, batch_size, device, seed=0)
    return [
        (data.images[i : i + batch_size], data.labels[i : i + batch_size])
        for i in range(0, data.n, batch_size)
    ]


#: Share of the device's free memory the resident data may take (the rest: the model, its activations,
#: the optimizer, and on the CPU the host copy of the dataset the pipeline converts from).
MEMORY_SHARE = {"cuda": 0.8, "cpu": 0.5}


def free_memory(device: torch.device) -> int | None:
    """Bytes free on `device` now (CUDA: torch.cuda.mem_get_info; CPU: MemAvailable of /proc/meminfo, or
    psutil's available), None when it cannot be told (then the resident pipeline is kept)."""
    device = torch.device(device)
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except Exception:  # noqa: BLE001 - no driver answer: cannot tell
            return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil  # type: ignore[import-untyped]

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - not installed
        return None


def mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB" if n >= 2**20 else f"{n / 1024:,.0f} KiB"


def choose_pipeline(pipeline: str, data_bytes: int, device: torch.device) -> tuple[str, str]:
    """The pipeline a sweep trains with and why it is not the configured one ("" when it is): the resident
    pipeline falls back to the DataLoader when the dataset's tensors would not fit in the device's free memory
    (with a margin: MEMORY_SHARE)."""
    if pipeline != "resident":
        return pipeline, ""
    device = torch.device(device)
    free = free_memory(device)
    if free is None:
        return pipeline, ""
    room = int(free * MEMORY_SHARE.get(device.type, 0.5))
    if data_bytes <= room:
        return pipeline, ""
    return "dataloader", (
        f"the data ({mib(data_bytes)} as float32) does not fit in {device.type}'s free memory "
        f"({mib(free)} free, {MEMORY_SHARE.get(device.type, 0.5):.0%} of it usable): "
        "the DataLoader pipeline copies each batch instead"
    )
