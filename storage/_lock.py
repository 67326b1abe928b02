"""The exclusive OS lock that keeps a second daemon off one SQLite file.

flock(2) locks belong to the open file description, so the kernel drops the lock when the holder
dies, however it dies: no stale lock to clean up after a crash.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO

from monitor.errors import StorageError


class InstanceLock:
    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.path = db_path.with_name(db_path.name + ".lock")
        self._file: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self) -> None:
        if self._file is not None:
            return
        try:
            handle = open(self.path, "a+", encoding="ascii")  # noqa: SIM115 - held until release()
        except OSError as error:
            raise StorageError(f"cannot open lock file {self.path}: {error}") from error
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise StorageError(
                f"another monitor instance (pid {holder}) is running on {self.db_path}"
            ) from None
        except OSError as error:
            handle.close()
            raise StorageError(f"cannot lock {self.path}: {error}") from error
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        handle, self._file = self._file, None
        if handle is None:
            return
        with contextlib.suppress(OSError):
            handle.truncate(0)
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()
