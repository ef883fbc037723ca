"""A sweep sharded over machines: its layout on disk, and its shards read back as one sweep.

`python -m trainer run CONFIG --shard I/N --out DIR` trains shard I's runs into `DIR/shards/I/`, a
whole run directory of its own (config.toml, events.jsonl, summary.csv, checkpoints/, trainer.lock:
one writer per file, as for any sweep), plus `shard.json`: which shard it is and the plan of the
whole sweep (every run's row, with the shard that trains it). Any one shard thus knows the sweep, so
a shard that never started is still named.

`ShardMerger` turns the shards' events into the events of one sweep, for `report` and for the app
(`bstui --replay/--attach DIR`): one `sweep_started` listing every run, each shard's events on a common
clock (its `t` shifted by the wall time between its start and the first shard's), and one
`sweep_finished` with every summary and the scaling analysis once every shard has finished.

Pure (stdlib and trainer.runlog): the app imports this. The merged sweep_finished's analysis comes from
the `analyse` its reader passes (trainer.analysis.scaling.analyse). The assignment of runs to
shards is trainer.sweep.shard_plan (it needs trainer.engine.fuse's rules).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from trainer.runlog import EVENTS, EventType, RunDirError, read_bytes, write_atomic
from trainer.runlog.commands import trainer_command
from trainer.runlog.reader import parse_json

SHARDS = "shards"  # DIR/shards/<i>/: one run directory per shard
SHARD_FILE = "shard.json"
MAX_SHARD_FILE_BYTES = 16 << 20  # the rows of every run of the sweep: a few kB per hundred runs
MAX_SHARDS = 10_000

_SHARD_ARG = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> tuple[int, int]:
    """`I/N` (0 <= I < N) as (I, N); ValueError naming the fix."""
    m = _SHARD_ARG.match(text or "")
    if not m:
        raise ValueError(
            f"--shard {text!r} is not I/N; give the shard's index and the number of shards, "
            "e.g. --shard 0/3 (shards are numbered from 0)"
        )
    index, count = int(m.group(1)), int(m.group(2))
    if not 1 <= count <= MAX_SHARDS:
        raise ValueError(f"--shard {text}: the number of shards must be 1 to {MAX_SHARDS}")
    if index >= count:
        raise ValueError(f"--shard {text}: shards of {count} are numbered 0 to {count - 1}")
    return index, count


@dataclass(frozen=True)
class ShardInfo:
    """What `shard.json` records: this shard's index, how many there are, and the whole sweep's runs in
    sweep order (each a sweep_started row plus `shard`, the index of the shard that trains it)."""

    index: int
    count: int
    rows: tuple[dict[str, Any], ...]

    @property
    def runs(self) -> list[str]:
        """The run ids this shard trains, in sweep order."""
        return [r["run"] for r in self.rows if r.get("shard") == self.index]

    def runs_of(self, index: int) -> list[str]:
        return [r["run"] for r in self.rows if r.get("shard") == index]

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "count": self.count, "runs": [dict(r) for r in self.rows]}


def shard_dir(root: Path | str, index: int) -> Path:
    return Path(root) / SHARDS / str(index)


def write_shard_file(run_dir: Path | str, info: ShardInfo) -> None:
    write_atomic(Path(run_dir) / SHARD_FILE, json.dumps(info.as_json(), indent=1) + "\n")


def read_shard_file(run_dir: Path | str) -> ShardInfo | None:
    """The shard.json of a run directory; None when it has none (an unsharded sweep); RunDirError
    when it is there but not one the trainer wrote."""
    path = Path(run_dir) / SHARD_FILE
    if not os.path.lexists(path):
        return None
    try:
        obj = parse_json(read_bytes(path, MAX_SHARD_FILE_BYTES))
    except (OSError, ValueError, RunDirError) as exc:
        raise RunDirError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    ok = (
        isinstance(obj, dict)
        and isinstance(obj.get("index"), int)
        and isinstance(obj.get("count"), int)
        and 0 <= obj["index"] < obj["count"] <= MAX_SHARDS
        and isinstance(obj.get("runs"), list)
        and all(
            isinstance(r, dict) and isinstance(r.get("run"), str) and isinstance(r.get("shard"), int)
            for r in obj["runs"]
        )
    )
    if not ok:
        raise RunDirError(
            f"{path} is not a shard file the trainer wrote (it needs index, count and runs); "
            "restore it, or train the shard again with --force"
        )
    return ShardInfo(obj["index"], obj["count"], tuple(obj["runs"]))


def is_sharded(root: Path | str) -> bool:
    """A sharded sweep's directory: DIR/shards/ and no events.jsonl of its own."""
    root = Path(root)
    return (root / SHARDS).is_dir() and not os.path.lexists(root / EVENTS)


def shard_dirs(root: Path | str) -> dict[int, Path]:
    """The shard directories present under DIR/shards/, by index (names that are not an index are ignored)."""
    base = Path(root) / SHARDS
    try:
        names = os.listdir(base)
    except OSError:
        return {}
    return {int(n): base / n for n in names if n.isdigit() and (base / n).is_dir()}


