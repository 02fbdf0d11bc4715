"""A node's data directory: its key files and a lock that keeps a second process out.

Layout (``axl node`` and ``axl run``): ``identity.key`` (Ed25519, the peer id), ``account.key``
(the chain account's private key, hex), ``lock``, ``status.url`` (where the running node's
status endpoint listens) and ``<agent name>/state.sqlite``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from ._errors import CliError

IDENTITY_FILE = "identity.key"
ACCOUNT_FILE = "account.key"
LOCK_FILE = "lock"
STATUS_URL_FILE = "status.url"


def prepare(path: Path) -> Path:
    """Create the directory (mode 0700) if needed; raises :class:`CliError` if it cannot be."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise CliError(f"data directory {path}: {exc.strerror or exc}") from None
    if not path.is_dir():
        raise CliError(f"data directory {path} is not a directory")
    return path


@contextlib.contextmanager
def locked(path: Path) -> Iterator[Path]:
    """Hold ``path/lock`` (an ``flock``) while the block runs. Raises :class:`CliError` when
    another process holds it. The kernel drops the lock when the process dies (``kill -9``
    included), so a stale lock file never blocks a restart."""
    prepare(path)
    lock_path = path / LOCK_FILE
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise CliError(
                f"data directory {path} is in use by another axl process (pid {holder})", 1
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file readable by the owner only (0600); refuses to overwrite."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CliError(f"{path} exists; move it away first (it may hold your only key)") from None
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "wb") as file:
        file.write(data)
