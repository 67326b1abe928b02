"""Migrating the database in a child process, so the daemon never imports Alembic.

Alembic (with Mako) stays resident once imported: 8 MB of a daemon that must fit in 150 MB
(DESIGN §7), for a job done once at start. The child opens the store, which migrates it, and
exits; the daemon's own `Store.open` then finds the schema current and leaves Alembic unloaded.
The child's StorageError comes back as the same StorageError, so the user sees the same line and
exit code as when the daemon migrated by itself.

The URL goes through stdin, never the command line, where `ps` would show its password.
"""

from __future__ import annotations

import subprocess
import sys

from monitor.errors import StorageError

# Imports and a first migration of a large SQLite file take seconds; a child stuck longer than
# this is waiting on a lock that will not be released.
TIMEOUT_SECONDS = 300.0
_STORAGE_ERROR = 3  # the child's exit code for a StorageError (1 is any uncaught exception)


def in_memory(url: str) -> bool:
    """A private in-memory SQLite database: a child would migrate its own, not ours."""
    return url.startswith("sqlite") and (
        url.rstrip("/").endswith(":") or ":memory:" in url or "mode=memory" in url
    )


def migrate_in_child(url: str, *, timeout: float = TIMEOUT_SECONDS) -> None:
    """Bring the database at `url` to the newest schema in a child process.

    Raises StorageError with the child's message when it cannot.
    """
    try:
        done = subprocess.run(
            [sys.executable, "-m", "monitor._migrate"],
            input=url,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise StorageError(
            f"cannot open database: migrating it took more than {timeout:.0f} s"
        ) from None
    except OSError as error:
        raise StorageError(f"cannot open database: cannot start the migration: {error}") from None
    if done.returncode == 0:
        return
    lines = done.stderr.strip().splitlines()
    if done.returncode == _STORAGE_ERROR and lines:  # printed by main()
        raise StorageError("\n".join(lines))
    last = lines[-1] if lines else "no message"
    raise StorageError(f"cannot open database: the migration failed ({last})")


def main() -> None:
    from storage import Store

    url = sys.stdin.read()
    try:
        Store.open(url).close()
    except StorageError as error:
        print(error, file=sys.stderr)
        sys.exit(_STORAGE_ERROR)


if __name__ == "__main__":
    main()
