"""The sweep's answer in sentences: what to use, how many batch sizes reached the target, the fewest
steps, the regimes, B_simple and the lr rule, per [[variants]] arm where there are arms.
"""

from __future__ import annotations

from typing import Any

from trainer.analysis.answer.lr_rule import lr_rule, rule_sentence
from trainer.analysis.answer.matrix import Matrix, cell_text, matrix
from trainer.analysis.answer.regime import curve, regime_sentence
from trainer.analysis.figures import finite, setting, sig
from trainer.analysis.recommend import recommendation


def _goal(target: float | None) -> str:
    return f"{100 * target:.4g}%" if finite(target) else "the target"


def reached_sentence(analysis: dict[str, Any], target: float | None, unfinished: int = 0) -> str:
    """How many batch sizes reached the target, and what is still training (never "0 of 1" while
    runs are training)."""
    best = analysis.get("best") or []
    goal = _goal(target)
    reached = sum(1 for p in best if p.get("reached_target"))
    text = f"{reached} of {len(best)} batch size{'' if len(best) == 1 else 's'} reached {goal}"
    if unfinished:
        text += f" ({unfinished} run{'' if unfinished == 1 else 's'} still training)"
    return text


def fewest_steps_sentence(m: Matrix) -> str:
    if m.answer is None:
        return ""
    c = m.cells[m.answer]
    return f"fewest steps: batch {c.batch_size} at lr {setting(c.lr)} ({cell_text(c, 'steps')} steps)"


def b_simple_sentence(analysis: dict[str, Any]) -> str:
    """B_simple at the target (the median over the batch sizes that reached it), or what is measured
    where none of those has one (never "not measured" while runs carry it)."""
    value = analysis.get("b_simple")
    batches = analysis.get("b_simple_batches") or []
    if finite(value):
        over = f"median over batch {', '.join(map(str, batches))}; " if batches else ""
        if (
            analysis.get("b_simple_at") == "end"
        ):  # no probe readings around the crossings (trainer.analysis.scaling)
            return (
                f"B_simple at the target: not recorded; at the runs' end {sig(value)} ({over}the gradient noise "
                "scale grows as the loss falls, so this is later in training than the target)"
            )
        return f"B_simple at the target {sig(value)} ({over}the gradient noise scale: batches well above it stop paying)"
    measured = [
        p["b_simple"] for p in analysis.get("points") or [] if finite(p.get("b_simple")) and p["b_simple"] > 0
    ]
    if measured:
        return (
            f"B_simple at the target: no batch size that reached it has one; measured per point "
            f"{sig(min(measured))}–{sig(max(measured))} ({len(measured)} points)"
        )
    return "B_simple: not measured by any run yet"


def answer_lines(
    analysis: dict[str, Any],
    target: float | None,
    device: str = "",
    variant: str | None = None,
    unfinished: int = 0,
) -> list[str]:
    """The answer as sentences, for the end of `python -m trainer run`, report.md and the app."""
    points = analysis.get("points") or []
    steps = matrix(points, "steps", variant)
    first = recommendation(analysis, target, device)
    if unfinished and first.startswith("no batch size reached"):  # the advice waits for the runs to end
        first = f"no batch size has reached {_goal(target)} with every seed yet"
    lines = [first, reached_sentence(analysis, target, unfinished)]
    fewest = fewest_steps_sentence(steps)
    if fewest:
        lines.append(fewest)
    lines.append("regimes: " + regime_sentence(curve(analysis)))
    lines.append(b_simple_sentence(analysis))
    lines.append(rule_sentence(lr_rule(points, variant)))
    return lines


def answers(scaling: dict[str, Any], target: float | None, device: str = "") -> list[str]:
    """The answer lines of a sweep_finished.scaling (or an app analysis): "name: ..." per line for
    [[variants]] arms, the bare lines without variants."""
    if not isinstance(scaling, dict):
        return []
    variants = scaling.get("variants")
    if isinstance(variants, dict):
        return [
            f"{name}: {line}"
            for name, a in variants.items()
            if isinstance(a, dict)
            for line in answer_lines(a, target, device)
        ]
    return answer_lines(scaling, target, device)
