"""synthetic-digits: MNIST-like digits made here, with no network.

Why: the study needs MNIST, and a box without network (or a CI runner) still has to
show the batch-size effects. The digits come from the one font that ships inside
Pillow (`ImageFont.load_default(size=...)`, FreeType, Pillow >= 10.1), rendered once
into a few glyph templates per digit (stroke weights), then each sample gets its
own random affine warp (rotation, scale, aspect, shear, translation), a smooth
elastic wobble (handwriting-like), blur, brightness and noise. The warps are done
in torch on whole chunks at once (one matmul builds the sampling grids, then
grid_sample), so 70,000 images take seconds (about 3 s on 2 threads of a GPU box's
CPU; cached by trainer.data.datasets under root/synthetic-digits/).

Deterministic: the same (n, seed, stream) gives the same bytes. Samples are made in
fixed-size chunks, each from its own generator seeded from (seed, stream, chunk), so
the first N of a larger set are exactly the set of size N (quick runs that take the
first N samples see the same images as full runs), and train (stream 0) and test
(stream 1) never share a random stream.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
import zlib
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from trainer.runlog import UnreadableFile, read_bytes, write_atomic

# Bump when the generator changes what it produces (invalidates on-disk caches).
GENERATOR_VERSION = 1

SIZE = 28  # output images are SIZE x SIZE, like MNIST
_SUPER = 2  # warps are sampled at SUPER x SIZE, then box-filtered down (anti-aliasing)
_TEMPLATE = 64  # glyph templates are _TEMPLATE x _TEMPLATE
_CHUNK = 1000  # samples per random stream; multiple of 10 so every chunk is label-balanced


@dataclass(frozen=True)
class SyntheticParams:
    """How hard the digits are. Tuned with bench/synthetic_difficulty.py so the study's
    SimpleModel (SGD lr 0.02, momentum 0.5, batch 60) needs 2-3 epochs to pass 95% test
    accuracy and about 6 to reach 98% (seeds 0, 1: 86.7/93.9/96.0/96.7/96.8/97.6% and
    89.0/95.4/96.3/97.4/97.8/98.0% after epochs 1-6); MNIST reaches ~98% in 2-3."""

    glyph_height: float = 0.70  # digit height as a fraction of the image (MNIST: ~20/28)
    stroke_widths: tuple[int, ...] = (0, 2, 4, 6)  # PIL stroke widths at render size 96 (weights)
    rotation_deg: float = 22.0  # uniform in +-
    scale: tuple[float, float] = (0.75, 1.12)  # overall size factor, uniform
    aspect: float = 0.25  # log-uniform width/height stretch in exp(+-aspect)
    shear: float = 0.4  # uniform in +- (x shift per unit y), slant like handwriting
    translate_px: float = 3.5  # uniform in +- pixels (of the 28 x 28 image), each axis
    elastic: float = 0.11  # smooth displacement amplitude, in normalised [-1, 1] units
    elastic_grid: int = 4  # control points per side of the displacement field
    blur_sigma: tuple[float, float] = (0.3, 1.1)  # Gaussian blur sigma in pixels, uniform
    brightness: tuple[float, float] = (0.6, 1.0)  # peak stroke value, uniform
    noise_std: tuple[float, float] = (0.0, 0.25)  # additive Gaussian noise std, uniform per image

    def key(self) -> dict:
        return asdict(self)


DEFAULT_PARAMS = SyntheticParams()


def _ink_crop(img: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(img.max(axis=1) > 0)
    cols = np.flatnonzero(img.max(axis=0) > 0)
    return img[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


@lru_cache(maxsize=4)
def glyph_templates(glyph_height: float, stroke_widths: tuple[int, ...]) -> torch.Tensor:
    """float32 [10, len(stroke_widths), T, T] in [0, 1]: each digit, each stroke weight,
    its ink box scaled to glyph_height of the template and centred."""
    from PIL import Image, ImageDraw, ImageFont

    try:
        font = ImageFont.load_default(size=96)
    except TypeError as exc:  # Pillow < 10.1 has no size argument
        raise RuntimeError(
            "synthetic-digits needs Pillow >= 10.1 with FreeType (ImageFont.load_default(size=...)); "
            "upgrade Pillow"
        ) from exc
    if not isinstance(font, ImageFont.FreeTypeFont):
        raise RuntimeError(
            "synthetic-digits needs Pillow built with FreeType; install Pillow from its wheels"
        )
    height = round(glyph_height * _TEMPLATE)
    out = np.zeros((10, len(stroke_widths), _TEMPLATE, _TEMPLATE), np.float32)
    for digit in range(10):
        for j, stroke in enumerate(stroke_widths):
            canvas = Image.new("L", (192, 192), 0)
            ImageDraw.Draw(canvas).text(
                (40, 20), str(digit), fill=255, font=font, stroke_width=stroke, stroke_fill=255
            )
            ink = _ink_crop(np.asarray(canvas))
            h, w = ink.shape
            new_w = max(1, round(w * height / h))
            glyph = np.asarray(
                Image.fromarray(ink).resize((new_w, height), Image.Resampling.LANCZOS), np.float32
            )
            top, left = (_TEMPLATE - height) // 2, (_TEMPLATE - new_w) // 2
            out[digit, j, top : top + height, left : left + new_w] = glyph / 255.0
    return torch.from_numpy(out).clamp_(0.0, 1.0)


def _chunk_generator(seed: int, stream: int, chunk: int) -> torch.Generator:
    # SeedSequence mixes the three numbers, so (seed, stream, chunk) triples never
    # collide the way a linear formula would.
    state = np.random.SeedSequence([seed, stream, chunk]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def _pixel_centres(side: int) -> torch.Tensor:
    """Normalised coordinates of pixel centres (grid_sample with align_corners=False)."""
    return (2.0 * torch.arange(side, dtype=torch.float32) + 1.0) / side - 1.0


@lru_cache(maxsize=4)
def _grid_features(side: int, k: int) -> torch.Tensor:
    """[side*side, 3 + k*k] per-pixel features (row-major, y then x): x, y, 1, then k x k
    Gaussian bumps spread over [-1, 1] (each axis normalised to sum to about 1, so a
    unit coefficient moves that region by about one normalised unit)."""
    u = _pixel_centres(side)
    centres = torch.linspace(-1.0, 1.0, k)
    width = 0.6 * 2.0 / max(k - 1, 1)
    bump = torch.exp(-((u[:, None] - centres[None, :]) ** 2) / (2.0 * width**2))
    bump = bump / bump.sum(1, keepdim=True)  # [side, k]
    y, x = torch.meshgrid(u, u, indexing="ij")
    bumps = (bump[:, None, :, None] * bump[None, :, None, :]).reshape(side * side, k * k)
    return torch.cat([x.reshape(-1, 1), y.reshape(-1, 1), torch.ones(side * side, 1), bumps], dim=1)


def _uniform(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def _render_chunk(
    g: torch.Generator, templates: torch.Tensor, p: SyntheticParams
) -> tuple[torch.Tensor, torch.Tensor]:
    """One chunk of _CHUNK images: uint8 [_CHUNK, 28, 28] and int64 labels."""
    n = _CHUNK
    labels = (torch.arange(n) % 10)[torch.randperm(n, generator=g)]
    weight = torch.randint(templates.shape[1], (n,), generator=g)
    src = templates[labels, weight].unsqueeze(1)  # [n, 1, T, T]

    # Forward transform (template -> image) in normalised coordinates: rotate . shear . scale.
    angle = _uniform(g, n, -1.0, 1.0) * math.radians(p.rotation_deg)
    scale = _uniform(g, n, *p.scale)
    stretch = torch.exp(_uniform(g, n, -p.aspect, p.aspect))
    sx, sy = scale * stretch.sqrt(), scale / stretch.sqrt()
    shear = _uniform(g, n, -p.shear, p.shear)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    shr = torch.zeros(n, 2, 2)
    shr[:, 0, 0] = shr[:, 1, 1] = 1.0
    shr[:, 0, 1] = shear
    scl = torch.diag_embed(torch.stack([sx, sy], -1))
    forward = rot @ shr @ scl
    shift = _uniform(g, 2 * n, -1.0, 1.0).view(n, 2) * (2.0 * p.translate_px / SIZE)
    # The sampling grid needs the inverse map: image coordinates -> template coordinates.
    inv = torch.linalg.inv(forward)
    theta = torch.cat([inv, -(inv @ shift.unsqueeze(-1))], dim=-1)

    side = SIZE * _SUPER
    # Sampling grid = affine map of the pixel centres + a smooth random displacement
    # (coefficients on k x k Gaussian bumps). Both are linear in per-image weights over
    # fixed per-pixel features [x, y, 1, bumps], so the whole grid is one matmul:
    # several times faster on CPU than affine_grid + an upsampled noise field.
    k = p.elastic_grid
    coef = torch.randn(n, k * k, 2, generator=g) * p.elastic
    weights = torch.cat([theta.transpose(1, 2), coef], dim=1)  # [n, 3 + k*k, 2]
    feats = _grid_features(side, k)  # [side*side, 3 + k*k]
    grid = (feats @ weights.permute(1, 0, 2).reshape(3 + k * k, 2 * n)).view(side, side, n, 2)
    grid = grid.permute(2, 0, 1, 3)
    img = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    img = F.avg_pool2d(img, _SUPER).view(n, SIZE, SIZE)  # box filter down to 28 x 28

    # Per-image Gaussian blur, separable, 5 taps: weighted sums of shifted copies
    # (cheaper on CPU than per-image convolutions or Toeplitz matmuls).
    sigma = _uniform(g, n, *p.blur_sigma)
    taps = torch.exp(-(torch.arange(-2.0, 3.0)[None, :] ** 2) / (2.0 * sigma[:, None] ** 2))
    taps = (taps / taps.sum(1, keepdim=True)).view(n, 5, 1, 1)
    pad = F.pad(img, (2, 2, 0, 0))
    img = sum(taps[:, t] * pad[:, :, t : t + SIZE] for t in range(5))
    pad = F.pad(img, (0, 0, 2, 2))
    img = sum(taps[:, t] * pad[:, t : t + SIZE, :] for t in range(5))

    peak = img.amax(dim=(1, 2), keepdim=True).clamp_min(1e-6)
    img = img / peak * _uniform(g, n, *p.brightness).view(n, 1, 1)
    noise = torch.randn(n, SIZE, SIZE, generator=g) * _uniform(g, n, *p.noise_std).view(n, 1, 1)
    img = (img + noise).clamp_(0.0, 1.0)
    return (img * 255.0).round_().to(torch.uint8), labels.to(torch.int64)


def generate_digits(
    n: int,
    seed: int,
    stream: int,
    params: SyntheticParams = DEFAULT_PARAMS,
    progress: Callable[[int], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """n synthetic digits: uint8 [n, 28, 28] (dark background, bright digit) and int64 [n]
    labels 0-9. Same (n, seed, stream, params) -> same bytes; a prefix of a larger set
    equals the smaller set. `progress(k)` is called after each chunk with the digits made so far."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    templates = glyph_templates(params.glyph_height, params.stroke_widths)
    images, labels = [], []
    for chunk in range(math.ceil(n / _CHUNK)):
        img, lab = _render_chunk(_chunk_generator(seed, stream, chunk), templates, params)
        images.append(img)
        labels.append(lab)
        if progress is not None:
            progress(min(n, (chunk + 1) * _CHUNK))
    if not images:
        return torch.zeros(0, SIZE, SIZE, dtype=torch.uint8), torch.zeros(0, dtype=torch.int64)
    return torch.cat(images)[:n].contiguous(), torch.cat(labels)[:n].contiguous()


