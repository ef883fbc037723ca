"""The app under Pilot: keys send the right controls, replay fills every panel,
a dead trainer is said plainly and the app stays usable."""

from __future__ import annotations

import json
import threading

from textual.widgets import Switch

from tests.tui.conftest import FIXTURE_DIR, FakeBridge, fake_system, fixture_events, notes, settle, wait_for
from trainer.runlog.commands import trainer_command
from tui.assemble import make_app
from tui.feeds.live import LiveFeed
from tui.render.looks import sweep_looks
from tui.screens.help_screen import HelpScreen
from tui.screens.main_screen import MainScreen
from tui.screens.scaling_screen import ScalingScreen
from tui.widgets.chart import BrailleChart
from tui.widgets.run_table import RunTable
from tui.widgets.sweep_header import SweepHeader
from tui.widgets.timing_panel import TimingPanel

LRGRID = FIXTURE_DIR.parent / "run_lrgrid"


def live_app(*bridges: FakeBridge):
    """An app whose n-th feed (n = restarts) is a LiveFeed over bridges[n]."""
    made: list[int] = []

    def factory(attempt: int) -> LiveFeed:
        made.append(attempt)
        return LiveFeed(bridges[attempt], run_dir=f"/tmp/run-{attempt}")

    return make_app(feed_factory=factory, system=fake_system(gpus=False)), made


def first_events(n: int = 12) -> list[dict]:
    """The fixture's first events: sweep and runs started, some losses; no end."""
    return fixture_events()[:n]


def text_of(widget) -> str:
    return str(widget.render())


def first_chart(screen):
    """The first plot's last drawn chart (None until it has drawn one)."""
    plots = screen.query(BrailleChart)
    return plots.first().chart if plots else None


async def test_split_key_and_switch_send_split_messages_with_chunks():
    bridge = FakeBridge(first_events())
    app, _ = live_app(bridge)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.state.started)
        await pilot.press("s")
        await pilot.press("plus", "plus", "minus")
        await pilot.press("s")
        app.screen.query_one("#split", Switch).toggle()  # the Switch itself, as a click would
        await wait_for(pilot, lambda: len(bridge.controls()) >= 3)
        assert bridge.controls() == [
            {"cmd": "split", "enabled": True, "chunks": 4},
            {"cmd": "split", "enabled": False, "chunks": 5},
            {"cmd": "split", "enabled": True, "chunks": 5},
        ]


async def test_pause_key_sends_pause_then_resume_and_says_paused():
    bridge = FakeBridge(first_events())
    app, _ = live_app(bridge)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.state.started)
        await pilot.press("p")
        assert "paused" in app.status_text().plain
        await pilot.press("p")
        assert bridge.controls() == [{"cmd": "pause"}, {"cmd": "resume"}]
        assert "running" in app.status_text().plain


async def test_quit_shuts_the_trainer_down():
    bridge = FakeBridge(first_events())
    app, _ = live_app(bridge)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.state.started)
        await pilot.press("q")
        await wait_for(pilot, lambda: bridge.shutdowns >= 1)
    assert not bridge.alive
    assert app.return_code == 0


async def test_replay_fills_plots_timing_panel_and_table(fixture_dir):
    app = make_app(replay=str(fixture_dir), system=fake_system())
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        assert app.feed_end is not None and app.feed_end.kind == "finished"
        table = app.screen.query_one(RunTable)
        assert table.row_count == 5
        assert str(table.get_cell("bs1", "status")) == "diverged"
        assert str(table.get_cell("bs60", "lr")) == "0.02→0.08"  # split on: lr x k shown
        assert str(table.get_cell("bs6", "target")) == "12s"
        assert str(table.get_cell("bs6", "acc")) == "96.5%" and str(table.get_cell("bs6", "best")) == "96.5%"
        assert str(table.get_cell("bs6", "run")) == "bs 6"  # one lr in the sweep: the label needs no lr
        plots = list(app.screen.query(BrailleChart))
        assert len(plots) == 5
        charts = [p.chart for p in plots]
        assert all(c is not None and len(c.lines[0].x) > 0 for c in charts)
        assert len({c.ylim for c in charts}) == 1 and len({c.xlim for c in charts}) == 1  # shared ranges
        # Batch sizes differ: the x axis starts as samples (per iteration, batch 6000 would be a dot).
        assert {c.xlabel for c in charts} == {"samples"} and {c.ylabel for c in charts} == {"train loss"}
        timing = text_of(app.screen.query_one(TimingPanel))
        assert "30s wall" in timing and "86% data" in timing
        header = text_of(app.screen.query_one(SweepHeader))
        assert "synthetic-digits" in header and "fallback" in header and str(fixture_dir) in header
        assert "sweep done" in app.status_text().plain
        assert "GPU0" in text_of(app.screen.query_one("#system"))


