"""The training loop: a group of K >= 1 runs trained in lockstep, one run being a group of one.

The sweep advances groups in slices (`advance(samples)`) so it can interleave them; each slice is timed
alone. The group owns what is common to its members: the loop, the clocks (each training member is
credited its share of every interval: the whole of it alone, 1/K fused), the app's controls (stop,
pause, the split switch), and what a failing step does (out of memory or another error ends the runs
that took it, never the sweep). Its members (trainer.engine.run.Run) do their own bookkeeping through
their public surface; a stepper (trainer.engine.steppers), chosen when the group is made, takes the step:
each member's own (one run: eager, split-backward, accumulation, CUDA graph, data parallel) or one
stacked step for K runs fused (perf.fuse_runs, trainer.engine.fuse).

A member that ends (diverged, collapsed, out of epochs) leaves the group; the others train on. A fused
group that shrinks to one run goes on with K = 1 and that run's own step, and records itself
(`fused_group`, with `continues_alone`); the group's own totals are in that event.
"""

from __future__ import annotations

import math
import traceback

from trainer.engine.run import Run
from trainer.engine.steppers import OwnSteps, StackedSteps
from trainer.engine.threads import cpu_threads, use_threads
from trainer.engine.timing import ComputeTimer, WallClock
from trainer.runlog import EventType, RunDirWriteError
from trainer.runlog.controls import Controls, StopRequested


