"""Printed commands run as printed: after `make run` nothing of .venv is on PATH (trainer.runlog.commands)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import trainer.runlog.commands as commands


def _fresh(monkeypatch, executable: str, argv0: str, path: str):
    monkeypatch.setattr(sys, "executable", executable)
    monkeypatch.setattr(sys, "argv", [argv0])
    monkeypatch.setenv("PATH", path)
    commands.python_command.cache_clear()
    commands.bstui_command.cache_clear()


def test_without_the_venv_on_path_commands_name_the_venvs_programs(tmp_path, monkeypatch):
    venv = tmp_path / "clone" / ".venv" / "bin"
    venv.mkdir(parents=True)
    for name in ("python", "bstui"):
        (venv / name).write_text("#!/bin/sh\n")
        (venv / name).chmod(0o755)
    monkeypatch.chdir(tmp_path / "clone")
    try:
        _fresh(monkeypatch, str(venv / "python"), ".venv/bin/bstui", "/usr/bin:/bin")
        assert (
            commands.trainer_command("report", "runs/a b") == ".venv/bin/python -m trainer report 'runs/a b'"
        )
        assert commands.app_command("--attach", "runs/x") == ".venv/bin/bstui --attach runs/x"
        (tmp_path / "other").mkdir()
        monkeypatch.chdir(tmp_path / "other")  # outside the clone: the absolute path
        commands.python_command.cache_clear()
        assert commands.python_command() == str(venv / "python")
        _fresh(
            monkeypatch, str(venv / "python"), str(venv / "bstui"), f"{venv}:/usr/bin"
        )  # activated: short names
        assert commands.trainer_command("resume", "r") == "python -m trainer resume r"
        assert commands.app_command("--replay", "r") == "bstui --replay r"
        _fresh(monkeypatch, str(venv / "python"), "/x/tui/__main__.py", f"{venv}:/usr/bin")  # python -m tui
        assert commands.app_command("--attach") == "python -m tui --attach"
    finally:
        commands.python_command.cache_clear()
        commands.bstui_command.cache_clear()


@pytest.mark.subprocess
def test_the_printed_trainer_command_runs_from_a_shell_without_the_venv(tmp_path):
    """What a finished sweep prints, run by a shell whose PATH has no virtual environment."""
    commands.python_command.cache_clear()
    code = (
        "import sys, os; sys.path.insert(0, os.getcwd()); from trainer.runlog.commands import trainer_command; "
        "print(trainer_command('--help'))"
    )
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    printed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=os.getcwd(), check=True
    ).stdout.strip()
    program = printed.split()[0]  # this interpreter: absolute, or relative when under the working directory
    assert os.path.abspath(program) == os.path.abspath(sys.executable) or printed.startswith("python ")
    ran = subprocess.run(["/bin/sh", "-c", printed], capture_output=True, text=True, env=env)
    assert ran.returncode == 0 and "resume" in ran.stdout
