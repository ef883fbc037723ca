"""Axis ticks a reader can count on: 1-2-5 steps on linear axes, decades (with 2 and 5) on log axes.

Pure (no numpy, no Textual): the chart builder asks for at most N ticks in a range and gets
round positions and labels that all carry the same number of decimals, so a column of ticks
reads "2.26 2.28 2.30", never "2.35 2.33 2.3 2.27". An empty range gets no ticks at all.
"""

from __future__ import annotations

import math

MANTISSAS = (1, 2, 5)


def linear_step(lo: float, hi: float, max_count: int) -> float | None:
    """The smallest 1-2-5 x 10^k step that puts at most `max_count` ticks in [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo or max_count < 2:
        return None
    k = math.floor(math.log10((hi - lo) / max_count))
    for _ in range(4):
        for m in MANTISSAS:
            step = m * 10.0**k
            if math.floor(hi / step + 1e-9) - math.ceil(lo / step - 1e-9) + 1 <= max_count:
                return step
        k += 1
    return 10.0**k


def linear_ticks(lo: float, hi: float, max_count: int) -> list[float]:
    """Round positions (multiples of a 1-2-5 step) inside [lo, hi], at most `max_count` of them."""
    step = linear_step(lo, hi, max_count)
    if step is None:
        return []
    first = math.ceil(lo / step - 1e-9)
    last = math.floor(hi / step + 1e-9)
    # Multiples of the step (not a running sum): no drift, and 0 is exactly 0.
    return [round(i * step, 12) + 0.0 for i in range(first, last + 1)]


def _decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step) + 1e-9))


def format_number(v: float) -> str:
    """One value alone: 0.5, 20, 1500, 12k, 3M, 1e-5 (for log axes, where each tick stands alone)."""
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e4:
        for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if a >= div:
                return f"{v / div:g}{suffix}"
    if a < 1e-3:
        mantissa, exponent = f"{v:.0e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return f"{v:g}"


def format_ticks(ticks: list[float], percent: bool = False) -> list[str]:
    """Labels for evenly spaced ticks, all with the decimals their step needs.

    Large values in k/M/G; tiny steps in scientific notation; `percent` shows fractions as
    percentages (0.95 -> 95%).
    """
    if not ticks:
        return []
    scale, suffix = (100.0, "%") if percent else (1.0, "")
    values = [t * scale for t in ticks]
    step = min((b - a for a, b in zip(values, values[1:])), default=abs(values[0]) or 1.0) or 1.0
    top = max(abs(v) for v in values)
    if not percent and top >= 1e4:
        div, unit = next((d, u) for d, u in ((1e9, "G"), (1e6, "M"), (1e3, "k")) if top >= d)
        d = _decimals(step / div)
        return [f"{v / div:.{d}f}{unit}" if v else "0" for v in values]
    if step < 1e-3 and not percent:
        exp = math.floor(math.log10(top))
        d = max(0, _decimals(step / 10.0**exp))
        return [f"{v:.{d}e}".replace("e-0", "e-").replace("e+0", "e") if v else "0" for v in values]
    d = _decimals(step)
    return [f"{v:.{d}f}{suffix}" for v in values]


def ticks_with_labels(lo: float, hi: float, max_count: int, percent: bool = False) -> list[tuple[float, str]]:
    """linear_ticks with their labels."""
    ticks = linear_ticks(lo, hi, max_count)
    return list(zip(ticks, format_ticks(ticks, percent)))


def log_ticks(lo: float, hi: float, max_count: int) -> list[tuple[float, str]]:
    """Ticks of an axis drawn in log10 units: (log10 position, label of the value itself).

    The densest of 1-2-5, 1-3 or 1 per decade that fits, then every n-th decade; a range
    too short for two such ticks (less than about half a decade) gets 1-2-5 ticks of the
    values themselves, so a log axis is never left with one label.
    """
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo or max_count < 1:
        return []
    ticks: list[tuple[float, str]] = []
    for mantissas in ((1, 2, 5), (1, 3), (1,)):
        ticks = [
            (math.log10(m * 10.0**k), format_number(m * 10.0**k))
            for k in range(math.floor(lo), math.ceil(hi) + 1)
            for m in mantissas
            if lo - 1e-9 <= math.log10(m * 10.0**k) <= hi + 1e-9
        ]
        if len(ticks) <= max_count:
            break
    else:
        ticks = ticks[:: math.ceil(len(ticks) / max_count)]  # many decades: every n-th power of ten
    if len(ticks) < 2 and max_count >= 2:
        values = linear_ticks(10.0**lo, 10.0**hi, max_count)
        values = [v for v in values if v > 0]
        if len(values) >= 2:
            return [(math.log10(v), label) for v, label in zip(values, format_ticks(values))]
    return ticks
