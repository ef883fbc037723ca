"""The README and docs/ hold together: docs/config.md is what the schema gives, and every link resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from trainer.config.coerce import leaf_keys
from trainer.config.doc import COMMAND, main, render, undocumented

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


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


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    return {_slug(m) for m in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}


def test_every_relative_link_of_the_readme_and_docs_resolves():
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            name, _, anchor = target.partition("#")
            dest = (page.parent / name).resolve() if name else page
            if not dest.exists() or (anchor and dest.suffix == ".md" and anchor not in _anchors(dest)):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken


def test_every_file_of_the_repository_the_docs_name_exists():
    """A file moved or split leaves no page pointing at its old place (`trainer/...`, `bench/...` in code)."""
    quoted = r"`((?:trainer|tui|tests|bench|experiments|docs)/[\w./*-]+)`"
    bare = r"(?<![\w/.-])((?:trainer|tui|tests|bench|experiments)/[\w/.-]+\.(?:py|sh|toml|md|json|csv))"
    missing = [
        f"{page.relative_to(ROOT)}: {path}"
        for page in PAGES
        for path in {*re.findall(quoted, page.read_text()), *re.findall(bare, page.read_text())}
        if not any(ROOT.glob(path.rstrip("/")))
    ]
    assert not missing, missing


@pytest.mark.parametrize("package, top", [("trainer", "trainer.cli"), ("tui", "tui.app")])
def test_the_architecture_page_draws_the_layers_the_contract_checks(package, top):
    """docs/architecture.md's diagrams and pyproject's layering contracts for trainer/ and tui/ agree, one
    to one."""
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (layers,) = [c["layers"] for c in contracts if c["type"] == "layers" and top in c["layers"]]
    page = (ROOT / "docs" / "architecture.md").read_text()
    diagram = re.search(rf"## {package}/.*?```\n(.*?)```", page, re.DOTALL).group(1)
    drawn = [re.split(r"\s{2,}", line)[0] for line in diagram.splitlines() if line.startswith(f"{package}.")]
    assert drawn == layers