Arrays = tuple[torch.Tensor, torch.Tensor]  # uint8 images [N, 28, 28], int64 labels [N]
#: Hears a start-up stage: (what is being done, the share done or None); the app shows it.
Stage = Callable[[str, "float | None"], None]


def synthetic_splits(
    n_train: int,
    n_test: int,
    seed: int,
    cache_dir: Path | None = None,
    params: SyntheticParams = DEFAULT_PARAMS,
    log: Callable[[str], None] | None = None,
    stage: Stage | None = None,
) -> tuple[Arrays, Arrays]:
    """(train, test) arrays: train from stream 0, test from stream 1. With cache_dir they
    are read from, or written to, cache_dir/<hash of everything that shapes them>.npz.

    A cache file that is there but damaged (empty, truncated, garbled, not a regular file, or
    arrays of the wrong shape, type or labels) is rebuilt, and `log` gets one line saying so.
    `stage(text, fraction)` hears what is being done (reading the cache, generating: the share done)."""
    path = _cache_path(cache_dir, n_train, n_test, seed, params) if cache_dir else None
    if path is not None:
        try:
            if stage is not None:
                stage("reading the synthetic-digits cache", None)
            return _read_cache(path, n_train, n_test)
        except FileNotFoundError:
            pass  # no cache yet: generate it
        except DamagedCache as exc:
            if log is not None:
                log(f"synthetic-digits: the cache {path} was damaged ({exc}); rebuilding it")
    total = max(1, n_train + n_test)
    told = [-1]

    def made(k: int) -> None:  # at most one stage a 10% step: the app's status line, not a log
        tenth = 10 * k // total
        if stage is not None and tenth != told[0]:
            told[0] = tenth
            stage("generating synthetic-digits", k / total)

    train = generate_digits(n_train, seed, stream=0, params=params, progress=made)
    test = generate_digits(n_test, seed, stream=1, params=params, progress=lambda k: made(n_train + k))
    if path:
        _write_cache(path, train, test)
    return train, test


