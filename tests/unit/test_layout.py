"""The layout stays readable: no production module of the trainer or the app over MAX_LINES lines, no
class over MAX_CLASS_LINES. A module that grows past them is split by responsibility (see how
trainer/data/datasets/ or trainer/analysis/answer/ are laid out), not raised here."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 400
MAX_CLASS_LINES = 250

#: Modules still over a limit while their split is under way (path -> the work that splits it); each
#: entry is removed when that work lands.
ALLOWED: dict[str, str] = {}


def _production() -> list[Path]:
    return sorted(p for package in ("trainer", "tui") for p in (ROOT / package).rglob("*.py"))


def _too_long(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    found = []
    lines = len(text.splitlines())
    if lines > MAX_LINES:
        found.append(f"{lines} lines (at most {MAX_LINES})")
    for node in ast.walk(ast.parse(text, filename=str(path))):
        if isinstance(node, ast.ClassDef):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_CLASS_LINES:
                found.append(f"class {node.name}: {length} lines (at most {MAX_CLASS_LINES})")
    return found


def test_no_module_or_class_is_too_long() -> None:
    found = [
        f"{rel}: {', '.join(why)}"
        for path in _production()
        if (rel := str(path.relative_to(ROOT))) not in ALLOWED and (why := _too_long(path))
    ]
    assert not found, "split these by responsibility:\n" + "\n".join(found)


def test_the_check_sees_a_long_class(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_CLASS_LINES))
    module = tmp_path / "long.py"
    module.write_text(f"class Long:\n{body}\n", encoding="utf-8")
    assert _too_long(module) == [f"class Long: {MAX_CLASS_LINES + 1} lines (at most {MAX_CLASS_LINES})"]
