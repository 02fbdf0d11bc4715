"""Per-agent persistent state: a small key/value store in SQLite, loaded lazily.

Values are JSON (numbers, strings, booleans, None, lists, dicts). Reads and writes go to an
in-memory dict; :meth:`State.flush` writes every key whose value changed since the last flush
(in-place changes to nested lists and dicts included) in one SQLite transaction. The runtime
flushes periodically and when the agent stops, so a restarted agent resumes where it stopped.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

from ._errors import StateError

_SCHEMA = "CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL)"


class State(MutableMapping[str, Any]):
    """A JSON key/value mapping persisted to ``path`` (or memory only when ``path`` is None).

    Nothing is read until first use and nothing is kept open between flushes, so thousands of
    idle agents cost no file descriptors.
    """

    __slots__ = ("_data", "_path", "_saved")

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._data: dict[str, Any] | None = None
        self._saved: dict[str, str] = {}

    @property
    def path(self) -> Path | None:
        """The SQLite file, or None for a memory-only state."""
        return self._path

    def _loaded(self) -> dict[str, Any]:
        data = self._data
        if data is None:
            data = {}
            if self._path is not None and self._path.exists():
                try:
                    with _connect(self._path) as db:
                        rows = db.execute("SELECT key, value FROM state").fetchall()
                except sqlite3.Error as exc:
                    raise StateError(f"cannot read agent state {self._path}: {exc}") from exc
                for key, text in rows:
                    try:
                        data[key] = json.loads(text)
                    except (TypeError, ValueError) as exc:
                        raise StateError(
                            f"agent state {self._path} holds a corrupt value for {key!r}: {exc}"
                        ) from exc
                    self._saved[key] = text
            self._data = data
        return data

    def check(self) -> None:
        """Load the stored state now; raises :class:`StateError` when the file is not a
        readable state database (corrupt, truncated, another format) or holds a value that
        is not JSON. Call it at start-up so a corrupt file stops the program with one line
        instead of failing on every access."""
        self._loaded()

    def __getitem__(self, key: str) -> Any:
        return self._loaded()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise StateError(f"state keys are strings, got {type(key).__name__}")
        _encode(key, value)
        self._loaded()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._loaded()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())

    def __repr__(self) -> str:
        return f"State({self._path}, {self._data!r})"

    @property
    def dirty(self) -> bool:
        """True when a flush would write something."""
        if self._data is None:
            return False
        return self._changes() != ({}, set())

    def _changes(self) -> tuple[dict[str, str], set[str]]:
        data = self._data or {}
        upserts = {}
        for key, value in data.items():
            text = _encode(key, value)
            if self._saved.get(key) != text:
                upserts[key] = text
        deletions = set(self._saved) - set(data)
        return upserts, deletions

    def flush(self) -> int:
        """Write changed keys to disk in one transaction; returns how many keys were written.

        A no-op for memory-only state or when nothing changed. Raises :class:`StateError` when
        a value is not JSON-serialisable or SQLite fails (the previous contents stay intact).
        """
        if self._data is None:
            return 0
        upserts, deletions = self._changes()
        if not upserts and not deletions:
            return 0
        if self._path is not None:
            try:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                with _connect(self._path) as db, db:
                    db.executemany(
                        "INSERT INTO state (key, value) VALUES (?, ?) "
                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                        list(upserts.items()),
                    )
                    db.executemany("DELETE FROM state WHERE key = ?", [(k,) for k in deletions])
            except (sqlite3.Error, OSError) as exc:
                raise StateError(f"cannot write agent state {self._path}: {exc}") from exc
        self._saved.update(upserts)
        for key in deletions:
            del self._saved[key]
        return len(upserts) + len(deletions)


class _Connection:
    """``sqlite3.connect`` that also closes on exit (sqlite3's own context only commits)."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, timeout=5.0)

    def __enter__(self) -> sqlite3.Connection:
        self._db.execute(_SCHEMA)
        return self._db

    def __exit__(self, *exc: object) -> None:
        self._db.close()


def _connect(path: Path) -> _Connection:
    return _Connection(path)


def _encode(key: str, value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StateError(
            f"state[{key!r}] must be JSON (numbers, strings, lists, dicts): {exc}"
        ) from exc