async def test_view_keys_change_metric_axis_scale_smoothing_and_overlay(fixture_dir):
    app = make_app(replay=str(fixture_dir), system=fake_system())
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, MainScreen)
        await pilot.press("x", "l", "m")
        view = screen.view
        assert (view.x_axis, view.log_y, view.smoothing) == ("epoch", True, "raw")
        # Redrawn on the app's next tick: wait for it (a fixed pause fails on a loaded machine).
        await wait_for(pilot, lambda: getattr(first_chart(screen), "xlabel", None) == "epoch")
        chart = first_chart(screen)
        assert chart.ylim[1] < 1.0 and chart.ylabel == "train loss (log)" and chart.xlabel == "epoch"
        await pilot.press("o")
        await wait_for(
            pilot,
            lambda: (
                len(screen.query(BrailleChart)) == 1
                and first_chart(screen) is not None
                and "all runs" in first_chart(screen).title
            ),
        )
        overlay = screen.query_one(BrailleChart).chart
        assert len(overlay.lines) == 5 and len(overlay.legend) == 5
        await pilot.press("x")  # epoch -> iteration: the study's view one key on
        assert screen.view.x_axis == "iteration"
        await pilot.press("x", "x")  # -> wall -> samples
        assert screen.view.x_axis == "samples"


async def test_accuracy_view_draws_the_target_and_where_runs_crossed_it(fixture_dir):
    app = make_app(replay=str(fixture_dir), system=fake_system())
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await wait_for(
            pilot,
            lambda: all(
                p.chart is not None and p.chart.ylabel == "test accuracy"
                for p in app.screen.query(BrailleChart)
            ),
        )
        charts = {c.title.split(" · ")[0]: c for c in (p.chart for p in app.screen.query(BrailleChart))}
        assert charts["bs 6"].hlines == [(0.95, "rgb(95,215,95)")]
        assert [g for _, _, g, _ in charts["bs 6"].points] == ["◆"]  # reached 95%
        assert charts["bs 600"].points == []  # never did
        assert charts["bs 6"].ylabel == "test accuracy" and charts["bs 6"].lines[0].y.tolist() == [
            0.93,
            0.955,
            0.965,
        ]


async def test_crosshair_reads_every_shown_run_at_its_x():
    app = make_app(replay=str(LRGRID), system=fake_system())
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        await pilot.press("x", "x")  # samples (the default here) -> epoch -> iteration
        await pilot.press("right")  # on at the right end
        await wait_for(pilot, lambda: text_of(app.screen.query_one("#inspect")).startswith("it "))
        line = text_of(app.screen.query_one("#inspect"))
        assert line.startswith("it 1,799") and line.count("│") == 9
        assert "bs 10 lr 0.0548 " in line and "bs 600 lr 0.173 -" in line  # batch 600 never got that far
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.screen.query_one("#inspect").display)


async def test_a_9_run_sweep_pages_at_80x24_and_tab_focuses_runs():
    app = make_app(replay=str(LRGRID), system=fake_system())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.screen
        plots = list(screen.query(BrailleChart))
        assert len(plots) < 9 and all(p.size.height >= 8 for p in plots)
        assert f"runs 1-{len(plots)} of 9" in text_of(screen.query_one("#inspect"))
        await pilot.press("pagedown")
        await wait_for(pilot, lambda: f"runs {len(plots) + 1}-" in text_of(screen.query_one("#inspect")))
        await pilot.press("tab")
        assert screen.view.focus == "bs10-lr0.0173205"
        await pilot.press("shift+tab", "shift+tab")
        assert screen.view.focus == "bs600-lr0.173205"


