"""Logging for the ``axl`` processes: :func:`agents.configure_logging` plus a filter that lets
a repeating failure (a bootstrap peer that does not answer, a dial that keeps failing) through
once per window with a count, instead of a line (or a traceback) every few seconds."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .._logging import configure_logging


class RepeatFilter(logging.Filter):
    """Passes the first record of each (logger, message template) and then at most one per
    ``window`` seconds, noting how many were held back (``repeated``) and dropping the
    traceback of the repeats (the first one kept it)."""

    def __init__(self, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window = window
        self._clock = clock
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and not _is_network_noise(record):
            return True
        key = (record.name, str(record.msg))
        now = self._clock()
        last = self._seen.get(key)
        if last is None:
            self._seen[key] = (now, 0)
            if len(self._seen) > 4096:
                self._seen.pop(next(iter(self._seen)))
            return True
        shown_at, held = last
        if now - shown_at < self.window:
            self._seen[key] = (shown_at, held + 1)
            return False
        self._seen[key] = (now, 0)
        record.repeated = held
        record.exc_info = None
        record.exc_text = None
        return True


def _is_network_noise(record: logging.LogRecord) -> bool:
    return record.name.startswith("libp2p")


def setup_logging(level: str, *, json_lines: bool) -> None:
    """Logs to stderr at ``level`` (JSON lines when asked), repeats condensed."""
    configure_logging(level, json_lines=json_lines)
    handler = logging.getLogger().handlers[0]
    handler.addFilter(RepeatFilter())
    if not json_lines:
        handler.setFormatter(_RepeatFormatter(handler.formatter))


class _RepeatFormatter(logging.Formatter):
    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self._inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        text = self._inner.format(record)
        held = getattr(record, "repeated", 0)
        return f"{text} (and {held} more like it)" if held else text
