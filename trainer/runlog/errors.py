"""Errors of the run directory: what a user caused (exit 2) and what the disk did mid-sweep (exit 74)."""

from __future__ import annotations

from pathlib import Path

from trainer.runlog.commands import trainer_command


class RunDirError(Exception):
    """The run directory cannot be used (exists with a run, not writable, damaged): a user error."""


class RunDirLocked(RunDirError):
    """Another trainer, still alive, is writing the run directory."""


class UnreadableFile(RunDirError):
    """A file of the run directory cannot be read back: not a regular file (a FIFO, a device, a
    symlink to one), larger than any the trainer writes, or not text. The message names it."""


class RunDirWriteError(Exception):
    """Writing the run directory failed mid-sweep (disk full, directory removed, permissions).

    Not an OSError on purpose: the training loop ends a run on any ordinary exception, but this
    one must stop the whole sweep (nothing more can be recorded), so the loop lets it through.
    """

    def __init__(self, path: Path, exc: OSError) -> None:
        self.path = Path(path)
        self.errno = exc.errno
        self.strerror = exc.strerror or str(exc)
        super().__init__(
            f"cannot write the run directory {self.path}: {self.strerror}. It is valid up to its last "
            f"whole line; once there is room, continue with: {trainer_command('resume', self.path)}"
        )


def not_writable(path: Path, exc: OSError) -> RunDirError:
    """The user error for a run directory that cannot be created or written before training."""
    return RunDirError(
        f"cannot write the run directory {path}: {exc.strerror or exc}; choose a writable --out or output.dir"
    )
