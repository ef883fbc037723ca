"""synthetic-digits: MNIST-like digits made here, with no network.

Why: the study needs MNIST, and a box without network (or a CI runner) still has to
show the batch-size effects. The digits come from the one font that ships inside
Pillow (`ImageFont.load_default(size=...)`, FreeType, Pillow >= 10.1), rendered once
into a few glyph templates per digit (stroke weights), then each sample gets its
own random affine warp (rotation, scale, aspect, shear, translation), a smooth
elastic wobble (handwriting-like), blur, brightness and noise. The warps are done
in torch on whole chunks at once (affine_grid + grid_sample), so 70,000 images
take seconds.

Deterministic: the same (n, seed, stream) gives the same bytes. Samples are made in
fixed-size chunks, each from its own generator seeded from (seed, stream, chunk), so
the first N of a larger set are exactly the set of size N (quick runs that take the
first N samples see the same images as full runs), and train (stream 0) and test
(stream 1) never share a random stream.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

# Bump when the generator changes what it produces (invalidates on-disk caches).
GENERATOR_VERSION = 1

SIZE = 28  # output images are SIZE x SIZE, like MNIST
_SUPER = 2  # warps are sampled at SUPER x SIZE, then box-filtered down (anti-aliasing)
_TEMPLATE = 64  # glyph templates are _TEMPLATE x _TEMPLATE
_CHUNK = 1000  # samples per random stream; multiple of 10 so every chunk is label-balanced


@dataclass(frozen=True)
class SyntheticParams:
    """How hard the digits are. Tuned so the study's SimpleModel (SGD lr 0.02,
    momentum 0.5, batch 60) needs a few epochs to pass 95% test accuracy
    (bench/synthetic_difficulty.py measures it)."""

    glyph_height: float = 0.70  # digit height as a fraction of the image (MNIST: ~20/28)
    stroke_widths: tuple[int, ...] = (0, 2, 4, 6)  # PIL stroke widths at render size 96 (weights)
    rotation_deg: float = 18.0  # uniform in +-
    scale: tuple[float, float] = (0.8, 1.1)  # overall size factor, uniform
    aspect: float = 0.18  # log-uniform width/height stretch in exp(+-aspect)
    shear: float = 0.3  # uniform in +- (x shift per unit y), slant like handwriting
    translate_px: float = 2.5  # uniform in +- pixels (of the 28 x 28 image), each axis
    elastic: float = 0.06  # smooth displacement amplitude, in normalised [-1, 1] units
    elastic_grid: int = 4  # control points per side of the displacement field
    blur_sigma: tuple[float, float] = (0.3, 1.0)  # Gaussian blur sigma in pixels, uniform
    brightness: tuple[float, float] = (0.65, 1.0)  # peak stroke value, uniform
    noise_std: tuple[float, float] = (0.0, 0.25)  # additive Gaussian noise std, uniform per image
    strokes: int = 0  # up to this many stray pen strokes per image (uniform count), like scan clutter
    stroke_value: tuple[float, float] = (0.3, 0.9)  # stray stroke brightness, relative to the digit's peak
    erase: float = 0.0  # probability that a random box of the image is blanked (occlusion)
    erase_px: tuple[int, int] = (5, 10)  # side of that box in pixels, uniform

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
        raise RuntimeError("synthetic-digits needs Pillow built with FreeType; install Pillow from its wheels")
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


def _stray_strokes(g: torch.Generator, n: int, p: SyntheticParams) -> torch.Tensor:
    """[n, 28, 28] in [0, 1]: 0..p.strokes short soft line segments per image, drawn as
    a function of each pixel's distance to the segment (vectorised over all images)."""
    m = p.strokes
    centre = torch.rand(n, m, 2, generator=g) * SIZE
    angle = torch.rand(n, m, generator=g) * math.pi
    length = _uniform(g, n * m, 3.0, 10.0).view(n, m)
    half = torch.stack([torch.cos(angle), torch.sin(angle)], -1) * (length / 2).unsqueeze(-1)
    a, b = centre - half, centre + half  # [n, m, 2] endpoints (x, y) in pixels
    width = _uniform(g, n * m, 0.6, 1.4).view(n, m, 1)
    value = _uniform(g, n * m, *p.stroke_value).view(n, m, 1)
    present = (torch.arange(m)[None, :] < torch.randint(m + 1, (n, 1), generator=g)).unsqueeze(-1)
    r = torch.arange(SIZE, dtype=torch.float32) + 0.5
    y, x = torch.meshgrid(r, r, indexing="ij")
    pix = torch.stack([x.reshape(-1), y.reshape(-1)], -1)  # [784, 2]
    ab = b - a
    t = (((pix[None, None] - a[:, :, None]) * ab[:, :, None]).sum(-1) / (ab * ab).sum(-1, keepdim=True)).clamp(0, 1)
    d2 = ((pix[None, None] - (a[:, :, None] + t[..., None] * ab[:, :, None])) ** 2).sum(-1)  # [n, m, 784]
    ink = torch.exp(-d2 / (2.0 * width**2)) * value * present
    return ink.amax(1).view(n, SIZE, SIZE)


def _erase_masks(g: torch.Generator, n: int, p: SyntheticParams) -> torch.Tensor:
    """[n, 28, 28]: 1 inside a random box for a fraction p.erase of the images, else 0."""
    side = torch.randint(p.erase_px[0], p.erase_px[1] + 1, (n, 2), generator=g)
    corner = (torch.rand(n, 2, generator=g) * (SIZE - side + 1)).floor()
    hit = torch.rand(n, generator=g) < p.erase
    r = torch.arange(SIZE)
    inside_x = (r[None, :] >= corner[:, :1]) & (r[None, :] < corner[:, :1] + side[:, :1])
    inside_y = (r[None, :] >= corner[:, 1:]) & (r[None, :] < corner[:, 1:] + side[:, 1:])
    return (inside_y[:, :, None] & inside_x[:, None, :] & hit[:, None, None]).to(torch.float32)


def _render_chunk(g: torch.Generator, templates: torch.Tensor, p: SyntheticParams) -> tuple[torch.Tensor, torch.Tensor]:
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
    bright = _uniform(g, n, *p.brightness).view(n, 1, 1)
    img = img / peak * bright
    if p.strokes > 0:
        img = torch.maximum(img, _stray_strokes(g, n, p) * bright)
    if p.erase > 0:
        img = img * (1.0 - _erase_masks(g, n, p))
    noise = torch.randn(n, SIZE, SIZE, generator=g) * _uniform(g, n, *p.noise_std).view(n, 1, 1)
    img = (img + noise).clamp_(0.0, 1.0)
    return (img * 255.0).round_().to(torch.uint8), labels.to(torch.int64)


def generate_digits(
    n: int, seed: int, stream: int, params: SyntheticParams = DEFAULT_PARAMS
) -> tuple[torch.Tensor, torch.Tensor]:
    """n synthetic digits: uint8 [n, 28, 28] (dark background, bright digit) and int64 [n]
    labels 0-9. Same (n, seed, stream, params) -> same bytes; a prefix of a larger set
    equals the smaller set."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    templates = glyph_templates(params.glyph_height, params.stroke_widths)
    images, labels = [], []
    for chunk in range(math.ceil(n / _CHUNK)):
        img, lab = _render_chunk(_chunk_generator(seed, stream, chunk), templates, params)
        images.append(img)
        labels.append(lab)
    if not images:
        return torch.zeros(0, SIZE, SIZE, dtype=torch.uint8), torch.zeros(0, dtype=torch.int64)
    return torch.cat(images)[:n].contiguous(), torch.cat(labels)[:n].contiguous()
