"""How bstui writes a measured figure: to the precision its data has (no torch, no Textual).

Shared by the report (report.md), the end-of-sweep recommendation and the app's scaling view.
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


def setting(value: Any) -> str:
    """A configured number (an lr, a rule's lr): exact, so no trailing zeros; 3 significant figures."""
    return f"{float(f'{value:.3g}'):g}" if finite(value) else "-"


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
    """"mid (lo–hi)" in `digits` significant figures; an open end shows as "?"."""
    if not finite(mid):
        return "-"
    if lo is None and hi is None:
        return sig(mid, digits)
    return f"{sig(mid, digits)} ({sig(lo, digits) if finite(lo) else '?'}–{sig(hi, digits) if finite(hi) else '?'})"
