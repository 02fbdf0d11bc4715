"""``axl keys new|show|import|bind``: the node's Ed25519 identity (its peer id) and the chain
account it is bound to in the identity registry. Both files are mode 0600."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Annotated, Any

import typer

from axl import Identity

from ._chain import connect, ensure_binding, load_account, tokens
from ._checks import load_identity
from ._datadir import ACCOUNT_FILE, IDENTITY_FILE, prepare, write_private
from ._errors import CliError
from ._options import DataDir
from ._typer import keys_app

Rpc = Annotated[str | None, typer.Option("--rpc", help="JSON-RPC URL of the chain")]
Book = Annotated[Path | None, typer.Option("--address-book", help="address book JSON file")]


@keys_app.command("new")
def keys_new(data_dir: DataDir = Path(".axl/node")) -> None:
    """Create identity.key (Ed25519) and account.key (chain account) in DATA_DIR."""
    from eth_account import Account

    prepare(data_dir)
    identity_path, account_path = data_dir / IDENTITY_FILE, data_dir / ACCOUNT_FILE
    for path in (identity_path, account_path):
        if path.exists():
            raise CliError(f"{path} exists; `axl keys show` prints it, move it away to replace")
    identity = Identity.generate()
    write_private(identity_path, _pem(identity))
    account = Account.create()
    write_private(account_path, (account.key.hex() + "\n").encode())
    print(f"peer id {identity.peer_id}")
    print(f"account {account.address}")


@keys_app.command("show")
def keys_show(
    data_dir: DataDir = Path(".axl/node"), rpc: Rpc = None, address_book: Book = None
) -> None:
    """Print the peer id and account; with --rpc and --address-book also the on-chain binding
    and balances."""
    identity = load_identity(data_dir / IDENTITY_FILE, create=False)
    account = load_account(data_dir / ACCOUNT_FILE)
    print(f"peer id {identity.peer_id}")
    print(f"account {account.address}")
    if rpc is None:
        return
    chain = connect(rpc, address_book, account)
    if address_book is None:
        print(f"eth {tokens(chain.eth_balance())}")
        return
    bound = chain.peer_of()
    state = "yes" if bound == identity.peer_id else "no" if bound is None else f"to {bound}!"
    from rich.console import Console  # imported here: ``rich`` costs every node ≈ 30 ms
    from rich.table import Table

    table = Table(show_header=False)
    table.add_row("bound on chain", state)
    table.add_row("eth", tokens(chain.eth_balance()))
    table.add_row("tokens", tokens(chain.balance_of()))
    Console().print(table)


@keys_app.command("import")
def keys_import(
    data_dir: DataDir = Path(".axl/node"),
    identity: Annotated[
        Path | None, typer.Option("--identity", help="an Ed25519 PEM key file to copy in")
    ] = None,
    account_key_env: Annotated[
        str | None,
        typer.Option(help="environment variable holding the account's hex private key"),
    ] = None,
) -> None:
    """Copy an existing identity and/or account key into DATA_DIR (never overwrites)."""
    from eth_account import Account

    if identity is None and account_key_env is None:
        raise CliError("give --identity FILE and/or --account-key-env VARIABLE")
    prepare(data_dir)
    if identity is not None:
        loaded = load_identity(identity, create=False)
        write_private(data_dir / IDENTITY_FILE, _pem(loaded))
        print(f"peer id {loaded.peer_id}")
    if account_key_env is not None:
        text = os.environ.get(account_key_env)
        if not text:
            raise CliError(f"environment variable {account_key_env} is not set")
        try:
            account = Account.from_key(text.strip())
        except Exception:
            raise CliError(f"{account_key_env} does not hold a hex private key") from None
        write_private(data_dir / ACCOUNT_FILE, (account.key.hex() + "\n").encode())
        print(f"account {account.address}")


@keys_app.command("bind")
def keys_bind(
    data_dir: DataDir = Path(".axl/node"), rpc: Rpc = None, address_book: Book = None
) -> None:
    """Bind the peer id to the account in the identity registry (``axl run`` does it too)."""
    identity = load_identity(data_dir / IDENTITY_FILE, create=False)
    chain = connect(rpc, _required(address_book), load_account(data_dir / ACCOUNT_FILE))
    sent = ensure_binding(chain, identity)
    print(f"{'bound' if sent else 'already bound'} {identity.peer_id} to {chain.address}")


def _required(book: Path | None) -> Path:
    if book is None:
        raise CliError("give --address-book FILE (written by `axl chain deploy`)")
    return book


def _pem(identity: Identity) -> bytes:
    """The PEM bytes :meth:`Identity.save` writes (saved to a temporary place and read)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "key"
        identity.save(path)
        data = path.read_bytes()
        shutil.rmtree(tmp, ignore_errors=True)
        return data


def account_of(data_dir: Path) -> Any:
    """The account in ``data_dir/account.key`` (see :func:`load_account`)."""
    return load_account(data_dir / ACCOUNT_FILE)
