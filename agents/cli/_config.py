"""``axl run`` configuration: a TOML file plus command-line flags, validated into a typed
:class:`RunConfig` (unknown keys and wrong types are one :class:`CliError` line).

Example (every key optional; flags override the file)::

    data_dir = ".axl/solver"

    [network]
    listen = ["/ip4/0.0.0.0/tcp/4002"]
    bootstrap = ["/ip4/10.0.0.5/tcp/4001/p2p/12D3KooW..."]

    [chain]
    rpc = "http://127.0.0.1:8545"
    address_book = "addressbook.json"
    chain_id = 31337
    stake = "100"              # tokens kept bonded for the role (staked when missing)

    [role]                     # handed to the role's own typed config
    price = "0.001"            # tokens per step
    capacity = 2               # concurrent jobs
    sampling = 0.2             # share of results a verifier checks

    [http]
    status_port = 0            # 0: any free port on loopback; the URL goes to data_dir/status.url
    metrics_port = 9464        # opt-in Prometheus metrics

    [log]
    level = "INFO"
    json = false
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._checks import load_toml
from ._errors import CliError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NetworkConfig(_Section):
    """Where the node listens and whom it joins through."""

    listen: list[str] = Field(default_factory=lambda: ["/ip4/0.0.0.0/tcp/4002"])
    bootstrap: list[str] = Field(default_factory=list)
    peers: dict[str, str] = Field(default_factory=dict)
    bootstrap_grace: float = 10.0


class ChainConfig(_Section):
    """The chain: its JSON-RPC node, the deployment, and the stake to keep bonded."""

    rpc: str | None = None
    address_book: Path | None = None
    chain_id: int | None = None
    stake: str | None = None
    """Tokens kept bonded for the role (decimal string); the protocol minimum when unset."""


class HttpConfig(_Section):
    """The local endpoints (loopback by default)."""

    host: str = "127.0.0.1"
    status_port: int | None = 0
    metrics_port: int | None = None


class LogConfig(_Section):
    level: str = "INFO"
    json_lines: bool = Field(default=False, alias="json")


class RunConfig(_Section):
    """Everything ``axl run <role>`` needs."""

    data_dir: Path = Path(".axl/node")
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    chain: ChainConfig = Field(default_factory=ChainConfig)
    role: dict[str, Any] = Field(default_factory=dict)
    http: HttpConfig = Field(default_factory=HttpConfig)
    log: LogConfig = Field(default_factory=LogConfig)


def load_run_config(path: Path | None, overrides: dict[str, Any]) -> RunConfig:
    """The file at ``path`` (if any) with ``overrides`` (``"section.key"`` to value; None
    values are ignored) applied on top. Raises :class:`CliError` naming the first bad key."""
    data: dict[str, Any] = load_toml(path) if path is not None else {}
    for dotted, value in overrides.items():
        if value is None:
            continue
        target = data
        *sections, key = dotted.split(".")
        for section in sections:
            inner = target.setdefault(section, {})
            if not isinstance(inner, dict):
                raise CliError(f"config: {section} must be a table")
            target = inner
        target[key] = value
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "config"
        source = f"config {path}" if path is not None else "config"
        raise CliError(f"{source}: {where}: {error['msg']}") from None
