"""The node's local, read-only status endpoint (Starlette served on trio by hypercorn) and the
client ``axl status`` uses. Loopback only by default: it shows balances and peers."""

from __future__ import annotations

import json
import logging
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from ._errors import FAILURE, CliError

if TYPE_CHECKING:  # imported when a node serves its status: ~0.1 s of CPU at every start
    from hypercorn.config import Config
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

StatusSource = Callable[[], dict[str, Any]]
"""Returns the node's status as a JSON-ready dict."""


def status_app(source: StatusSource, metrics: Callable[[], bytes] | None = None) -> Starlette:
    """``GET /status`` answers ``source()`` as JSON; ``GET /metrics`` the Prometheus text when
    ``metrics`` is given. Only GET: nothing can be changed through it."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def status(request: Request) -> Response:
        return JSONResponse(source())

    routes = [Route("/status", status, methods=["GET"])]
    if metrics is not None:
        produce = metrics

        async def metrics_page(request: Request) -> Response:
            return Response(produce(), media_type="text/plain; version=0.0.4; charset=utf-8")

        routes.append(Route("/metrics", metrics_page, methods=["GET"]))
    return Starlette(routes=routes)


async def serve_http(
    app: Starlette,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``host:port`` until cancelled; ``task_status.started(url)`` once bound.

    Raises :class:`CliError` when the address cannot be bound (port in use)."""
    from hypercorn.config import Config

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise CliError(f"cannot serve on {host}:{port}: {exc.strerror or exc}", FAILURE) from None
    bound_port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # hypercorn owns (and closes) it from here
    config.accesslog = None
    config.errorlog = logging.getLogger("agents.cli.http")
    config.graceful_timeout = 1.0
    url = f"http://[{host}]:{bound_port}" if ":" in host else f"http://{host}:{bound_port}"
    async with trio.open_nursery() as nursery:
        await nursery.start(_serve, app, config)
        task_status.started(url)


async def _serve(
    app: Starlette, config: Config, *, task_status: trio.TaskStatus[list[str]]
) -> None:
    from hypercorn.trio import serve

    await serve(app, config, task_status=task_status)  # type: ignore[arg-type]


def fetch_status(url: str, timeout: float = 5.0) -> dict[str, Any]:
    """The JSON status of the node at ``url`` (``http://host:port``); raises :class:`CliError`
    when nothing answers there or the answer is not a status."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/status", timeout=timeout) as answer:
            data = json.loads(answer.read())
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        message = f"no axl node answers at {url}: {reason} (is it running?)"
        raise CliError(message, FAILURE) from None
    except ValueError:
        raise CliError(f"{url} answered something other than an axl status", FAILURE) from None
    if not isinstance(data, dict):
        raise CliError(f"{url} answered something other than an axl status", FAILURE)
    return data
