"""One bridge per store: an exclusive lock on ``<store.path>.lock``, held while it runs.

The lock is ``fcntl.flock`` on a file beside the store (created 0600, holding the PID
of the bridge that holds it). The kernel releases it when the process ends, however it
ends (SIGKILL, a crash, a power cut), so a stale lock file never blocks a restart: only
a live process holds the lock. A second bridge on the same store fails at start with
:class:`StoreInUse` (the CLI exits 2 with its one line). An in-memory store has no lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from linky2mqtt.errors import Linky2MqttError

__all__ = ["StoreInUse", "StoreLock", "lock_path"]


class StoreInUse(Linky2MqttError):
    """Another live process holds the lock of this store."""

    def __init__(self, store: str, pid: int | None) -> None:
        holder = f"PID {pid}" if pid is not None else "PID unknown"
        super().__init__(
            f"store {store} is in use by another linky2mqtt ({holder}); stop it first, "
            "or give this one its own store.path")
        self.store = store
        self.pid = pid


def lock_path(store_path: str | os.PathLike[str]) -> Path | None:
    """Where the lock of ``store_path`` lives (None: in-memory store)."""
    text = str(store_path)
    if text == ":memory:" or text.startswith("file:"):
        return None
    return Path(f"{text}.lock")


class StoreLock:
    """The held lock of one store; :meth:`release` (or process exit) gives it back."""

    def __init__(self, store_path: str | os.PathLike[str]) -> None:
        self.store = str(store_path)
        self.path = lock_path(store_path)
        self._fd: int | None = None
        self.error: str | None = None  # why the lock file could not be opened

    @classmethod
    def acquire(cls, store_path: str | os.PathLike[str]) -> StoreLock:
        """Take the lock now, never waiting: StoreInUse when another process holds it.

        When the lock file cannot be opened at all, the lock returned is not ``held``
        and ``error`` says why."""
        lock = cls(store_path)
        if lock.path is None:
            return lock
        # a missing directory is reported by the store itself, with its own message
        if not lock.path.parent.is_dir():
            return lock
        try:
            fd = os.open(lock.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            # a read-only directory or file system: the store says so in its own words
            # when it opens; the caller checks ``held`` afterwards
            lock.error = exc.strerror or str(exc)
            return lock
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise StoreInUse(lock.store, pid) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        lock._fd = fd
        return lock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Give the lock back (idempotent). The file stays: removing it would race with
        a bridge starting at the same moment."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
