"""Every key the app binds is listed in `bstui --help`, the help screen's list and docs/app.md's key table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tui.__main__ import build_parser, main
from tui.app import BstuiApp
from tui.keys import KEYS
from tui.screens.main_screen import MainScreen

ROOT = Path(__file__).resolve().parents[2]
#: How a Textual key name is written for people.
SHOWN = {
    "plus": "+",
    "equals_sign": "+",
    "minus": "-",
    "question_mark": "?",
    "left": "←",
    "right": "→",
    "shift+left": "←",
    "shift+right": "→",
    "tab": "Tab",
    "shift+tab": "Tab",
    "pageup": "PgUp",
    "pagedown": "PgDn",
    "escape": "Esc",
}


def bound_keys() -> set[str]:
    keys = set()
    for binding in [*BstuiApp.BINDINGS, *MainScreen.BINDINGS]:
        for key in binding.key.split(","):
            keys.add(SHOWN.get(key, key))
    return keys


def test_every_bound_key_is_in_the_key_list():
    listed = " ".join(f"{k} {what}" for k, what in KEYS)
    missing = [
        k
        for k in bound_keys()
        if k not in {w for entry, _ in KEYS for w in entry.split()} and k not in listed
    ]
    assert not missing, f"keys bound but not in tui/keys.py: {missing}"


def test_help_lists_every_key_including_c_and_t(capsys):
    text = build_parser().format_help()
    for key, _ in KEYS:
        assert re.search(rf"^\s+{re.escape(key)}\s", text, re.MULTILINE), key


def test_the_docs_key_table_lists_every_key():
    doc = (ROOT / "docs" / "app.md").read_text()
    table = "\n".join(line for line in doc.splitlines() if line.startswith("| `"))
    for key in bound_keys() - {"Esc"}:
        assert f"`{key}`" in table, f"docs/app.md's key table lacks {key}"


def test_version_prints_and_exits_0(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("bstui ")
