"""One writer per run folder: an exclusive OS lock on a lock file, held for the whole run.

Why: two processes appending to one ``events.jsonl`` interleave their histories (every event written
twice, step numbers repeated) and the folder can no longer be read back.  A second ``catalyst-nb run``
into the same folder, or a ``--resume`` while the run is still going, must therefore be refused.

Why ``flock`` and not "a file exists" marker: the kernel drops the lock when the holding process dies,
however it dies (``kill -9`` included), so a killed run never leaves its folder stuck.  The lock file
holds the holder's pid, so the refusal can name it.

The lock file is removed when the lock is released (no leftovers in a finished folder).  Removing a lock
file is safe only with a check on the other side: a process that opened the file just before it was
removed would lock an orphaned inode.  :meth:`FolderLock.acquire` therefore re-checks, once it holds the
lock, that the path still names the file it locked, and otherwise starts over.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

__all__ = ["FolderBusyError", "FolderLock", "LOCK_FILE", "ensure_free", "lock_holder"]

LOCK_FILE = ".lock"

try:  # POSIX; there is no flock on Windows
    import fcntl
except ImportError:  # pragma: no cover - exercised only on Windows
    fcntl = None  # type: ignore[assignment]


class FolderBusyError(ValueError):
    """The folder is locked by another live process (``pid`` names it when known)."""

    def __init__(self, path: Path, pid: int | None) -> None:
        if pid == os.getpid():
            why = f"is in use by this process (process {pid}): an Experiment on it is still open; close() it first"
        else:
            holder = f"process {pid}" if pid is not None else "another process"
            why = f"is in use by {holder} (a run writing into it); wait for that run to end or stop it, or choose " \
                  "another folder"
        super().__init__(f"{os.fspath(path)} {why}")
        self.path = path
        self.pid = pid


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class FolderLock:
    """An exclusive, non-blocking lock on ``folder/.lock``; use as a context manager or acquire/release."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self._fd: int | None = None

    def __repr__(self) -> str:
        return f"FolderLock({os.fspath(self.folder)!r}, held={self.held})"

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "FolderLock":
        """Take the lock or raise :class:`FolderBusyError` at once (never waits)."""
        if self._fd is not None:
            raise RuntimeError(f"{self!r} is already held by this object")
        if fcntl is None:  # pragma: no cover - no OS lock available: one writer is not enforced
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                pid = _read_pid(fd)
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise FolderBusyError(self.folder, pid) from None
                raise
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the previous holder removed the file after we opened it: lock the new one
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
            self._fd = fd
            return self

    def release(self) -> None:
        """Remove the lock file, then drop the lock (in that order; see the module docstring)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(fd)  # closing the last descriptor releases the flock

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def ensure_free(folder: str | os.PathLike[str]) -> None:
    """Raise :class:`FolderBusyError` if a live process holds ``folder``'s lock (a check made before the
    slow preparations of a run; the run itself then takes the lock for good)."""
    if (Path(folder) / LOCK_FILE).exists():
        with FolderLock(folder):
            pass


def lock_holder(folder: str | os.PathLike[str]) -> int | None:
    """The pid of the live process that holds ``folder``'s lock, or ``None`` when no live process does.

    Read from the lock file, without taking the lock: a reader that took it, even for a moment, could
    make a run starting at that moment refuse its folder as busy.  A run releases by removing the file;
    a killed run leaves it with the pid of a process that is gone.  (A pid the system has given to
    another process since is reported as the holder: rare, and only while that process lives.)
    """
    try:
        fd = os.open(Path(folder) / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return None
    try:
        pid = _read_pid(fd)
    finally:
        os.close(fd)
    if pid is None:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, another user's
        return pid
    return pid