class Group:
    """Members trained in lockstep (see the module's docstring); the sweep advances it (`advance`,
    `finished`). `fused`: K >= 2 runs of one batch size share stacked steps (FuseUnavailable from
    trainer.engine.stacked when they cannot; then each trains in a group of its own)."""

    def __init__(self, members: list[Run], label: str = "", fused: bool = False) -> None:
        self.members = list(members)
        self.label, self.fused = label, fused
        self.steps: OwnSteps | StackedSteps = StackedSteps(self.members) if fused else OwnSteps()
        if not self.members:
            raise ValueError("a group needs a run")
        self.training = list(self.members)  # the members that train on, in the stepper's row order
        self.device, self.controls = self.members[0].device, self.members[0].controls
        self.wall, self.compute = WallClock(self.device), ComputeTimer(self.device)
        self.group_wall = self.group_compute = 0.0  # the group's own totals (fused_group event)
        self.steps_taken, self._closed = 0, False
        self._seen_version = -1  # apply the controls' state before the first iteration
        self.threads = self._share_threads()

    def _share_threads(self) -> int:
        """The CPU threads of the group's steps (0 on a GPU: torch's own): one run's own; fused, by the work
        of one fused step (batch x runs, trainer.engine.threads: bench/fuse.py measured 2 threads 1.4x faster
        than 1 at batch 6, K = 16 on 2 cores), as each member's run_started says."""
        first = self.training[0]
        if not self.steps.stacked or self.device.type != "cpu":
            return first.parts.cpu_threads
        threads = cpu_threads(first.parts.batch_size * len(self.training), 0, first.settings.perf.cpu_threads)
        for m in self.training:
            m.parts.cpu_threads = threads
        return threads

    @property
    def finished(self) -> bool:
        return all(m.finished for m in self.members)

    def change_batch(self, batch_size: int, lrs: dict[str, float] | None = None) -> None:
        """Every training member trains on at `batch_size` (Run.change_batch, its lr from `lrs` by run id)
        and the stepper is chosen again (fused members stacked again). Call it between two `advance`s."""
        self.clock_off()
        self.training = [m for m in self.training if not m.finished]
        for m in self.training:
            m.change_batch(batch_size, (lrs or {}).get(m.run_id))
        if self.steps.stacked:
            self.steps = StackedSteps(self.training)
        self.threads = self._share_threads()

    # --- clocks -------------------------------------------------------------------------------------------

    def clock_on(self) -> None:
        self.wall.start()
        for m in self.training:
            m.time.running = True

    def clock_off(self) -> None:
        """Stop the group's clock and share the interval among the members training in it."""
        if not self.wall.running:
            return
        self.wall.stop()
        for m in self.members:
            m.time.running = False
        self._credit(self.wall.take(), "wall")

    def _collect(self) -> None:
        """Fold the steps' timings into the members' shares (on CUDA one sync: after a flush, so the
        event pool stays one block long instead of growing to an epoch)."""
        self.compute.collect()
        self._credit(self.compute.take(), "compute")

    def _credit(self, seconds: float, which: str) -> None:
        if seconds <= 0:
            return
        if which == "wall":
            self.group_wall += seconds
        else:
            self.group_compute += seconds
        training = [m for m in self.members if not m.finished]
        for m in training:
            setattr(m.time, which, getattr(m.time, which) + seconds / len(training))

    def _clock_on_if_training(self) -> None:
        if not self.finished:
            self.clock_on()

    # --- the loop -----------------------------------------------------------------------------------------

    def advance(self, samples: int) -> None:
        """Train every member about `samples` samples (whole batches, at least one), crossing epochs as
        needed. Members end on their own (diverged/oom/failed/collapsed/done) or are ended between advances
        (a branch at its target); StopRequested when the user stops the sweep (it ends every run stopped)."""
        if self.finished:
            return self.close()
        self._regroup()
        use_threads(self.training[0].parts.cpu_threads)
        iters_left = max(1, math.ceil(samples / self.training[0].parts.batch_size))
        try:
            while iters_left > 0 and not self.finished:
                iters_left -= self._train_iters(iters_left)
                if not self.finished and all(m.parts.epoch_over for m in self.training):
                    self._collect()
                    for m in list(self.training):
                        m.end_epoch()
                    self._regroup()
        except (StopRequested, RunDirWriteError):  # the whole sweep ends, not just these runs
            self.clock_off()
            for m in self.training:
                m.flush()
            raise
        except Exception as exc:  # noqa: BLE001 - a step's failure ends its runs, not the sweep
            self.clock_off()
            trace = traceback.format_exc()
            note = (
                f" (it trained fused with {len(self.members) - 1} other runs)" if self.steps.stacked else ""
            )
            for m in self.training:
                if not m.finished:
                    m.fail(exc, trace, note)
        if self.finished:
            self.close()

    def _train_iters(self, max_iters: int) -> int:
        """Up to max_iters lockstep iterations of the current epoch; returns how many were done."""
        controls = self.controls
        done = 0
        self.clock_on()
        try:
            while done < max_iters:
                if controls is not None and controls.version != self._seen_version:
                    self._obey(controls)
                    if self.finished:
                        return done
                members = self.training
                items = [m.parts.next_item(m.ledger.totals.epochs) for m in members]
                if any(item is None for item in items):  # the epoch's batches are all trained (lockstep)
                    break
                it = members[0].iteration
                self.steps.warm_up(it)
                for m in members:
                    m.parts.warm_up(it)
                probing = [m.parts.probe_due(it) for m in members]
                if any(probing):  # a noise-scale estimate on this batch before its step, off the clocks
                    self.clock_off()
                    for m, item, due in zip(members, items, probing):
                        if due:
                            m.parts.probe_before(item)
                    self.clock_on()
                self.compute.begin()
                losses, n = self.steps.step(members, items)
                self.compute.end()
                self.steps_taken += 1
                done += 1
                self._book(members, losses, n, probing)
                if self.finished:
                    return done
        finally:
            self.clock_off()
        self._flush(self.training)
        self._regroup()
        return done

    def _book(self, members: list[Run], losses: list, n: int, probing: list[bool]) -> None:
        """Each member's bookkeeping of the step: probes, ledger, evaluations (off the clocks)."""
        full = []
        for row, (m, loss) in enumerate(zip(members, losses)):
            if m.parts.wants_grads(probing[row]):
                m.parts.probe_after(self.steps.grads(members, row), probing[row])
            full.append(m.record(loss, n))
        if any(full):  # a block of losses to the host, off the clock (a NaN ends that run only)
            self.clock_off()
            self._flush([m for m, f in zip(members, full) if f])
            self._clock_on_if_training()
        due_eval = [m for m in members if m.evaluation_due()]
        due_noise = [m for m in members if m.noise_due()]
        if due_eval or due_noise:
            self.clock_off()
            self._collect()  # each member's evaluation reads its share
            for m in due_eval:
                m.evaluate()
            for m in due_noise:
                if not m.finished:
                    m.read_noise()
            self._clock_on_if_training()
        if any(m.finished for m in members):
            self.clock_off()
            self._regroup()
            self._clock_on_if_training()

    def _flush(self, members: list[Run]) -> None:  # off the clocks
        for m in members:
            m.flush()
        self._collect()

    def _obey(self, controls: Controls) -> None:
        """The app's controls for the whole group: stop, the split switch, pause."""
        self._seen_version = controls.version
        if controls.stop:
            raise StopRequested()
        for m in self.training:
            if not m.finished:
                m.obey_split(controls.split_chunks)
        if controls.paused:
            self.clock_off()
            self._flush(self.training)  # the app shows everything trained before the pause
            self._regroup()
            if self.finished:  # those losses held a NaN: the runs diverged
                return
            waiting = self.training[0]
            waiting.emitter.emit("paused", paused=True, run_waiting=waiting.run_id, iter=waiting.iteration)
            controls.wait_while_paused()
            waiting.emitter.emit("paused", paused=False, run_waiting=waiting.run_id, iter=waiting.iteration)
            if controls.stop:
                raise StopRequested()
            self.clock_on()

    def _regroup(self) -> None:
        """Drop the members that ended; a fused group down to one run goes on with that run's own step."""
        rows = [i for i, m in enumerate(self.training) if not m.finished]
        if len(rows) == len(self.training):
            return
        if rows:
            self.steps.keep(rows)
        self.training = [self.training[i] for i in rows]
        if not rows:
            self.close()
        elif len(rows) == 1 and self.steps.stacked:
            last = self.training[0]
            self.steps = OwnSteps()
            if last.parts.cpu_threads:  # its own rule again: one run's steps
                last.parts.cpu_threads = last.parts.own_threads()
                use_threads(last.parts.cpu_threads)
            self.close(alone=last.run_id)

    def close(self, alone: str = "") -> None:
        """A fused group records itself once (fused_group, its own totals): when its last run ends, when one
        run is left to train on alone, or when the sweep stops."""
        if self._closed or not self.fused:
            return
        self._closed = True
        first = self.members[0]
        first.emitter.emit(
            EventType.FUSED_GROUP,
            group=self.label,
            runs=[m.run_id for m in self.members],
            batch_size=first.parts.batch_size,
            steps=self.steps_taken,
            wall_s=self.group_wall,
            compute_s=self.group_compute,
            device=str(self.device),
            cpu_threads=self.threads,
            **({"continues_alone": alone} if alone else {}),
        )
