"""Options shared by the commands that start a node (``agent``, ``node``, ``run``)."""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from axl import PeerId

from ._checks import check_port_free, parse_bootstrap, parse_listen, parse_log_level, parse_peer
from ._errors import CliError
from ._logs import setup_logging
from ._process import HttpOptions

logger = logging.getLogger("agents.cli")

DataDir = Annotated[Path, typer.Option("--data-dir", help="keys, state and lock of this node")]
Listen = Annotated[
    list[str] | None,
    typer.Option("--listen", help="multiaddr to listen on, e.g. /ip4/0.0.0.0/tcp/4001 (repeat)"),
]
Bootstrap = Annotated[
    list[str] | None,
    typer.Option("--bootstrap", help="a peer to join through: /ip4/…/tcp/…/p2p/<id> (repeat)"),
]
Peers = Annotated[
    list[str] | None, typer.Option("--peer", help="NAME=PEER_ID: a named remote peer (repeat)")
]
JsonLogs = Annotated[bool, typer.Option("--json-logs", help="log JSON lines to stderr")]
LogLevel = Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR")]
HttpHost = Annotated[
    str, typer.Option("--http-host", help="address of the status/metrics endpoints (loopback)")
]
StatusPort = Annotated[
    int | None, typer.Option("--status-port", help="status endpoint port (0: any free port)")
]
MetricsPort = Annotated[
    int | None, typer.Option("--metrics-port", help="serve Prometheus metrics on this port")
]

BootstrapGrace = Annotated[
    float,
    typer.Option("--bootstrap-grace", help="seconds before warning that no bootstrap answers"),
]


@dataclass(frozen=True, slots=True)
class NetOptions:
    """The validated network and logging options of a node command."""

    listen: list[str]
    bootstrap: list[str]
    peers: list[tuple[str, PeerId]]
    http: HttpOptions


def validate(
    *,
    listen: list[str] | None,
    bootstrap: list[str] | None,
    peers: list[str] | None,
    log_level: str,
    json_logs: bool,
    http_host: str,
    status_port: int | None,
    metrics_port: int | None,
) -> NetOptions:
    """Check every option (raising :class:`CliError` on the first mistake), then set up
    logging. Listen ports are probed, so a port in use stops the start with one line."""
    level = parse_log_level(log_level)
    listens = [parse_listen(text) for text in listen or []]
    boots = [parse_bootstrap(text) for text in bootstrap or []]
    named = [parse_peer(text) for text in peers or []]
    try:
        host = ipaddress.ip_address(http_host)
    except ValueError:
        raise CliError(f"--http-host {http_host!r} is not an IP address") from None
    for port, what in ((status_port, "--status-port"), (metrics_port, "--metrics-port")):
        if port is not None and not 0 <= port <= 65535:
            raise CliError(f"{what} {port}: a TCP port is 0-65535")
    for text in listens:
        check_port_free(text)
    setup_logging(level, json_lines=json_logs)
    if not host.is_loopback:
        logger.warning("status endpoint on %s: reachable from other machines", http_host)
    return NetOptions(listens, boots, named, HttpOptions(http_host, status_port, metrics_port))
