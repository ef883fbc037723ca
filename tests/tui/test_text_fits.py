"""Text that fits: help with hanging indents; every key acts or says why not."""

from __future__ import annotations

from rich.console import Console

from tests.tui.conftest import FIXTURE_DIR, fake_system, notes, settle
from tui.assemble import make_app
from tui.screens.help_screen import help_text


def test_help_descriptions_wrap_under_themselves_not_under_the_key():
    console = Console(width=76, record=True)
    console.print(help_text())
    lines = console.export_text().splitlines()
    keys = lines[1 : lines.index("", 1)]  # the Keys section
    wrapped = [ln for ln in keys if ln[:11].strip() == ""]
    assert wrapped, "at 76 columns some key descriptions wrap"
    assert all(ln[11] != " " for ln in wrapped)  # each continuation starts in the description's column


async def test_t_on_a_wide_terminal_says_both_already_show():
    app = make_app(replay=str(FIXTURE_DIR), system=fake_system())
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        await pilot.press("t")
        await pilot.pause()
        assert any(n.message.startswith("t: the table and the timing panel both show") for n in notes(app))
        assert not app.screen.has_class("-timing")
    app = make_app(replay=str(FIXTURE_DIR), system=fake_system())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("t")
        await pilot.pause()
        assert app.screen.has_class("-timing")  # narrow: t swaps the table for the timing panel