async def test_e_saves_an_svg_into_the_run_directory_and_says_where(run_copy):
    app = make_app(replay=str(run_copy), system=fake_system())
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("e")
        await wait_for(pilot, lambda: any("screenshot-" in str(n.message) for n in notes(app)))
        shots = list(run_copy.glob("screenshot-*.svg"))
        assert len(shots) == 1 and shots[0].read_text().startswith("<svg")
        said = next(str(n.message) for n in notes(app) if "screenshot-" in str(n.message))
        assert (
            said == f"{shots[0].name}\nin {shots[0].parent}"
        )  # name and directory as words: no break mid-name


async def test_target_and_divergence_toast_live_but_not_from_a_replays_history(fixture_dir):
    app = make_app(replay=str(fixture_dir), system=fake_system())
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert not [n for n in notes(app) if n.title in ("target reached", "run diverged")]
    bridge = FakeBridge(fixture_events())
    live, _ = live_app(bridge)
    async with live.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: live.state.finished)
        await wait_for(pilot, lambda: sum(n.title == "target reached" for n in notes(live)) >= 2)
        titles = [n.title for n in notes(live)]
        assert titles.count("target reached") == 2 and titles.count("run diverged") == 1
        assert any(
            "bs 6 reached 95.5% at iteration 1,000" in str(n.message) for n in notes(live)
        )  # the event's test_acc


async def test_trainer_death_is_said_plainly_and_the_app_stays_usable():
    bridge, second = FakeBridge(first_events()), FakeBridge()
    app, made = live_app(bridge, second)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(
            pilot, lambda: len(app.state.runs.get("bs1", None).losses) > 0 if app.state.runs else False
        )
        shown = len(app.state.runs["bs1"].losses)
        bridge.die(-9)
        await wait_for(pilot, lambda: app.feed_end is not None)
        status = app.status_text().plain
        assert "trainer died" in status and "SIGKILL" in status and "r restarts" in status
        assert (
            f"resume: {trainer_command('resume', 'runs/fixture-small')}" in status
        )  # the run directory continues
        assert len(app.state.runs["bs1"].losses) == shown  # what it showed is kept
        assert app.state.runs["bs1"].status == "interrupted"  # killed: not a bug, so not "failed"
        assert any(trainer_command('resume', 'runs/fixture-small') in n.message for n in notes(app))
        await pilot.press("s")  # controls are refused, not crashed on
        assert bridge.controls() == []
        bridge.winding_down = threading.Event()  # the old trainer takes its time to stop
        await pilot.press("r", "r")  # a second r while restarting does not start two trainers
        assert made == [0]
        bridge.winding_down.set()
        await wait_for(pilot, lambda: made == [0, 1] and second.started == 1)
        await pilot.pause(0.2)
        assert made == [0, 1]
        assert app.feed_end is None and not app.state.started
        assert "died" not in app.status_text().plain
        await pilot.press("q")
        await wait_for(pilot, lambda: second.shutdowns >= 1)


async def test_a_failed_sweep_shows_the_trainers_reason():
    bridge = FakeBridge(
        [
            {
                "type": "sweep_finished",
                "t": 0.1,
                "status": "failed",
                "reason": "dataset mnist is not available offline",
            }
        ]
    )
    app, _ = live_app(bridge)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.state.finished)
        bridge.die(0)
        await wait_for(pilot, lambda: app.feed_end is not None)
        assert app.feed_end.kind == "finished"
        assert "sweep failed: dataset mnist is not available offline" in app.status_text().plain


async def test_replay_counts_unreadable_lines_in_the_header(run_copy):
    with open(run_copy / "events.jsonl", "a") as f:
        f.write("garbage that is not json\n{\"half\": \n")
    app = make_app(replay=str(run_copy))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert "2 unreadable lines skipped" in text_of(app.screen.query_one(SweepHeader))