def _cache_path(cache_dir: Path, n_train: int, n_test: int, seed: int, params: SyntheticParams) -> Path:
    import PIL

    key = {
        "version": GENERATOR_VERSION,
        "n": [n_train, n_test],
        "seed": seed,
        "params": params.key(),
        "torch": torch.__version__,
        "pillow": PIL.__version__,  # font rendering and RNG may change
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir) / f"{digest}.npz"


class DamagedCache(Exception):
    """A synthetic-digits cache file that is there but cannot be used; the message says why."""


_NPZ_SLACK = 64 << 10  # zip directory and .npy headers of the four arrays, with room to spare
_KEYS = ("train_x", "train_y", "test_x", "test_y")


def _read_cache(path: Path, n_train: int, n_test: int) -> tuple[Arrays, Arrays]:
    """The cached arrays, checked against what `synthetic_splits` would make: FileNotFoundError when
    there is no cache, DamagedCache when there is one that cannot be used. Reads a bounded number of
    bytes, never follows a FIFO, never unpickles."""
    limit = (n_train + n_test) * (SIZE * SIZE + 8) + _NPZ_SLACK  # uint8 images, int64 labels
    try:
        raw = read_bytes(path, limit)
    except FileNotFoundError:
        raise
    except (OSError, UnreadableFile) as exc:
        raise DamagedCache(getattr(exc, "strerror", None) or str(exc)) from exc
    if not raw:
        raise DamagedCache("empty file")
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            if sum(info.file_size for info in zf.infolist()) > limit:  # a compressed entry could expand
                raise DamagedCache("its arrays are larger than the set it should hold")
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            arrays = [z[k] for k in _KEYS]
    except DamagedCache:
        raise
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile, zlib.error) as exc:
        raise DamagedCache(f"not a readable .npz: {type(exc).__name__}: {str(exc)[:120]}") from exc
    expected = [
        ((n_train, SIZE, SIZE), np.uint8),
        ((n_train,), np.int64),
        ((n_test, SIZE, SIZE), np.uint8),
        ((n_test,), np.int64),
    ]
    for key, arr, (shape, dtype) in zip(_KEYS, arrays, expected):
        if arr.shape != shape or arr.dtype != dtype:
            raise DamagedCache(f"{key} is {arr.dtype} {arr.shape}, expected {np.dtype(dtype)} {shape}")
    for key, labels in (("train_y", arrays[1]), ("test_y", arrays[3])):
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise DamagedCache(f"{key} holds labels outside 0-9")
    x, y, tx, ty = (torch.from_numpy(np.array(a)) for a in arrays)  # own, writable copies
    return (x, y), (tx, ty)


def _write_cache(path: Path, train: Arrays, test: Arrays) -> None:
    """Best effort: a read-only or full disk costs a regeneration next time, nothing more.

    Atomic (a concurrent reader sees the old file or the whole new one) and 0644 less the umask,
    so a shared cache is readable by the group.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(
            path,
            lambda f: np.savez(
                f,
                train_x=train[0].numpy(),
                train_y=train[1].numpy(),
                test_x=test[0].numpy(),
                test_y=test[1].numpy(),
            ),
        )
    except OSError:
        pass