def sweep_plan(root: Path | str) -> ShardInfo | None:
    """The plan of a sharded sweep, from the first shard that has a readable shard.json (None if none)."""
    for _, path in sorted(shard_dirs(root).items()):
        try:
            info = read_shard_file(path)
        except RunDirError:
            continue
        if info is not None:
            return info
    return None


Analyse = Callable[[list[dict[str, Any]], "float | None", "float | None"], dict[str, Any]]


def scaling_of(summaries: list[dict[str, Any]], config: dict[str, Any], analyse: Analyse) -> dict[str, Any]:
    """sweep_finished's `scaling` for these summaries, as the trainer computes it with `analyse`
    (trainer.analysis.scaling.analyse), per variant with [[variants]]."""

    def positive(v: Any) -> float | None:
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else None

    optim = config.get("optim") if isinstance(config.get("optim"), dict) else {}
    variants = config.get("variants") if isinstance(config.get("variants"), list) else []
    variants = [v for v in variants if isinstance(v, dict) and isinstance(v.get("name"), str)]
    if variants:
        out = {}
        for v in variants:
            vo = v.get("optim") if isinstance(v.get("optim"), dict) else {}
            out[v["name"]] = analyse(
                [s for s in summaries if s.get("variant") == v["name"]],
                positive(vo.get("lr", optim.get("lr"))),
                positive(vo.get("base_batch_size", optim.get("base_batch_size"))),
            )
        return {"variants": out}
    return analyse(summaries, positive(optim.get("lr")), positive(optim.get("base_batch_size")))


_STATUS_RANK = {"done": 0, "stopped": 1, "failed": 2}


@dataclass
class _Shard:
    started_at: float | None = None
    offset: float = 0.0
    started: bool = False
    finished: dict[str, Any] | None = None