async def test_replay_follows_a_file_that_is_still_being_written(run_copy):
    path = run_copy / "events.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:20]) + lines[20][:15])  # a writer mid-line
    app = make_app(replay=str(run_copy))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.state.version == 20)
        assert "following" in app.status_text().plain
        with open(path, "a") as f:  # the writer goes on: the cut line, then the rest
            f.write(lines[20][15:] + "".join(lines[21:]))
        await settle(pilot)
        assert app.state.finished and app.state.version == len(lines)


async def test_controls_do_nothing_in_replay_and_restart_reads_again(fixture_dir):
    app = make_app(replay=str(fixture_dir))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert app.screen.query_one("#split", Switch).disabled
        await pilot.press("s", "p")
        assert not app.controls.pause_requested
        first = app.state
        await pilot.press("r")
        await settle(pilot)
        assert app.state is not first and app.state.finished


async def test_restart_from_the_scaling_view_reads_again_and_resets_the_main_views_switch(fixture_dir):
    """r on the scaling screen: a fresh feed, and the split switch (on the main screen, under it) is set
    for that feed, not looked for on the screen shown."""
    app = make_app(replay=str(fixture_dir))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        switch = app.screen.query_one("#split", Switch)
        switch.disabled = False  # as a live feed would leave it: the new replay feed must disable it again
        first = app.state
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ScalingScreen))
        await pilot.press("r")
        await wait_for(pilot, lambda: app.state is not first and app.state.finished)
        assert app.is_running and switch.disabled
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))
        assert app.screen.query_one("#split", Switch) is switch


async def test_help_opens_and_closes():
    app, _ = live_app(FakeBridge(first_events()))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await wait_for(pilot, lambda: app.screen.query_one("#help-text").size.width > 0)
        shown = app.screen.query_one("#help-text")
        assert shown.size.width > 40 and shown.size.height > 10  # laid out, not collapsed
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


def test_fixture_is_valid_json_lines(fixture_dir):
    for line in (fixture_dir / "events.jsonl").read_text().splitlines():
        assert isinstance(json.loads(line), dict)


async def test_runs_hide_and_show_and_the_table_sorts_without_repeating_the_lr():
    """Was: no way to hide runs or sort the table, and "bs 10 lr 0.0173 | 0.0173" repeated the lr."""
    app = make_app(replay=str(LRGRID), system=fake_system())
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        screen = app.screen
        table = screen.query_one(RunTable)
        assert "lr" not in table.columns  # every label names its lr, and no run split
        assert len(screen.query(BrailleChart)) == 9
        await pilot.press("h")  # no run in focus: says how, hides nothing
        assert screen.view.hidden == frozenset()
        await pilot.press("tab", "h")
        hidden = screen.view.focus
        assert screen.view.hidden == {hidden}
        await wait_for(pilot, lambda: len(screen.query(BrailleChart)) == 8)
        label = sweep_looks(app.state.run_list())[hidden][0]
        await wait_for(pilot, lambda: all(p.chart is not None for p in screen.query(BrailleChart)))
        titles = [p.chart.title for p in screen.query(BrailleChart)]
        assert not any(t.startswith(label + " ") for t in titles) and len(titles) == 8
        await wait_for(pilot, lambda: str(table.get_cell(hidden, "run")).endswith(" hidden"))
        await pilot.press("o")  # the overlay follows
        await wait_for(
            pilot,
            lambda: (
                len(screen.query(BrailleChart)) == 1
                and first_chart(screen) is not None
                and "all runs" in first_chart(screen).title
            ),
        )
        assert len(first_chart(screen).lines) == 8
        await pilot.press("H")
        await wait_for(pilot, lambda: first_chart(screen) is not None and len(first_chart(screen).lines) == 9)
        await pilot.press("S")  # by best accuracy
        state = app.state

        def best_order() -> list[str]:
            return [r.run for r in sorted(state.run_list(), key=lambda r: -(r.best_acc or -1.0))]

        await wait_for(pilot, lambda: [str(k.value) for k in table.rows] == best_order())
        assert "table by best acc" in screen.view.describe()
