"""File primitives of the run directory: the one atomic writer, the one appender, the one bounded opener.

Writing never leaves the directory: a whole file goes to a temp file beside its name and is renamed
over it (a symlink in its place is replaced, what it pointed to is untouched); an append opens with
O_NOFOLLOW, and a symlink, FIFO or device found in the place of one of the run's files is replaced by
a regular file. New files are 0644 less the umask, readable by the group like any tool's output
(mkstemp's 0600 hid summaries and checkpoints from teammates on a shared box).

Reading takes regular files only (also through a symlink): a FIFO, a device such as /dev/zero or a
directory is refused before it is opened for reading, so nothing blocks, and no read goes past a
size bound. The refusal is an `UnreadableFile` whose message names the file and what it is.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import stat
from pathlib import Path
from typing import IO, Callable, Union

from trainer.runlog.errors import UnreadableFile

#: Mode of every file the trainer creates (the umask still applies).
FILE_MODE = 0o644
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_NOCTTY = getattr(os, "O_NOCTTY", 0)

Payload = Union[str, bytes, bytearray, memoryview, Callable[[IO[bytes]], object]]


def write_atomic(path: str | os.PathLike[str], data: Payload) -> None:
    """Write a whole file or nothing: a temp file in the same folder, fsync, then rename over `path`.

    `data` is text (written as UTF-8, newlines untouched), bytes, or a function that writes into the
    binary file it is given (np.savez, say). A reader sees the old file or the whole new one.
    """
    path = Path(path)
    fd, tmp = create_temp(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _sync_dir(path.parent)


def create_temp(path: Path) -> tuple[int, str]:
    """A new empty file `.<name>.<random>.tmp` beside `path` (never through a symlink); (fd, its path)."""
    for _ in range(16):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, FILE_MODE)
        except FileExistsError:
            continue
        return fd, str(tmp)
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(path.parent))


def _sync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (best effort: not every system can fsync a directory)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def open_append(path: str | os.PathLike[str]) -> IO[str]:
    """Open one of the run's files for appending text (UTF-8), created 0644 if absent.

    Never writes through a symlink: a symlink, FIFO or device in its place (which the trainer never
    makes) is removed and a regular file created instead; what a link pointed to is never opened.
    """
    path = Path(path)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW | _NONBLOCK | _CLOEXEC | _NOCTTY
    for _ in range(3):
        try:
            fd = os.open(path, flags, FILE_MODE)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENXIO):  # ELOOP: a symlink; ENXIO: a FIFO
                raise
            path.unlink()  # the link (or FIFO) itself, inside the run directory
            continue
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a device node, say
            os.close(fd)
            path.unlink()
            continue
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~_NONBLOCK)
        return os.fdopen(fd, "a", encoding="utf-8")
    raise OSError(errno.EEXIST, "something keeps replacing this file with a non-regular one", str(path))


def ensure_dir(path: str | os.PathLike[str]) -> Path:
    """Create a folder of the run directory (checkpoints/); OSError if a symlink or a file is in its place,
    so nothing is written into a folder elsewhere."""
    path = Path(path)
    try:
        path.mkdir()
    except FileExistsError:
        if path.is_symlink() or not path.is_dir():
            what = "a symbolic link" if path.is_symlink() else "not a folder"
            raise OSError(
                errno.ENOTDIR,
                f"{path} is {what}; the trainer writes only inside its run directory",
                str(path),
            ) from None
    return path


# -- reading ------------------------------------------------------------------------------------


def describe_kind(mode: int) -> str:
    """What a file is, in words, from its st_mode."""
    for test, words in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return words
    return "not a regular file"


def open_regular(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open a regular file for reading (binary); UnreadableFile for a FIFO, a device, a directory or a
    symlink to one (checked before the open, and again on the open file); OSError if it is missing."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise UnreadableFile(_not_regular(path, st.st_mode))
    fd = os.open(path, os.O_RDONLY | _NONBLOCK | _NOCTTY | _CLOEXEC)  # a FIFO swapped in now: no block
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise UnreadableFile(_not_regular(path, mode))
    return os.fdopen(fd, "rb")


def _not_regular(path: str | os.PathLike[str], mode: int) -> str:
    return (
        f"{os.fspath(path)} is {describe_kind(mode)}, not a regular file; the trainer writes only regular "
        "files, so it was put there by something else: remove it, or point at the right run directory"
    )


def read_bytes(path: str | os.PathLike[str], limit: int) -> bytes:
    """A whole regular file of at most `limit` bytes; UnreadableFile when it is not one, or larger."""
    with open_regular(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        data = fh.read(limit + 1) if size <= limit else b""
    if size > limit or len(data) > limit:
        raise UnreadableFile(
            f"{os.fspath(path)} holds {max(size, len(data)):,} bytes, more than the {limit:,} "
            "such a file ever needs; it is not one the trainer wrote"
        )
    return data


def read_text(path: str | os.PathLike[str], limit: int) -> str:
    """A whole regular UTF-8 text file of at most `limit` bytes (a BOM is dropped); UnreadableFile else."""
    data = read_bytes(path, limit)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise UnreadableFile(
            f"{os.fspath(path)} is not UTF-8 text ({err.reason} at byte {err.start}); "
            "it is not a file the trainer wrote"
        ) from None
