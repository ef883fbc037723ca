"""`python -m trainer submit CONFIG --nodes N`: the shards of a sweep as a job array, through submitit.

Each of the N array tasks trains one shard (`python -m trainer run CONFIG --shard I/N --out DIR`, or
`resume DIR/shards/I` once it has begun) on one node, in a child process of submitit's job. submitit's
checkpointing protocol carries a shard over a time limit or a preemption: SLURM signals the job (USR2,
`signal_delay_s` before the limit), submitit calls `ShardJob.checkpoint`, which stops the trainer
cleanly (SIGTERM: runs stopped, events and checkpoints whole, lock released) and hands back the same job,
which submitit requeues; the requeued job resumes the shard from its checkpoints.

`executor = "local"` runs the same array as local processes (submitit's LocalExecutor, which also
signals and requeues): how the tests and a laptop use it. sbatch is needed only for `executor = "slurm"`.
The resolved config is written once, to DIR/submitit/config.toml, and every shard trains from it, so the
shards agree whatever happens to CONFIG after submission; submitit's own files (pickles, logs) are there too.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from trainer.runlog import EVENTS
from trainer.runlog.commands import trainer_command
from trainer.runlog.shards import shard_dir

SUBMITIT_DIR = "submitit"  # DIR/submitit: the frozen config and submitit's pickles and logs
STOP_GRACE_S = 60.0  # a clean stop ends within a step (bench/stop.py: under 2 s); then it is killed
POLL_S = 0.5
#: The signal submitit uses for "time limit near / preempted" (its SUBMITIT_PREEMPT_SIGNAL, USR2 by default).
PREEMPT_SIGNAL = getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), signal.SIGUSR2)


class SubmitError(Exception):
    """The array cannot be submitted (no SLURM, no submitit...): the message names the fix."""


def _child_ignores_preempt_signal() -> None:
    # SLURM signals every process of the job: the trainer leaves USR2 to submitit's handler in its
    # parent, which stops it with SIGTERM (a clean stop) before requeueing.
    signal.signal(PREEMPT_SIGNAL, signal.SIG_IGN)


@dataclass
class ShardJob:
    """One array task: train (or resume) shard `index` of `count` of the sweep in `root`.

    A callable submitit pickles and runs on the node; `checkpoint` is submitit's hook (the Checkpointable
    protocol): it stops the trainer cleanly and returns the job to requeue."""

    config: str
    root: str
    index: int
    count: int
    python: str = sys.executable

    def command(self) -> list[str]:
        shard = shard_dir(self.root, self.index)
        if (shard / EVENTS).exists():  # begun before (requeued, or resubmitted): continue it
            return [self.python, "-m", "trainer", "resume", str(shard), "--quiet"]
        return [
            self.python,
            "-m",
            "trainer",
            "run",
            self.config,
            "--out",
            self.root,
            "--shard",
            f"{self.index}/{self.count}",
            "--quiet",
        ]

    def __call__(self) -> int:
        self._proc = subprocess.Popen(self.command(), preexec_fn=_child_ignores_preempt_signal)
        # poll, not wait(): submitit's signal handler runs between two polls and may stop the child
        while (code := self._proc.poll()) is None:
            time.sleep(POLL_S)
        if code != 0:
            raise RuntimeError(
                f"shard {self.index}/{self.count} ended with exit code {code}; its run directory "
                "is valid; continue it with: " + trainer_command("resume", shard_dir(self.root, self.index))
            )
        return code

    def checkpoint(self, *args, **kwargs):
        """submitit: the time limit is near or the job is preempted. Stop the trainer cleanly and requeue."""
        import submitit

        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the trainer's clean stop (exit 143)
            deadline = time.monotonic() + STOP_GRACE_S
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            if proc.poll() is None:
                proc.kill()  # events and checkpoints are whole up to the last; resume copes
        return submitit.helpers.DelayedSubmission(
            ShardJob(self.config, self.root, self.index, self.count, self.python)
        )

    def __getstate__(self):  # the child process is this node's, not part of the job
        return {k: v for k, v in self.__dict__.items() if k != "_proc"}


@dataclass
class Cluster:
    """Where and how the shards run."""

    nodes: int  # shards: one per node (array task)
    executor: str = "slurm"  # slurm | local
    partition: str = ""
    gpus_per_node: int = 0
    cpus_per_task: int = 0  # 0: the scheduler's default
    timeout_min: int = 60 * 24
    signal_delay_s: int = 120  # USR2 this long before the time limit: the clean stop and requeue


def make_executor(cluster: Cluster, folder: Path):
    """submitit's executor for `cluster`, its parameters set. SubmitError without SLURM for "slurm"."""
    try:
        import submitit
    except ImportError as exc:  # declared in pyproject.toml; a hand-made environment may lack it
        raise SubmitError(f"submitit is not installed ({exc}); pip install submitit") from None
    if cluster.executor == "slurm" and shutil.which("sbatch") is None:
        raise SubmitError(
            "no SLURM here (sbatch is not on PATH); submit from a SLURM login node, or run the "
            "shards on this machine with --executor local (or python -m trainer run CONFIG "
            "--shard I/N --out DIR on each machine)"
        )
    if cluster.executor == "local":
        executor = submitit.LocalExecutor(folder=str(folder))
        params = dict(
            timeout_min=cluster.timeout_min, tasks_per_node=1, signal_delay_s=cluster.signal_delay_s
        )
        if cluster.gpus_per_node:
            params["gpus_per_node"] = cluster.gpus_per_node
    else:
        executor = submitit.SlurmExecutor(folder=str(folder))
        params = dict(
            time=cluster.timeout_min,
            nodes=1,
            ntasks_per_node=1,
            job_name="bstui-shard",
            array_parallelism=cluster.nodes,
            signal_delay_s=cluster.signal_delay_s,
        )
        if cluster.partition:
            params["partition"] = cluster.partition
        if cluster.gpus_per_node:
            params["gpus_per_node"] = cluster.gpus_per_node
        if cluster.cpus_per_task:
            params["cpus_per_task"] = cluster.cpus_per_task
    executor.update_parameters(**params)
    return executor


def submit(executor, config_file: Path, root: Path, cluster: Cluster) -> list:
    """Submit the shards of the sweep whose resolved config is `config_file` as one array; the jobs."""
    jobs = [ShardJob(str(config_file), str(root), i, cluster.nodes) for i in range(cluster.nodes)]
    return executor.submit_array(jobs)
