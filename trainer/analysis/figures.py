"""How bstui writes a number: one formatter for the app, the report and the headless output (pure:
no torch, numpy, Textual or rich).

- `num(v)`: a measured value in 3 significant figures, k/M/G above 1,000, scientific below 0.001:
  2.00, 2.28, 0.0123, 642, 12.3k, 6.30e-5 (a loss of 2 next to one of 2.28 reads "2.00").
- `pct(v)`: an accuracy (a fraction) as a percentage in 3 significant figures: 69.4%, 8.20%, 100%.
- `setting(v)`: a configured number (an lr) as written in the config (0.02, 0.0548, 3e-5); one made
  by the trainer (a log-spaced lr grid's 0.0707106...) in 3 significant figures, 0.0707.
- `sig`, `count`, `span`, `with_interval`: an estimate to the precision its data has, counts, crossings.
"""

from __future__ import annotations

import math
from typing import Any


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def sig(value: Any, digits: int = 2) -> str:
    """`digits` significant figures, thousands separated; "-" for nothing."""
    if not finite(value):
        return "-"
    if value == 0:
        return "0"
    rounded = float(f"{value:.{digits}g}")
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(rounded))))
    return f"{rounded:,.{decimals}f}"


def _short_exponent(text: str) -> str:
    """6.30e-05 -> 6.30e-5, 1e+03 -> 1e3."""
    mantissa, exponent = text.split("e")
    return f"{mantissa}e{int(exponent)}"


def num(value: Any, digits: int = 3) -> str:
    """A measured value in `digits` significant figures, trailing zeros kept (2.00 beside 2.28);
    12.3k, 1.50M, 2.00G above 1,000; 6.30e-5 below 0.001; "-" for nothing."""
    if not finite(value):
        return "-"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    rounded = float(f"{abs(value):.{digits}g}")
    if rounded < 1e-3:
        return sign + _short_exponent(f"{rounded:.{digits - 1}e}")
    div, suffix = next(((d, u) for d, u in ((1e9, "G"), (1e6, "M"), (1e3, "k")) if rounded >= d), (1.0, ""))
    mantissa = float(f"{rounded / div:.{digits}g}")
    if mantissa >= 1000 and suffix == "G":
        return sign + _short_exponent(f"{rounded:.{digits - 1}e}")
    decimals = max(0, digits - 1 - math.floor(math.log10(mantissa)))
    return f"{sign}{mantissa:.{decimals}f}{suffix}"


def pct(fraction: Any, digits: int = 3) -> str:
    """An accuracy (0..1) as a percentage in `digits` significant figures: 69.4%, 8.20%, 100%; "-" for nothing."""
    if not finite(fraction):
        return "-"
    value = 100 * fraction
    if value == 0:
        return "0%"
    rounded = float(f"{abs(value):.{digits}g}")
    decimals = min(2, max(0, digits - 1 - math.floor(math.log10(rounded))))
    return f"{'-' if value < 0 else ''}{rounded:.{decimals}f}%"


def setting(value: Any) -> str:
    """A configured number (an lr) as written in the config: 0.02, 0.0548, 1.5, 3e-5 (its shortest exact
    form, when that has at most 4 significant figures); a computed one (an lr grid's log-spaced points)
    in 3 significant figures: 0.0707."""
    if not finite(value):
        return "-"
    text = repr(float(value))
    digits = len(text.split("e")[0].replace("-", "").replace(".", "").lstrip("0").rstrip("0"))
    if digits > 4:
        text = f"{float(f'{value:.3g}'):g}"
    elif text.endswith(".0"):
        text = text[:-2]
    return _short_exponent(text) if "e" in text else text


def count(value: Any) -> str:
    """A count (steps, samples): whole, thousands separated."""
    return f"{round(value):,}" if finite(value) else "-"


def span(lo: Any, hi: Any, fmt=count) -> str:
    """A crossing: "lo–hi" (it lies after lo, at or before hi); only the hit when lo is unknown."""
    if not finite(hi):
        return "not reached"
    if not finite(lo):
        return f"{fmt(hi)} (hit; lo unknown)"
    return f"{fmt(lo)}–{fmt(hi)}"


def with_interval(mid: Any, lo: Any, hi: Any, digits: int = 2) -> str:
    """ "mid (lo–hi)" in `digits` significant figures; an open end shows as "?"."""
    if not finite(mid):
        return "-"
    if lo is None and hi is None:
        return sig(mid, digits)
    return f"{sig(mid, digits)} ({sig(lo, digits) if finite(lo) else '?'}–{sig(hi, digits) if finite(hi) else '?'})"
