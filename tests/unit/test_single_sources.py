"""Allowed values are defined once, in trainer.config, and imported where they are acted on: no module of
the trainer, the app or the benches spells a config key's choices again, and the one pair that must
live apart (the built-in models' names, whose constructors need torch) is checked against its registry."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from trainer.config import CHOICES
from trainer.config.schema import BUILTIN_MODEL_ARGS, MODEL_NAMES

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "trainer" / "config" / "schema.py"


def _string_sequences(path: Path):
    """(line, values) of every tuple, list or set literal of two or more string constants in a file."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and len(node.elts) >= 2:
            if all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
                yield node.lineno, tuple(e.value for e in node.elts)


def test_no_module_repeats_a_keys_choices() -> None:
    choices = {frozenset(v) - {""}: key for key, v in CHOICES.items() if len(set(v) - {""}) >= 2}
    found = []
    for package in ("trainer", "tui", "bench"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == SCHEMA:
                continue
            for line, values in _string_sequences(path):
                key = choices.get(frozenset(values))
                if key is not None:
                    found.append(f"{path.relative_to(ROOT)}:{line} repeats {key}'s choices {values}")
    assert not found, "import them from trainer.config instead:\n" + "\n".join(found)


def test_the_check_finds_a_repeated_choice(tmp_path: Path) -> None:
    """The scan above sees a copied tuple (so its silence means something)."""
    copy = tmp_path / "copy.py"
    copy.write_text(f"OPTIMIZERS = {tuple(CHOICES['optim.name'])!r}\n", encoding="utf-8")
    assert [values for _, values in _string_sequences(copy)] == [tuple(CHOICES["optim.name"])]


def test_builtin_models_match_the_config() -> None:
    models = pytest.importorskip("trainer.models.builtin", reason="needs torch")
    assert set(MODEL_NAMES) == set(models.MODELS)
    for name, takes in BUILTIN_MODEL_ARGS.items():
        params = inspect.signature(models.MODELS[name]).parameters
        assert tuple(params) == takes, name
