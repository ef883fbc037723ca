"""docs/config.md is what the schema gives."""

from __future__ import annotations

import re
from pathlib import Path

from trainer.config.coerce import leaf_keys
from trainer.config.doc import COMMAND, main, render, undocumented

ROOT = Path(__file__).resolve().parents[2]


def test_docs_config_md_is_what_the_schema_gives(capsys):
    assert main(["--check", str(ROOT / "docs" / "config.md")]) == 0, (
        f"docs/config.md is stale: run {COMMAND} and commit it"
    )


def test_a_stale_or_missing_config_page_fails_the_check_and_names_the_fix(tmp_path, capsys):
    page = tmp_path / "config.md"
    page.write_text(render().replace("| `sweep.epochs` | `10` |", "| `sweep.epochs` | `12` |"))
    assert main(["--check", str(page)]) == 1
    assert COMMAND in capsys.readouterr().err
    assert main(["--check", str(tmp_path / "absent.md")]) == 1
    assert main([str(page)]) == 0 and main(["--check", str(page)]) == 0


def test_every_key_has_its_meaning_in_the_schema_and_a_row_in_the_page():
    assert undocumented() == [], "give each key a docstring under its field in trainer/config/schema.py"
    page = render()
    for path in leaf_keys():
        assert re.search(rf"^\| `{re.escape('.'.join(path))}` \| `", page, re.MULTILINE), path
