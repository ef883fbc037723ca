"""The status line: words and a severity from what the app knows, no style strings searched."""

from __future__ import annotations

from tui.state.status import Severity, StatusInputs, StatusLine, status_line


def test_each_situation_has_its_words_and_severity():
    base = dict(live=True, started=True, finished=False)
    assert status_line(StatusInputs(**base)) == StatusLine("● running", Severity.INFO)
    assert status_line(StatusInputs(**base, paused=True)).severity is Severity.WARNING
    died = status_line(StatusInputs(**base, died="killed by SIGKILL"))
    assert died.severity is Severity.ERROR and "SIGKILL" in died.plain and "r restarts" in died.plain
    done = status_line(StatusInputs(live=False, started=True, finished=True, sweep_status="done"))
    assert done.severity is Severity.OK and done.plain == "replay · sweep done"
    done = status_line(
        StatusInputs(live=True, started=True, finished=True, sweep_status="done", run_dir="runs/a")
    )
    assert done.plain == "sweep done · c scaling · r restarts"
    failed = status_line(
        StatusInputs(live=True, started=True, finished=True, sweep_status="failed", reason="no data")
    )
    assert failed.severity is Severity.ERROR and failed.plain == "sweep failed: no data · r restarts"
    assert status_line(StatusInputs(live=True, started=False, finished=False)).severity is Severity.MUTED
    assert status_line(StatusInputs(**base, stopping=True)).plain == "stopping the trainer…"


def test_a_followed_trainer_speaks_for_itself_until_the_sweep_finishes():
    gone = StatusLine("✖ the trainer of this run is gone", Severity.ERROR)
    assert status_line(StatusInputs(live=False, started=True, finished=False, watch=gone)) is gone
    finished = status_line(
        StatusInputs(live=False, started=True, finished=True, sweep_status="done", watch=gone)
    )
    assert finished.severity is Severity.OK
    assert (
        status_line(StatusInputs(live=False, started=True, finished=False, watch=gone, paused=True)) is gone
    )
    attached = StatusLine("attached · trainer pid 7 is writing this run", Severity.INFO)
    paused = status_line(StatusInputs(live=False, started=True, finished=False, watch=attached, paused=True))
    assert paused.severity is Severity.WARNING and paused.plain.startswith("⏸ paused · p resumes")
    assert "trainer pid 7" in paused.plain


def test_the_style_follows_the_severity():
    text = StatusLine("sweep done", Severity.OK, ": all runs").text()
    assert text.plain == "sweep done: all runs" and "green" in str(text.spans[0].style)


def test_start_up_stages_show_while_live_and_never_in_a_replay():
    starting = status_line(
        StatusInputs(live=True, started=False, finished=False, stage="generating synthetic-digits 40%")
    )
    assert starting == StatusLine("starting: generating synthetic-digits 40%…", Severity.MUTED)
    assert (
        status_line(StatusInputs(live=True, started=False, finished=False)).plain == "starting the trainer…"
    )
    capture = status_line(
        StatusInputs(live=True, started=True, finished=False, stage="capturing CUDA graph (bs60)")
    )
    assert capture.plain == "● running · capturing CUDA graph (bs60)…" and capture.severity is Severity.INFO
    assert status_line(StatusInputs(live=False, started=False, finished=False, stage="x")).plain == (
        "replay · waiting for events…"
    )
