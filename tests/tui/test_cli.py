"""`bstui` command line: user errors exit 2 with the cause before any window; no torch at import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tui.__main__ import main

ROOT = Path(__file__).resolve().parents[2]


def run_main(argv: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code, capsys.readouterr().err


@pytest.mark.subprocess
def test_tui_never_imports_torch_at_load():
    code = (  # every module of the package, widgets and screens included
        "import importlib, pathlib, sys;"
        "[importlib.import_module('.'.join(p.with_suffix('').parts)) for p in pathlib.Path('tui').rglob('*.py')"
        " if p.name != '__main__.py'];"
        "import tui.__main__;"
        "assert 'torch' not in sys.modules, 'torch imported';"
        "assert 'pynvml' not in sys.modules, 'pynvml imported before the first reading'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_bad_config_value_exits_2_with_the_trainers_message(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./experiments.toml: defaults + overrides only
    code, err = run_main(["--set", "sweep.batch_sizes=[0, 60]"], capsys)
    assert code == 2
    assert "batch_sizes" in err and "config error" in err


def test_typo_in_config_file_exits_2_naming_the_key(capsys, tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[sweep]\nbatch_size = [6, 60]\n")
    code, err = run_main([str(cfg)], capsys)
    assert code == 2 and "batch_size" in err


def test_missing_config_file_exits_2(capsys, tmp_path):
    code, err = run_main([str(tmp_path / "nope.toml")], capsys)
    assert code == 2 and "nope.toml" in err


def test_replay_of_a_missing_directory_exits_2(capsys, tmp_path):
    code, err = run_main(["--replay", str(tmp_path / "gone")], capsys)
    assert code == 2 and "does not exist" in err


def test_replay_of_a_directory_without_events_exits_2(capsys, tmp_path):
    code, err = run_main(["--replay", str(tmp_path)], capsys)
    assert code == 2 and "no events.jsonl" in err


def test_replay_refuses_training_options(capsys, fixture_dir):
    code, err = run_main(["--replay", str(fixture_dir), "--set", "sweep.epochs=1"], capsys)
    assert code == 2 and "--replay" in err


def test_out_dir_that_holds_a_run_is_refused(capsys, tmp_path, monkeypatch, run_copy):
    monkeypatch.chdir(tmp_path)
    code, err = run_main(["--out", str(run_copy)], capsys)
    assert code == 2 and "already holds a run" in err and "--replay" in err


@pytest.mark.subprocess
def test_python_dash_m_tui_reports_a_bad_config_before_any_window(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "tui", "--set", "sweep.epochs=0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "TERM": "xterm-256color"},
    )
    assert proc.returncode == 2
    assert "epochs" in proc.stderr
    assert "\x1b[?1049h" not in proc.stdout + proc.stderr  # never switched to the app's screen
