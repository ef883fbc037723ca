"""The run directory: the source of truth for a sweep.

    <run dir>/config.toml    the resolved config (every key, defaults included)
    <run dir>/events.jsonl   one event per line (whole lines only), flushed at least each epoch
    <run dir>/summary.csv    one row per run, rewritten atomically as runs finish
    <run dir>/errors.log     tracebacks of runs that failed (only when one did)

No torch here: the app reads run directories.
"""
from __future__ import annotations

import csv
import io
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from trainer.config import Config, config_to_dict, to_toml
from trainer.events import Event, encode

SUMMARY_FIELDS = [
    "run",
    "batch_size",
    "lr",
    "split_chunks",
    "status",
    "epochs",
    "best_test_acc",
    "time_to_target_s",
    "compute_to_target_s",
    "iters_to_target",
    "samples_per_s",
    "mean_epoch_wall_s",
    "mean_epoch_compute_s",
]
EVENTS = "events.jsonl"
SUMMARY = "summary.csv"
CONFIG = "config.toml"
ERRORS = "errors.log"


class RunDirError(Exception):
    """The run directory cannot be used (exists with a run, not writable): a user error."""


def default_run_dir(cfg: Config, now: float | None = None) -> Path:
    """<output.dir>/<date>-<time>-<config name>, made unique with a suffix if needed."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    name = Path(cfg.source).stem if cfg.source else "defaults"
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name) or "run"
    base = Path(cfg.output.dir).expanduser() / f"{stamp}-{name}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def holds_run(path: Path) -> bool:
    return (path / EVENTS).exists() or (path / SUMMARY).exists()


def create_run_dir(path: Path, force: bool = False) -> Path:
    """Create (or, with force, reuse) a run directory; refuse one that already holds a run."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path} exists and is not a directory; choose another --out")
    if holds_run(path) and not force:
        raise RunDirError(
            f"{path} already holds a run ({EVENTS}); choose another --out, or pass --force to overwrite it"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise RunDirError(f"cannot write the run directory {path}: {exc.strerror or exc}; "
                          "choose a writable --out or output.dir") from exc
    if force:
        for name in (EVENTS, SUMMARY, ERRORS):
            (path / name).unlink(missing_ok=True)
    return path


def write_atomic(path: Path, text: str) -> None:
    """Write a whole file or nothing: temp file in the same folder, then rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_config(path: Path, cfg: Config) -> None:
    header = f"# resolved config of this run (from {cfg.source or 'defaults'}); every key, defaults included\n"
    write_atomic(path / CONFIG, header + to_toml(config_to_dict(cfg)))


def summary_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=SUMMARY_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in SUMMARY_FIELDS})
    return out.getvalue()


def read_summary(path: Path) -> list[dict[str, str]]:
    with open(Path(path) / SUMMARY, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


class RunDirSink:
    """Writes events to events.jsonl and keeps summary.csv and errors.log current.

    Each event is written as one whole line. The file is flushed on every event
    except `losses` (the high-rate one), and always at `epoch_end`, so a reader
    never sees more than the losses of the current epoch missing.
    """

    FLUSH_ON = {"sweep_started", "run_started", "epoch_end", "mode_changed", "target_reached",
                "run_finished", "sweep_finished", "paused"}

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fh = open(self.path / EVENTS, "a", encoding="utf-8")
        self._rows: dict[str, dict[str, Any]] = {}

    def emit(self, event: Event) -> None:
        self._fh.write(encode(event) + "\n")
        kind = event["type"]
        if kind in self.FLUSH_ON:
            self._fh.flush()
        if kind == "sweep_started":
            for spec in event.get("runs", []):
                self._rows[spec["run"]] = {**spec, "status": "pending"}
        elif kind == "run_finished":
            self._rows[event["run"]] = event.get("summary", {})
            if event.get("traceback"):
                with open(self.path / ERRORS, "a", encoding="utf-8") as fh:
                    fh.write(f"== {event['run']}: {event.get('reason', '')}\n{event['traceback']}\n")
            write_atomic(self.path / SUMMARY, summary_csv(list(self._rows.values())))
        elif kind == "sweep_finished":
            for row in event.get("summaries", []):
                self._rows[row["run"]] = row
            write_atomic(self.path / SUMMARY, summary_csv(list(self._rows.values())))

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            self._fh.close()


def read_events(path: Path) -> tuple[list[Event], int]:
    """All whole, valid JSON event lines of a run directory, and how many lines were skipped."""
    import json

    events: list[Event] = []
    skipped = 0
    with open(Path(path) / EVENTS, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break  # a line still being written
            try:
                event = json.loads(line)
            except ValueError:
                skipped += 1
                continue
            if isinstance(event, dict) and isinstance(event.get("type"), str):
                events.append(event)
            else:
                skipped += 1
    return events, skipped
