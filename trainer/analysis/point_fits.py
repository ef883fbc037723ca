"""The plain critical-batch fits (McCandlish et al. 2018) to measured points: S = S_min (1 + B_crit / B) to
steps to target and E = E_min (1 + B / B_crit) to examples to target, least squares in relative error.
numpy only, no torch. trainer.analysis.scaling fits them to the crossing intervals' midpoints for the
curves the app draws; the B_crit fit with its uncertainty is trainer/analysis/bcrit.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class FitError(ValueError):
    """The measured points cannot give a critical batch size (too few, or they do not follow the model)."""


def _line_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least squares y ~ a + c x in relative error; returns (a, c, relative RMS residual).

    Relative (weights 1/y): steps and examples to a target span orders of magnitude across batch
    sizes and their noise grows with them, so plain least squares would let the largest values
    decide the fit alone.
    """
    w = 1.0 / y
    design = np.stack([np.ones_like(x), x], axis=1) * w[:, None]
    (a, c), *_ = np.linalg.lstsq(design, y * w, rcond=None)
    rel = (a + c * x - y) / y
    return float(a), float(c), float(np.sqrt(np.mean(rel**2)))


def _points(
    batch_sizes: Sequence[float], values: Sequence[float], what: str
) -> tuple[np.ndarray, np.ndarray]:
    b = np.asarray(batch_sizes, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if b.ndim != 1 or b.shape != v.shape:
        raise FitError(f"need one {what} value per batch size, got {b.size} batch sizes and {v.size} values")
    if b.size < 2:
        raise FitError(f"fitting the critical batch size needs at least 2 points, got {b.size}")
    if not (np.all(np.isfinite(b)) and np.all(np.isfinite(v)) and np.all(b > 0) and np.all(v > 0)):
        raise FitError(f"batch sizes and {what} must be positive and finite, got {list(b)} and {list(v)}")
    if np.unique(b).size < 2:
        raise FitError(
            f"fitting the critical batch size needs at least 2 different batch sizes, got only {b[0]:g}"
        )
    return b, v


def _rms_or_none(rel_rms: float, b: np.ndarray) -> float | None:
    """The residual only where it can say something: two points always fit a two-parameter line."""
    return rel_rms if np.unique(b).size > 2 else None


def fit_critical_batch(batch_sizes: Sequence[float], steps: Sequence[float]) -> dict[str, float | None]:
    """Fit S = S_min (1 + B_crit / B) to steps-to-target S measured at batch sizes B.

    Linear in 1/B: S = S_min + (S_min B_crit) / B. Returns {"S_min", "B_crit", "rel_rms"} (the last
    the relative RMS residual: how well the points follow the model). Raises FitError when there
    are too few points or they do not follow the model (steps that grow with the batch size). rel_rms
    is None for 2 batch sizes (an exact fit says nothing about the model).
    """
    b, s = _points(batch_sizes, steps, "steps")
    s_min, slope, rel_rms = _line_fit(1.0 / b, s)
    rel_rms = _rms_or_none(rel_rms, b)
    if s_min <= 0.0:
        raise FitError(
            f"steps fall as fast as 1/B or faster (fitted S_min = {s_min:.3g} <= 0): the points never leave "
            "the perfect-scaling regime, so B_crit is beyond them; add larger batch sizes"
        )
    if slope < 0.0:
        raise FitError(
            "steps to target grow with the batch size, which S = S_min (1 + B_crit / B) cannot describe "
            "(often a sign that lr was not tuned per batch size)"
        )
    return {"S_min": s_min, "B_crit": slope / s_min, "rel_rms": rel_rms}


def fit_examples(batch_sizes: Sequence[float], examples: Sequence[float]) -> dict[str, float | None]:
    """Fit E = E_min (1 + B / B_crit) to examples-to-target E measured at batch sizes B.

    Linear in B: E = E_min + (E_min / B_crit) B. Returns {"E_min", "B_crit", "rel_rms"}. Raises
    FitError when there are too few points or they do not follow the model.
    """
    b, e = _points(batch_sizes, examples, "examples")
    e_min, slope, rel_rms = _line_fit(b, e)
    rel_rms = _rms_or_none(rel_rms, b)
    if slope <= 0.0:
        raise FitError(
            "examples to target do not grow with the batch size, so no critical batch size shows in "
            "these points; add larger batch sizes"
        )
    if e_min <= 0.0:
        raise FitError(
            f"examples grow faster than linearly in B (fitted E_min = {e_min:.3g} <= 0): the points do "
            "not follow E = E_min (1 + B / B_crit); add smaller batch sizes"
        )
    return {"E_min": e_min, "B_crit": e_min / slope, "rel_rms": rel_rms}
