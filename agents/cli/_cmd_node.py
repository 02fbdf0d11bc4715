"""``axl agent`` (any Agent class), ``axl node`` (a bootstrap node) and ``axl status``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from axl import Identity

from .._agent import Agent
from .._directory import Directory
from .._errors import AgentError
from .._runtime import AgentRuntime, libp2p_transport
from ._chain import tokens
from ._checks import check_state, load_agent_class, load_identity, make_agent, parse_arguments
from ._datadir import IDENTITY_FILE, STATUS_URL_FILE, locked
from ._errors import FAILURE, CliError
from ._observe import NodeStatus
from ._options import (
    Bootstrap,
    BootstrapGrace,
    DataDir,
    HttpHost,
    JsonLogs,
    Listen,
    LogLevel,
    MetricsPort,
    NetOptions,
    Peers,
    StatusPort,
    validate,
)
from ._process import run_node
from ._typer import app

if TYPE_CHECKING:
    from rich.console import Console


def print_ready(agent: Agent, urls: dict[str, str]) -> None:
    """The start-up lines scripts read: ``agent NAME PEER_ID``, ``listening ADDR`` each,
    then ``status URL`` / ``metrics URL`` when served."""
    print(f"agent {agent.name} {agent.peer_id}", flush=True)
    for addr in getattr(agent.bus.transport, "listen_addrs", []):
        print(f"listening {addr}", flush=True)
    for kind, url in urls.items():
        print(f"{kind} {url}", flush=True)


def host(
    agent: Agent,
    *,
    node_dir: Path,
    identity: Identity,
    net: NetOptions,
    role: str,
    chain: Any = None,
    name: str | None = None,
    status_dir: Path | None = None,
    bootstrap_grace: float = 10.0,
) -> None:
    """Run ``agent`` (as ``name``, default its own) as this node, its state in
    ``node_dir/<name>/``, until a signal; ``status.url`` goes to ``status_dir`` (default
    ``node_dir``). The caller holds the lock and loaded the identity. Raises
    :class:`CliError`."""
    agent_name = name or agent.name
    check_state(node_dir / agent_name / "state.sqlite")
    runtime = AgentRuntime(
        transport=libp2p_transport(listen=net.listen or None, bootstrap=net.bootstrap),
        data_dir=node_dir,
    )
    try:
        for peer_name, peer_id in net.peers:
            runtime.add_peer(peer_name, peer_id)
        runtime.add(agent, name=agent_name, identity=identity, chain=chain)
    except AgentError as exc:
        raise CliError(str(exc)) from None
    run_node(
        runtime,
        agent,
        status=NodeStatus(agent, role=role, chain=chain),
        http=net.http,
        data_dir=status_dir or node_dir,
        bootstrap=net.bootstrap,
        announce=print_ready,
        bootstrap_grace=bootstrap_grace,
    )


@app.command("agent")
def agent_command(
    spec: Annotated[str, typer.Argument(help="module:Class of an agents.Agent subclass")],
    name: Annotated[str | None, typer.Option(help="the agent's name (default: its own)")] = None,
    data_dir: DataDir = Path(".axl"),
    listen: Listen = None,
    bootstrap: Bootstrap = None,
    peer: Peers = None,
    arg: Annotated[
        list[str] | None,
        typer.Option("--arg", help="KEY=VALUE constructor argument (JSON or text; repeat)"),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="TOML file: its top-level keys are constructor arguments")
    ] = None,
    json_logs: JsonLogs = False,
    log_level: LogLevel = "INFO",
    http_host: HttpHost = "127.0.0.1",
    status_port: StatusPort = None,
    metrics_port: MetricsPort = None,
    bootstrap_grace: BootstrapGrace = 10.0,
) -> None:
    """Run one agent class over libp2p; identity and state in DATA_DIR/<name>/."""
    net = validate(
        listen=listen,
        bootstrap=bootstrap,
        peers=peer,
        log_level=log_level,
        json_logs=json_logs,
        http_host=http_host,
        status_port=status_port,
        metrics_port=metrics_port,
    )
    cls = load_agent_class(spec)
    agent = make_agent(cls, parse_arguments(arg or [], config))
    agent_name = name or agent.name
    folder = data_dir / agent_name
    with locked(folder):
        identity = load_identity(folder / IDENTITY_FILE, create=True)
        host(
            agent,
            node_dir=data_dir,
            identity=identity,
            net=net,
            role="agent",
            name=agent_name,
            status_dir=folder,
            bootstrap_grace=bootstrap_grace,
        )


@app.command("node")
def node_command(
    data_dir: DataDir = Path(".axl/node"),
    listen: Listen = None,
    bootstrap: Bootstrap = None,
    directory: Annotated[
        bool, typer.Option(help="host the built-in Directory (service lookup)")
    ] = True,
    json_logs: JsonLogs = False,
    log_level: LogLevel = "INFO",
    http_host: HttpHost = "127.0.0.1",
    status_port: StatusPort = 0,
    metrics_port: MetricsPort = None,
    bootstrap_grace: BootstrapGrace = 10.0,
) -> None:
    """Run a bootstrap node with no market role: peers join the network through it."""
    net = validate(
        listen=listen or ["/ip4/0.0.0.0/tcp/4001"],
        bootstrap=bootstrap,
        peers=None,
        log_level=log_level,
        json_logs=json_logs,
        http_host=http_host,
        status_port=status_port,
        metrics_port=metrics_port,
    )
    agent: Agent = Directory() if directory else _Relay("node")
    with locked(data_dir):
        identity = load_identity(data_dir / IDENTITY_FILE, create=True)
        host(
            agent,
            node_dir=data_dir,
            identity=identity,
            net=net,
            role="node",
            bootstrap_grace=bootstrap_grace,
        )


class _Relay(Agent):
    """A node that only carries the network (peer exchange, gossip)."""


@app.command("status")
def status_command(
    data_dir: DataDir = Path(".axl/node"),
    url: Annotated[str | None, typer.Option(help="the status endpoint, http://host:port")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the raw JSON")] = False,
) -> None:
    """Show a running node's peers, jobs, earnings, stake and rejections."""
    from ._status import fetch_status

    if url is None:
        try:
            url = (data_dir / STATUS_URL_FILE).read_text().strip()
        except OSError:
            raise CliError(
                f"no running node in {data_dir} ({STATUS_URL_FILE} missing); "
                "start one, or give --url",
                FAILURE,
            ) from None
    data = fetch_status(url)
    if as_json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return
    from rich.console import Console  # imported here: ``rich`` costs every node ≈ 30 ms

    render_status(data, Console())


