"""Commands the app and the trainer print (resume, report, attach, replay), spelled so they run as printed.

After `make run` nothing of the virtual environment is on PATH: `bstui` and `python` there are another
program or none. So a printed command names the program this process runs as: `python` when the
`python` on PATH is this interpreter, else this interpreter's path (relative to the working directory
when it lies under it: `.venv/bin/python`); `bstui` likewise. Pure: no torch, numpy, Textual or rich.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from functools import lru_cache
from pathlib import Path


def _spelled(path: str, name: str) -> str:
    """`name` when that is what PATH finds for it, else `path` (relative to the working directory if under it)."""
    here = os.path.abspath(path)
    found = shutil.which(name)
    if found and os.path.abspath(found) == here:
        return name
    try:
        rel = os.path.relpath(here)
    except ValueError:  # another drive (Windows)
        rel = here
    shown = rel if not rel.startswith("..") else here
    return shlex.quote(shown if os.sep in shown else os.path.join(".", shown))


@lru_cache(maxsize=1)
def python_command() -> str:
    """This interpreter as a user types it: `python`, or `.venv/bin/python`, or its absolute path."""
    return _spelled(sys.executable, "python") if sys.executable else "python"


@lru_cache(maxsize=1)
def bstui_command() -> str:
    """This app as a user types it: `bstui` when PATH finds this one, its script's path when it runs as
    a script (.venv/bin/bstui after `make run`), else `<python> -m tui`."""
    script = sys.argv[0] if sys.argv and sys.argv[0] else ""
    if script and Path(script).name == "bstui" and os.path.isfile(script):
        return _spelled(script, "bstui")
    return f"{python_command()} -m tui"


def trainer_command(*args: str | os.PathLike[str]) -> str:
    """`python -m trainer ARGS...` as it runs from here: e.g. trainer_command("report", run_dir)."""
    return " ".join([python_command(), "-m", "trainer", *(shlex.quote(str(a)) for a in args)])


def app_command(*args: str | os.PathLike[str]) -> str:
    """`bstui ARGS...` as it runs from here: e.g. app_command("--attach", run_dir)."""
    return " ".join([bstui_command(), *(shlex.quote(str(a)) for a in args)])