@dataclass
class ShardMerger:
    """The events of a sharded sweep's shards as one sweep's, fed shard by shard (incrementally: the app
    feeds each poll's new events; `report` feeds whole files)."""

    plan: ShardInfo
    run_dir: str = ""
    analyse: Analyse | None = None  # trainer.analysis.scaling.analyse: sweep_finished's scaling ({} without)
    shards: dict[int, _Shard] = field(default_factory=dict)
    base: float | None = None  # wall time of the merged sweep's t = 0: the earliest shard's start
    announced: bool = False
    config: dict[str, Any] = field(default_factory=dict)  # the resolved config of the first sweep_started

    def shard(self, index: int) -> _Shard:
        return self.shards.setdefault(index, _Shard())

    def set_base(self, started: Iterable[dict[str, Any]]) -> None:
        """Fix t = 0 at the earliest of these sweep_started events' wall times (before the first feed)."""
        times = [
            e["started_at"] - (e["t"] if isinstance(e.get("t"), (int, float)) else 0.0)
            for e in started
            if isinstance(e.get("started_at"), (int, float))
        ]
        if times and self.base is None:
            self.base = float(min(times))

    def feed(self, index: int, events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """This shard's new events as merged events (its sweep_started and sweep_finished are folded
        into the one sweep's). The events are the caller's own, just read: their `t` is shifted in place."""
        sh = self.shard(index)
        out: list[dict[str, Any]] = []
        for e in events:
            kind = e.get("type")
            if kind == EventType.SWEEP_STARTED:
                at = e.get("started_at")
                sh.started = True
                if isinstance(at, (int, float)):
                    sh.started_at = float(at) - (
                        float(e["t"]) if isinstance(e.get("t"), (int, float)) else 0.0
                    )
                    if self.base is None:
                        self.base = sh.started_at
                    sh.offset = sh.started_at - self.base
                if not self.announced:
                    self.announced = True
                    out.append(self._started(e))
                continue
            if sh.offset and isinstance(
                e.get("t"), (int, float)
            ):  # the caller's fresh events: shifted in place
                e["t"] = float(e["t"]) + sh.offset
            if kind == EventType.SWEEP_FINISHED:
                sh.finished = e
                if self.all_finished:
                    out.append(self._finished(e))
                continue
            if kind == EventType.SWEEP_RESUMED:
                e["shard"] = index
            out.append(e)
        return out

    @property
    def all_finished(self) -> bool:
        return all(self.shard(i).finished is not None for i in range(self.plan.count))

    def _started(self, e: dict[str, Any]) -> dict[str, Any]:
        merged = dict(e)
        merged["runs"] = [{k: v for k, v in r.items()} for r in self.plan.rows]
        merged["shard"] = {"count": self.plan.count}
        merged["t"] = 0.0
        if self.run_dir:
            merged["run_dir"] = self.run_dir
        self.config = e.get("config") if isinstance(e.get("config"), dict) else {}
        return merged

    def _finished(self, last: dict[str, Any]) -> dict[str, Any]:
        by_run: dict[str, dict[str, Any]] = {}
        status = "done"
        for i in range(self.plan.count):
            fin = self.shard(i).finished or {}
            st = str(fin.get("status") or "done")
            if _STATUS_RANK.get(st, 2) > _STATUS_RANK[status]:
                status = st if st in _STATUS_RANK else "failed"
            for s in fin.get("summaries") or []:
                if isinstance(s, dict) and isinstance(s.get("run"), str):
                    by_run[s["run"]] = s
        summaries = [by_run[r["run"]] for r in self.plan.rows if r["run"] in by_run]
        t = max(
            (
                float(self.shard(i).finished.get("t") or 0.0)  # type: ignore[union-attr]
                for i in range(self.plan.count)
            ),
            default=last.get("t", 0.0),
        )
        return {
            "type": EventType.SWEEP_FINISHED,
            "t": t,
            "status": status,
            "summaries": summaries,
            "scaling": scaling_of(summaries, self.config, self.analyse) if self.analyse else {},
        }


def merge_all(
    logs: dict[int, list[dict[str, Any]]], plan: ShardInfo, run_dir: str = "", analyse: Analyse | None = None
) -> list[dict[str, Any]]:
    """Whole shard logs (index -> its events) as one sweep's events, in time order."""
    merger = ShardMerger(plan, run_dir, analyse)
    merger.set_base(e for events in logs.values() for e in events if e.get("type") == EventType.SWEEP_STARTED)
    merged: list[dict[str, Any]] = []
    for index in sorted(logs):
        merged.extend(merger.feed(index, logs[index]))
    return sort_by_time(merged)


def sort_by_time(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stable sort by `t`; the sweep's start first and its end last whatever their clocks say."""

    def key(e: dict[str, Any]) -> tuple[int, float]:
        kind = e.get("type")
        rank = 0 if kind == EventType.SWEEP_STARTED else 2 if kind == EventType.SWEEP_FINISHED else 1
        t = e.get("t")
        return rank, float(t) if isinstance(t, (int, float)) else 0.0

    return sorted(events, key=key)


def shard_problems(
    root: Path | str, plan: ShardInfo, ended: dict[int, str | None], live: Iterable[int] = ()
) -> list[str]:
    """One sentence per shard that has not finished well and is not being written, with the command that
    continues it. `ended`: per shard that has events, its sweep_finished status (None: not finished)."""
    out = []
    live = set(live)
    for i in range(plan.count):
        if i in live:
            continue
        path = shard_dir(root, i)
        if i not in ended:
            out.append(
                f"shard {i}/{plan.count} has not started (runs {', '.join(plan.runs_of(i)) or 'none'}); "
                "start it with: "
                + trainer_command("run", "CONFIG", "--shard", f"{i}/{plan.count}", "--out", root)
            )
        elif ended[i] is None:
            out.append(
                f"shard {i}/{plan.count} stopped before its sweep finished; "
                "resume it with: " + trainer_command("resume", path)
            )
        elif ended[i] in ("stopped", "failed"):
            out.append(
                f"shard {i}/{plan.count} ended {ended[i]}; resume it with: " + trainer_command("resume", path)
            )
    return out


def ended_of(events: list[dict[str, Any]]) -> str | None:
    """A shard's sweep_finished status, None while it has none."""
    fin = [e for e in events if e.get("type") == EventType.SWEEP_FINISHED]
    return str(fin[-1].get("status") or "done") if fin else None


@dataclass
class ShardedLog:
    """A sharded sweep read whole: its merged events, the unreadable lines of every shard, and what the
    reader should know (how many shards, their devices, the ones missing or stopped and how to continue)."""

    events: list[dict[str, Any]]
    skipped: int
    notes: list[str]
    problems: list[str]


def read_sharded(root: Path | str, analyse: Analyse | None = None) -> ShardedLog:
    """Every shard of the sharded sweep in `root` as one sweep. RunDirError when no shard has a plan yet."""
    from trainer.runlog import read_events

    root = Path(root)
    plan = sweep_plan(root)
    if plan is None:
        raise RunDirError(
            f"{root / SHARDS} holds no shard that has started (no {SHARD_FILE}); start them with "
            + trainer_command("run", "CONFIG", "--shard", "I/N", "--out", root)
            + ", or "
            + trainer_command("submit", "CONFIG")
        )
    logs: dict[int, list[dict[str, Any]]] = {}
    skipped = 0
    for index, path in sorted(shard_dirs(root).items()):
        if index >= plan.count:
            continue
        try:
            log = read_events(path / EVENTS)
        except FileNotFoundError:
            continue
        logs[index] = log.events
        skipped += log.skipped
    from trainer.runlog import lock_status

    live = {i for i in logs if lock_status(shard_dir(root, i)).get("state") == "live"}
    devices = sorted(
        {
            str(e.get("device"))
            for ev in logs.values()
            for e in ev
            if e.get("type") == EventType.SWEEP_STARTED and e.get("device")
        }
    )
    notes = [
        f"sharded: {plan.count} shards in {root / SHARDS}"
        + (f", devices: {', '.join(devices)}" if devices else "")
        + (f"; still training: shard {', '.join(map(str, sorted(live)))}" if live else "")
    ]
    ended = {i: ended_of(ev) for i, ev in logs.items()}
    return ShardedLog(
        merge_all(logs, plan, str(root), analyse), skipped, notes, shard_problems(root, plan, ended, live)
    )