def render_status(data: dict[str, Any], console: Console) -> None:
    """The status as a table for people."""
    from rich.table import Table

    table = Table(title=f"axl {data.get('role', '?')} {data.get('name', '?')}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("peer id", str(data.get("peer_id")))
    table.add_row("status", f"{data.get('status')} for {data.get('uptime_s', 0):.0f} s")
    table.add_row("listening", "\n".join(data.get("listen", [])) or "-")
    peers = data.get("peers", [])
    table.add_row("peers", f"{len(peers)} connected")
    jobs = data.get("jobs") or {}
    table.add_row("jobs", ", ".join(f"{k}: {v}" for k, v in sorted(jobs.items())) or "-")
    table.add_row("earnings", f"{tokens(int(data.get('earnings') or 0))} tokens")
    chain = data.get("chain") or {}
    if chain:
        table.add_row("account", str(chain.get("account")))
        table.add_row("balance", f"{tokens(int(chain.get('tokens_wei', 0)))} tokens")
        for role, position in sorted(chain.get("stake_wei", {}).items()):
            table.add_row(f"stake ({role})", f"{tokens(int(position['active']))} tokens")
    counters = data.get("counters", {})
    table.add_row(
        "messages",
        ", ".join(f"{k} {counters.get(k, 0)}" for k in ("received", "sent", "published")),
    )
    table.add_row("handler errors", str(counters.get("handler_errors", 0)))
    rejections = data.get("rejections") or {}
    table.add_row(
        "rejections", ", ".join(f"{k}: {v}" for k, v in sorted(rejections.items())) or "none"
    )
    console.print(table)
