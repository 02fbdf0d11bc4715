"""The typer apps the ``axl`` commands register on (no commands here, so no import circle)."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="axl",
    help="AXL volunteer nodes: keys, chain, a bootstrap node, market roles, status.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(help="The node's Ed25519 identity and chain account.", no_args_is_help=True)
chain_app = typer.Typer(help="Deploy the contracts, show the chain, fund dev accounts.")
app.add_typer(keys_app, name="keys")
app.add_typer(chain_app, name="chain")
