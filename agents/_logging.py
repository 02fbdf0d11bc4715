"""Structured logs: every record from an agent carries its name, peer id and, inside a
handler, the message id and type. :class:`JsonFormatter` prints them as one JSON object a line.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

logger = logging.getLogger("agents")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
"""The level names the ``axl`` commands accept for ``--log-level``."""

# (message id hex, message type tag) of the message the current task is handling, if any.
current_message: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "axl_current_message", default=None
)

_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class AgentLog(logging.LoggerAdapter[logging.Logger]):
    """``agent.log``: a logger whose records carry ``agent``, ``peer`` and, while handling a
    message, ``message_id`` and ``message_type`` as record attributes."""

    def __init__(self, name: str, peer: str) -> None:
        super().__init__(logger.getChild(name), {"agent": name, "peer": peer})

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        extra = dict(self.extra or {})
        handling = current_message.get()
        if handling is not None:
            extra["message_id"], extra["message_type"] = handling
        extra.update(kwargs.get("extra") or {})
        kwargs["extra"] = extra
        return msg, kwargs


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, message, every extra field
    (agent, peer, message_id, ...) and the exception text if any."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": round(record.created, 6),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                data[key] = value if isinstance(value, (int, float, str, bool)) else str(value)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, sort_keys=False)


class _ThirdPartyFilter(logging.Filter):
    """Passes ``agents`` and ``axl`` records as their loggers decide, others from ``level``."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".", 1)[0] in ("agents", "axl"):
            return True
        return record.levelno >= self.level


def configure_logging(
    level: int | str = logging.INFO, *, json_lines: bool = False, stream: TextIO | None = None
) -> None:
    """Send ``agents`` and ``axl`` logs to ``stream`` (stderr): human-readable, or JSON lines.

    Third-party loggers (py-libp2p, web3, hypercorn, ...) go through the same handler and
    format, at WARNING and above (or ``level`` when it is less verbose), instead of Python's
    plain-text fallback. A convenience for scripts and examples; libraries should leave
    logging to the application.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    for name in ("agents", "axl"):
        log = logging.getLogger(name)
        log.handlers[:] = [handler]
        log.setLevel(level)
        log.propagate = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    numeric = logging.getLevelName(level) if isinstance(level, str) else level
    third_party = max(numeric if isinstance(numeric, int) else logging.INFO, logging.WARNING)
    root.setLevel(third_party)
    # Some py-libp2p modules pin their own logger to INFO; hold them to the same threshold.
    handler.addFilter(_ThirdPartyFilter(third_party))
    # py-libp2p configures its loggers when first imported (no propagation, so Python's
    # plain-text last resort prints its warnings): import it first, then undo that.
    with contextlib.suppress(ImportError):
        import libp2p  # noqa: F401
    for name in ("libp2p", "multiaddr"):
        third = logging.getLogger(name)
        third.handlers.clear()
        third.setLevel(logging.NOTSET)
        third.propagate = True
