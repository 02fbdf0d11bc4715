"""The chain side of a node: its account key, the connection to a JSON-RPC node bound to an
address book, the identity binding and staking what is missing; every failure one line."""

from __future__ import annotations

import stat
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from axl import Identity

from ._errors import FAILURE, CliError

WEI = 10**18


def parse_tokens(text: str, what: str) -> int:
    """A token amount (``"100"``, ``"0.5"``) in wei; raises :class:`CliError`."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise CliError(f"{what} {text!r} is not an amount of tokens, e.g. 100 or 0.5") from None
    if not value.is_finite() or value < 0:
        raise CliError(f"{what} {text!r} must be a non-negative amount")
    wei = value * WEI
    if wei != wei.to_integral_value() or wei >= 2**256:
        raise CliError(f"{what} {text!r}: at most 18 decimals and below 2**256 wei")
    return int(wei)


def tokens(wei: int) -> str:
    """``wei`` as a token amount for people (``"100"``, ``"0.5"``)."""
    text = f"{Decimal(wei) / WEI:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def load_account(path: Path) -> Any:
    """The chain account whose hex private key is in ``path`` (mode 0600).

    Raises :class:`CliError` for a missing, world-readable or corrupt file."""
    from eth_account import Account

    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        text = path.read_text().strip()
    except FileNotFoundError:
        raise CliError(f"no account key at {path}; create one with `axl keys new`") from None
    except OSError as exc:
        raise CliError(f"account key {path}: {exc.strerror or exc}") from None
    if mode & 0o077:
        raise CliError(f"account key {path} has mode {mode:04o}; run `chmod 600 {path}`")
    try:
        return Account.from_key(text)
    except Exception:
        raise CliError(f"account key {path} is corrupt (expected 32 bytes of hex)") from None


def connect(
    rpc: str | None,
    book_path: Path | None,
    account: Any = None,
    *,
    chain_id: int | None = None,
) -> Any:
    """A ``coordination.Chain`` on ``rpc`` acting as ``account``, bound to the address book at
    ``book_path`` (when given). Raises :class:`CliError` for an unreachable node, a wrong chain
    id, a missing, malformed or foreign address book (no contracts at its addresses)."""
    from coordination import AddressBook, Chain, CoordinationError, WrongChain

    if not rpc:
        raise CliError(
            "give --rpc URL: the JSON-RPC node of the chain (e.g. http://127.0.0.1:8545)"
        )
    try:
        chain = Chain.connect(rpc, account, expected_chain_id=chain_id, timeout=10.0)
    except WrongChain as exc:
        raise CliError(f"the node at {rpc} is on the wrong chain: {exc}", FAILURE) from None
    except CoordinationError as exc:
        raise CliError(f"cannot reach the chain at {rpc}: {_line(exc)}", FAILURE) from None
    if book_path is None:
        return chain
    try:
        book = AddressBook.load(book_path)
    except CoordinationError as exc:
        raise CliError(_line(exc)) from None
    if book.chain_id != chain.chain_id:
        raise CliError(
            f"address book {book_path} is for chain {book.chain_id}, "
            f"the node at {rpc} is chain {chain.chain_id}"
        )
    missing = [
        name
        for name, address in sorted(book.contracts.items())
        if not chain.w3.eth.get_code(chain.w3.to_checksum_address(address))
    ]
    if missing:
        raise CliError(
            f"address book {book_path}: no contract at the address of {', '.join(missing)} "
            f"on chain {chain.chain_id} (a book from another deployment?)"
        )
    return chain.with_address_book(book)


def ensure_binding(chain: Any, identity: Identity) -> bool:
    """Bind ``identity`` to the chain account unless it already is; returns True when a
    binding was sent. Raises :class:`CliError` when the account is bound to another peer."""
    bound = chain.peer_of()
    if bound == identity.peer_id:
        return False
    if bound is not None:
        raise CliError(
            f"account {chain.address} is bound to peer {bound}, not to this node's "
            f"{identity.peer_id}; use the matching identity.key or another account"
        )
    try:
        chain.bind_identity(identity)
    except Exception as exc:
        raise CliError(f"cannot bind the identity on chain: {_line(exc)}", FAILURE) from None
    return True


def stake_missing(chain: Any, role: Any, target: int | None) -> int:
    """How many wei ``role`` must still stake to have ``target`` active (the protocol minimum
    when None); nothing is sent. Raises :class:`CliError` when ``target`` is under the minimum
    or the account lacks the tokens."""
    from coordination import Role

    params = chain.params()
    name = Role(role).name.lower()
    minimum = int(getattr(params, f"min_{name}_stake"))
    if target is None:
        target = minimum
    if target < minimum:
        raise CliError(
            f"stake {tokens(target)} is below the {name} minimum of {tokens(minimum)} tokens"
        )
    missing = int(target - chain.stake_of(role).active)
    if missing <= 0:
        return 0
    balance = chain.balance_of()
    if balance < missing:
        raise CliError(
            f"not enough tokens to stake: {name} needs {tokens(missing)} more, "
            f"account {chain.address} has {tokens(balance)}",
            FAILURE,
        )
    return missing


def send_stake(chain: Any, role: Any, amount: int) -> None:
    """Stake ``amount`` wei for ``role``; raises :class:`CliError` when the chain refuses."""
    from coordination import CoordinationError

    try:
        chain.stake(role, amount)
    except CoordinationError as exc:
        raise CliError(f"staking {tokens(amount)} failed: {_line(exc)}", FAILURE) from None


def _line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
