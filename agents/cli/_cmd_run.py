"""``axl run <role>``: one built-in market role on this machine, from a TOML config and flags.
It checks everything first (config, keys, chain, address book, lock), binds the identity and
stakes what is missing, then runs until Ctrl-C or SIGTERM, flushing state."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._chain import (
    connect,
    ensure_binding,
    load_account,
    parse_tokens,
    send_stake,
    stake_missing,
    tokens,
)
from ._checks import load_identity, parse_peer
from ._cmd_node import host
from ._config import RunConfig, load_run_config
from ._datadir import ACCOUNT_FILE, IDENTITY_FILE, locked
from ._options import logger, validate
from ._roles import check_role_name, role_spec
from ._typer import app


@app.command("run")
def run_command(
    role: Annotated[str, typer.Argument(help="solver, verifier, submitter or referee")],
    config: Annotated[Path | None, typer.Option(help="TOML config (see docs/volunteer.md)")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="keys, state, lock")] = None,
    listen: Annotated[list[str] | None, typer.Option("--listen", help="multiaddr")] = None,
    bootstrap: Annotated[list[str] | None, typer.Option("--bootstrap", help="peer")] = None,
    peer: Annotated[list[str] | None, typer.Option("--peer", help="NAME=PEER_ID")] = None,
    rpc: Annotated[str | None, typer.Option("--rpc", help="JSON-RPC URL")] = None,
    address_book: Annotated[Path | None, typer.Option("--address-book")] = None,
    chain_id: Annotated[int | None, typer.Option("--chain-id")] = None,
    stake: Annotated[str | None, typer.Option(help="tokens to keep bonded")] = None,
    price: Annotated[str | None, typer.Option(help="tokens per step (solver)")] = None,
    capacity: Annotated[int | None, typer.Option(help="concurrent jobs (solver)")] = None,
    sampling: Annotated[float | None, typer.Option(help="share checked (verifier)")] = None,
    status_port: Annotated[int | None, typer.Option("--status-port")] = None,
    metrics_port: Annotated[int | None, typer.Option("--metrics-port")] = None,
    json_logs: Annotated[bool | None, typer.Option("--json-logs/--text-logs")] = None,
    log_level: Annotated[str | None, typer.Option("--log-level")] = None,
) -> None:
    """Run a market role: stake what is missing, join, serve until Ctrl-C/SIGTERM."""
    check_role_name(role)
    settings = load_run_config(
        config,
        {
            "data_dir": str(data_dir) if data_dir is not None else None,
            "network.listen": listen or None,
            "network.bootstrap": bootstrap or None,
            "network.peers": _peers(peer),
            "chain.rpc": rpc,
            "chain.address_book": str(address_book) if address_book is not None else None,
            "chain.chain_id": chain_id,
            "chain.stake": stake,
            "role.price": price,
            "role.capacity": capacity,
            "role.sampling": sampling,
            "http.status_port": status_port,
            "http.metrics_port": metrics_port,
            "log.json": json_logs,
            "log.level": log_level,
        },
    )
    run_role(role, settings)


def run_role(role: str, settings: RunConfig) -> None:
    """Start ``role`` as configured (see :func:`run_command`); raises ``CliError``."""
    net = validate(
        listen=settings.network.listen,
        bootstrap=settings.network.bootstrap,
        peers=[f"{name}={peer_id}" for name, peer_id in settings.network.peers.items()],
        log_level=settings.log.level,
        json_logs=settings.log.json_lines,
        http_host=settings.http.host,
        status_port=settings.http.status_port,
        metrics_port=settings.http.metrics_port,
    )
    spec = role_spec(role)
    target = parse_tokens(settings.chain.stake, "stake") if settings.chain.stake else None
    data_dir = settings.data_dir
    with locked(data_dir):
        identity = load_identity(data_dir / IDENTITY_FILE, create=True)
        account = load_account(data_dir / ACCOUNT_FILE)
        chain = connect(
            settings.chain.rpc,
            settings.chain.address_book or Path("addressbook.json"),
            account,
            chain_id=settings.chain.chain_id,
        )
        missing = 0
        if spec.stake_role is not None:  # checked before anything is sent
            missing = stake_missing(chain, spec.stake_role, target)
        if ensure_binding(chain, identity):
            logger.info("bound %s to %s on chain", identity.peer_id, chain.address)
        if missing:
            send_stake(chain, spec.stake_role, missing)
            logger.info("staked %s more tokens as %s", tokens(missing), role)
        agent = spec.build(dict(settings.role), target)
        host(
            agent,
            node_dir=data_dir,
            identity=identity,
            net=net,
            role=role,
            chain=chain,
            bootstrap_grace=settings.network.bootstrap_grace,
        )


def _peers(items: list[str] | None) -> dict[str, str] | None:
    """``--peer NAME=PEER_ID`` flags as the config's ``network.peers`` table."""
    if not items:
        return None
    return {name: str(peer_id) for name, peer_id in map(parse_peer, items)}
