"""An image folder, data.dataset = "folder:PATH": one subfolder of images per class, optionally under
PATH/train and PATH/test (otherwise data.test_fraction of each class is held out, chosen by the seed),
read without following symbolic links or opening anything but regular files.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer.config.schema import FOLDER_PREFIX
from trainer.config.user_code import one_line
from trainer.data.datasets.dataset import Dataset, DatasetUnavailable, Split
from trainer.data.datasets.download import short_error

FOLDER_FIX = (
    "put one subfolder of images per class in the folder (PATH/cat/1.png, PATH/dog/2.png), optionally "
    "under PATH/train and PATH/test"
)


def _read_folder(name: str, folder: Path) -> tuple[list[str], list[tuple[str, int]], int]:
    """The classes (subfolders, sorted) and (path, class) samples of `folder`, as torchvision's ImageFolder
    finds them, but never through a symbolic link (a link out of the tree, or back into it, would read
    files twice or from elsewhere) and only regular files (a FIFO named zz.png would hang the read).
    Also how many links and other non-regular entries were skipped. DatasetUnavailable when a class has
    no image."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    skipped = 0
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        raise DatasetUnavailable(name, f"cannot list {folder} ({short_error(exc)})", FOLDER_FIX) from exc
    classes = []
    for entry in entries:
        if entry.is_symlink():
            skipped += 1
        elif entry.is_dir(follow_symlinks=False):
            classes.append(entry.name)
    if not classes:
        raise DatasetUnavailable(
            name, f"has no images in class subfolders of {folder} (no class subfolder)", FOLDER_FIX
        )
    samples: list[tuple[str, int]] = []
    empty = []
    for index, cls in enumerate(classes):
        found = 0
        for root, dirs, files in sorted(os.walk(folder / cls, followlinks=False)):
            skipped += sum(1 for d in dirs if os.path.islink(os.path.join(root, d)))  # listed, never entered
            for file in sorted(files):
                if not file.lower().endswith(IMG_EXTENSIONS):
                    continue
                path = os.path.join(root, file)
                try:
                    regular = stat.S_ISREG(os.lstat(path).st_mode)
                except OSError:
                    regular = False
                if not regular:
                    skipped += 1
                    continue
                samples.append((path, index))
                found += 1
        if not found:
            empty.append(cls)
    if empty:
        raise DatasetUnavailable(
            name,
            f"has no images in class subfolders of {folder} (none in "
            f"{', '.join(empty[:5])}{' ...' if len(empty) > 5 else ''})",
            FOLDER_FIX,
        )
    return classes, samples, skipped


def _open_image_file(name: str, path: str) -> Any:
    """An image file opened for reading: a regular file, never through a link, never waited on."""
    flags = (
        os.O_RDONLY
        | getattr(os, "O_NOFOLLOW", 0)
        | getattr(os, "O_NONBLOCK", 0)
        | getattr(os, "O_CLOEXEC", 0)
    )
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise DatasetUnavailable(
            name, f"cannot open the image {path} ({exc.strerror or exc})", "replace or remove that file"
        ) from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise DatasetUnavailable(name, f"{path} is not a regular file", "replace or remove it")
    return os.fdopen(fd, "rb")


def _read_images(
    name: str, samples: list[tuple[str, int]], size: tuple[int, int] | None
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """The images as uint8 [N, 3, H, W] (every image as RGB) and their labels; all must be one size."""
    from PIL import Image

    arrays = []
    for path, _ in samples:
        with _open_image_file(name, path) as f:
            try:
                with Image.open(f) as img:
                    rgb = img.convert("RGB")
            except Exception as exc:  # noqa: BLE001 - not an image, truncated
                raise DatasetUnavailable(
                    name, f"cannot read the image {path} ({one_line(exc)})", "replace or remove that file"
                ) from exc
        if size is None:
            size = rgb.size
        elif rgb.size != size:
            raise DatasetUnavailable(
                name,
                f"holds images of different sizes: {path} is {rgb.size[0]}x{rgb.size[1]}, the first "
                f"{size[0]}x{size[1]}",
                f"resize every image to one size (e.g. {size[0]}x{size[1]}) before training",
            )
        arrays.append(np.asarray(rgb, dtype=np.uint8))
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    y = torch.tensor([label for _, label in samples], dtype=torch.int64)
    assert size is not None
    return x, y, size


def _skipped(n: int) -> str:
    return (
        f"; {n} symbolic link{'s' if n != 1 else ''} or non-regular file{'s' if n != 1 else ''} skipped"
        if n
        else ""
    )


def _real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def load_image_folder(name: str, test_fraction: float, seed: int) -> Dataset:
    """An image folder, read once into uint8 tensors: PATH/train and PATH/test when both exist (the same
    classes), else PATH split per class into test_fraction for testing and the rest for training (by seed)."""
    folder = Path(name[len(FOLDER_PREFIX) :])
    if not folder.is_dir():
        raise DatasetUnavailable(name, f"names {folder}, which is not a folder", FOLDER_FIX)
    if _real_dir(folder / "train") and _real_dir(folder / "test"):
        classes, train_samples, skipped = _read_folder(name, folder / "train")
        test_classes, test_samples, test_skipped = _read_folder(name, folder / "test")
        skipped += test_skipped
        if test_classes != classes:
            raise DatasetUnavailable(
                name,
                f"has classes {classes} in train but {test_classes} in test",
                "give train and test the same class subfolders",
            )
        if len(classes) < 2:
            raise DatasetUnavailable(
                name, f"has one class only ({classes[0]})", "add a subfolder per class, two at least"
            )
        train_x, train_y, size = _read_images(name, train_samples, None)
        test_x, test_y, _ = _read_images(name, test_samples, size)
        source = f"{folder} (train/ and test/{_skipped(skipped)})"
    else:
        classes, samples, skipped = _read_folder(name, folder)
        if len(classes) < 2:
            raise DatasetUnavailable(
                name, f"has one class only ({classes[0]})", "add a subfolder per class, two at least"
            )
        x, y, _ = _read_images(name, samples, None)
        g = torch.Generator().manual_seed(seed)
        test_idx: list[int] = []
        for c in range(len(classes)):  # each class split alike, so a small class still has test images
            idx = (y == c).nonzero().flatten()
            idx = idx[torch.randperm(len(idx), generator=g)]
            test_idx += idx[: round(len(idx) * test_fraction)].tolist()
        is_test = torch.zeros(len(y), dtype=torch.bool)
        is_test[test_idx] = True
        if is_test.all() or not is_test.any():
            raise DatasetUnavailable(
                name,
                f"has {len(y)} images, too few to hold out data.test_fraction = {test_fraction} of them",
                "add images, or use PATH/train and PATH/test",
            )
        train_x, train_y, test_x, test_y = x[~is_test], y[~is_test], x[is_test], y[is_test]
        source = f"{folder} ({test_fraction:g} held out, seed {seed}{_skipped(skipped)})"
    return Dataset(
        name,
        "",
        source,
        Split(train_x.contiguous(), train_y),
        Split(test_x.contiguous(), test_y),
        num_classes=len(classes),
    )
