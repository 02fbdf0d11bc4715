"""``axl chain deploy|info|fund``: deploy the contracts to a JSON-RPC node and write the
address book; show protocol parameters, balances and stake; fund accounts on dev nodes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from ._chain import connect, load_account, parse_tokens, tokens
from ._datadir import ACCOUNT_FILE
from ._errors import FAILURE, CliError
from ._typer import chain_app

Rpc = Annotated[str | None, typer.Option("--rpc", help="JSON-RPC URL of the chain")]
Book = Annotated[Path, typer.Option("--address-book", help="address book JSON file")]
ChainId = Annotated[int | None, typer.Option("--chain-id", help="refuse any other chain id")]


@chain_app.command("deploy")
def chain_deploy(
    rpc: Rpc = None,
    out: Annotated[Path, typer.Option("--out", help="address book to write")] = Path(
        "addressbook.json"
    ),
    chain_id: ChainId = None,
    key_env: Annotated[
        str, typer.Option(help="variable with the deployer's hex key (unset: anvil's first)")
    ] = "AXL_CHAIN_KEY",
    param: Annotated[
        list[str] | None, typer.Option("--param", help="NAME=INT deploy parameter (repeat)")
    ] = None,
    allocate: Annotated[
        list[str] | None,
        typer.Option(
            "--allocate", help="ADDRESS=TOKENS of the genesis supply (repeat; the only mint)"
        ),
    ] = None,
) -> None:
    """Deploy the AXL contracts and write the address book. The token supply is minted once,
    here (``--allocate``); the deployer keeps no role afterwards."""
    from eth_account import Account

    from coordination import CoordinationError, DeployParams

    values: dict[str, Any] = {}
    fields = DeployParams.model_fields
    for item in param or []:
        name, sep, raw = item.partition("=")
        name = name.replace("-", "_")
        if not sep or name not in fields:
            raise CliError(
                f"--param {item!r}: expected NAME=VALUE, NAME one of {', '.join(fields)}"
            )
        try:
            values[name] = int(raw)
        except ValueError:
            raise CliError(f"--param {item!r}: {raw!r} is not an integer") from None
    try:
        params = DeployParams(**values)
    except Exception as exc:
        raise CliError(f"deploy parameters: {str(exc).splitlines()[0]}") from None
    if out.exists():
        raise CliError(f"{out} exists; choose another --out (it may describe a live deployment)")
    key = os.environ.get(key_env)
    try:
        account = Account.from_key(key) if key else None
    except Exception:
        raise CliError(f"{key_env} does not hold a hex private key") from None
    allocations: dict[str, int] = {}
    for item in allocate or []:
        address, sep, amount = item.partition("=")
        if not sep or not (address.startswith("0x") and len(address) == 42):
            raise CliError(f"--allocate {item!r}: expected 0xADDRESS=TOKENS")
        allocations[address] = allocations.get(address, 0) + parse_tokens(amount, "--allocate")
    chain = connect(rpc, None, account, chain_id=chain_id)
    try:
        deployed = chain.deploy(params, allocations)
    except CoordinationError as exc:
        raise CliError(f"deploy failed: {str(exc).splitlines()[0]}", FAILURE) from None
    deployed.address_book.save(out)
    print(f"deployed on chain {deployed.chain_id}; address book {out}")
    for name, address in deployed.address_book.contracts.items():
        print(f"{name} {address}")


@chain_app.command("info")
def chain_info(
    rpc: Rpc = None,
    address_book: Book = Path("addressbook.json"),
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="also show this node's account")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show the protocol parameters and, with --data-dir, the node's balances and stake."""
    from coordination import Role

    account = load_account(data_dir / ACCOUNT_FILE) if data_dir is not None else None
    chain = connect(rpc, address_book, account)
    params = chain.params()
    info: dict[str, Any] = {
        "chain_id": chain.chain_id,
        "block": chain.block_number(),
        "contracts": dict(chain.address_book.contracts),
        "params": {name: getattr(params, name) for name in params.__dataclass_fields__},
        "total_supply_wei": chain.total_supply(),
    }
    if account is not None:
        bound = chain.peer_of()
        info["account"] = {
            "address": chain.address,
            "eth_wei": chain.eth_balance(),
            "tokens_wei": chain.balance_of(),
            "stake_wei": {
                role.name.lower(): chain.stake_of(role).active
                for role in (Role.SOLVER, Role.VERIFIER)
            },
            "bound_peer": str(bound) if bound else None,
        }
    if as_json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return
    from rich.console import Console  # imported here: ``rich`` costs every node ≈ 30 ms
    from rich.table import Table

    table = Table(title=f"chain {info['chain_id']} at block {info['block']}", show_header=False)
    for name, value in info["params"].items():
        shown = tokens(value) + " tokens" if name.startswith("min_") else str(value)
        table.add_row(name, shown)
    table.add_row("total supply", tokens(info["total_supply_wei"]) + " tokens")
    if account is not None:
        mine = info["account"]
        table.add_row("account", mine["address"])
        table.add_row("eth", tokens(mine["eth_wei"]))
        table.add_row("tokens", tokens(mine["tokens_wei"]))
        for role, wei in mine["stake_wei"].items():
            table.add_row(f"stake ({role})", tokens(wei))
        table.add_row("bound peer", mine["bound_peer"] or "-")
    Console().print(table)


@chain_app.command("fund")
def chain_fund(
    to: Annotated[str, typer.Argument(help="an address, or a data directory with account.key")],
    rpc: Rpc = None,
    address_book: Book = Path("addressbook.json"),
    eth: Annotated[str, typer.Option(help="ETH to give (dev nodes)")] = "1",
    tokens_amount: Annotated[
        str, typer.Option("--tokens", help="AI tokens to send from the funder")
    ] = "0",
    key_env: Annotated[
        str, typer.Option(help="variable with the funder's hex key (unset: anvil's first)")
    ] = "AXL_CHAIN_KEY",
) -> None:
    """Give an account gas ETH (dev nodes) and send it tokens from the funder's balance (the
    supply is minted only at deployment: allocate some to the funder there)."""
    from eth_account import Account

    from coordination import CoordinationError

    eth_wei = parse_tokens(eth, "--eth")
    token_wei = parse_tokens(tokens_amount, "--tokens")
    address = to
    if Path(to).is_dir():
        address = load_account(Path(to) / ACCOUNT_FILE).address
    elif not (to.startswith("0x") and len(to) == 42):
        raise CliError(f"{to!r} is neither an address (0x + 40 hex) nor a data directory")
    key = os.environ.get(key_env)
    try:
        funder = Account.from_key(key) if key else None
    except Exception:
        raise CliError(f"{key_env} does not hold a hex private key") from None
    chain = connect(rpc, address_book, funder)
    if token_wei and chain.balance_of() < token_wei:
        raise CliError(
            f"the funder {chain.address} holds {tokens(chain.balance_of())} tokens, "
            f"not {tokens(token_wei)} (allocate some at deployment: --allocate)",
            FAILURE,
        )
    try:
        if eth_wei:
            chain.fund(address, eth_wei)
        if token_wei:
            chain.transfer(address, token_wei)
    except CoordinationError as exc:
        raise CliError(f"funding failed: {str(exc).splitlines()[0]}", FAILURE) from None
    print(f"funded {address}: {tokens(eth_wei)} eth, {tokens(token_wei)} tokens")
