"""The connection and transaction core of ``Chain``: one node, one account, typed failures.

Every transaction is dry-run first (on the embedded chain, folded into the transaction itself),
so a revert raises its decoded :class:`ContractRevert` and nothing is sent. Reads retry refused
connections (idempotent) but never a timeout; sends are never retried. Every failure is a
:class:`CoordinationError` (``_translate``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from ._artifacts import CONTRACTS, artifact, event_topics
from ._embedded import NoCode, embedded_call, embedded_send, tester_receipt, tester_send_raw
from ._errors import (
    ChainUnavailable,
    CoordinationError,
    NotDeployed,
    TransactionError,
    WrongChain,
)
from ._events import ChainEvent
from ._translate import translate
from ._types import AddressBook, Receipt, with_value

T = TypeVar("T")

_PRIORITY_FEE = 10**9
_READ_RETRIES = 3


@dataclass
class _Connection:
    """State shared by every ``Chain`` on one node: web3, nonces, the receipt timeout."""

    w3: Any
    chain_id: int
    kind: str  # "eth-tester", "anvil" or "rpc"
    tester: Any = None
    embedded_gas: int = 0
    call_from: str = ""  # embedded: the sender of reads (see _embedded_call)
    timeout: float = 30.0
    nonces: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def no_addr(value: str) -> str | None:
    """None for the zero address, else the address."""
    return None if int(value, 16) == 0 else value


def addr_or_zero(address: str | None) -> str:
    """The checksum address, or the zero address for None."""
    return str(to_checksum_address(address)) if address else "0x" + "00" * 20


class ChainBase:
    """Connection, account, deployment binding, reads and sends (the mixins build on these)."""

    def __init__(
        self, conn: _Connection, account: LocalAccount | None, book: AddressBook | None
    ) -> None:
        self._conn = conn
        self._account = account
        self._book = book
        self._contracts: dict[str, Any] = {}
        self._by_address: dict[str, str] = {}
        if book is not None:
            for name in CONTRACTS:
                address = to_checksum_address(book.contracts[name])
                self._contracts[name] = conn.w3.eth.contract(
                    address=address, abi=artifact(name).abi
                )
                self._by_address[address.lower()] = name

    # --- properties ---------------------------------------------------------------------------

    @property
    def w3(self) -> Any:
        """The underlying ``web3.Web3`` (escape hatch; prefer the typed methods)."""
        return self._conn.w3

    @property
    def chain_id(self) -> int:
        """The node's chain id."""
        return self._conn.chain_id

    @property
    def kind(self) -> str:
        """``"eth-tester"`` (embedded), ``"anvil"`` or ``"rpc"``."""
        return self._conn.kind

    @property
    def address(self) -> str:
        """This client's account address; raises :class:`CoordinationError` without one."""
        return self._require_account().address

    @property
    def address_book(self) -> AddressBook:
        """The bound deployment; raises :class:`NotDeployed` without one."""
        if self._book is None:
            raise NotDeployed("no deployment bound: call deploy() or with_address_book()")
        return self._book

    def contract(self, name: str) -> Any:
        """The web3 contract object of ``name`` (``"JobMarket"``, ...)."""
        if self._book is None:
            raise NotDeployed("no deployment bound: call deploy() or with_address_book()")
        return self._contracts[name]

    def with_address_book(self, book: AddressBook, *, check: bool = True) -> Self:
        """The same connection and account, bound to the deployment ``book``. Raises
        :class:`WrongChain` when the book is for another chain and (``check``) NotDeployed
        when a contract of the book has no code on this chain (a reset node)."""
        if book.chain_id != self._conn.chain_id:
            raise WrongChain(book.chain_id, self._conn.chain_id)
        bound = type(self)(self._conn, self._account, book)
        if check:
            bound.check_deployment()
        return bound

    def _require_account(self) -> LocalAccount:
        if self._account is None:
            raise CoordinationError("this client has no account: use with_account()")
        return self._account

    def _resolve(self, who: str) -> str:
        if who in self._contracts:
            return str(self._contracts[who].address)
        return str(to_checksum_address(who))

    # --- reads --------------------------------------------------------------------------------

    def block_number(self) -> int:
        """The latest block number."""
        if self._conn.tester is not None:
            return int(_tester_header(self._conn.tester, None).block_number)
        return int(self._read(lambda: self._conn.w3.eth.block_number))

    def block_timestamp(self) -> int:
        """The latest block's timestamp (chain time, seconds)."""
        if self._conn.tester is not None:
            return int(_tester_header(self._conn.tester, None).timestamp)
        block = self._read(lambda: self._conn.w3.eth.get_block("latest"))
        return int(block["timestamp"])

    def block_hash(self, number: int) -> bytes:
        """The hash of mined block ``number`` (tells a chain that went back: a reverted
        snapshot, a reorg)."""
        if self._conn.tester is not None:
            return bytes(_tester_header(self._conn.tester, number).hash)
        return bytes(self._read(lambda: self._conn.w3.eth.get_block(number))["hash"])

    def eth_balance(self, address: str | None = None) -> int:
        """ETH balance (wei) of ``address`` (default: this account)."""
        who = to_checksum_address(address or self.address)
        return int(self._read(lambda: self._conn.w3.eth.get_balance(who)))

    def _read(self, fn: Callable[[], T]) -> T:
        try:
            return retry_read(fn)
        except CoordinationError:
            raise
        except Exception as exc:
            raise translate(exc) from exc

    def _call(self, fn: Any) -> Any:
        """A contract read; a deployment without code (fresh chain) raises NotDeployed."""
        try:
            if self._conn.tester is not None:
                return embedded_call(
                    self._conn.tester, self._conn.w3.codec, fn, self._call_from(), "latest"
                )
            return retry_read(lambda: fn.call())
        except CoordinationError:
            raise
        except Exception as exc:
            self._check_code(str(fn.address))
            raise translate(exc) from exc

    def _call_from(self) -> str:
        """The sender of an embedded read: the one web3 fills in for a call without one
        (eth-tester's first account)."""
        if not self._conn.call_from:
            self._conn.call_from = str(self._conn.tester.get_accounts()[0])
        return self._conn.call_from

    def _check_code(self, address: str) -> None:
        code = self._read(lambda: self._conn.w3.eth.get_code(to_checksum_address(address)))
        if not bytes(code):
            name = self._by_address.get(address.lower(), address)
            raise NotDeployed(
                f"no contract code at {name} ({address}) on chain {self.chain_id}: the "
                "address book is not for this chain's state (node reset?); redeploy"
            )

    def check_deployment(self) -> None:
        """Raise :class:`NotDeployed` unless every contract of the address book has code."""
        for name in CONTRACTS:
            self._check_code(str(self.contract(name).address))

    # --- sending ------------------------------------------------------------------------------

    def transact(self, fn: Any, *, deploying: bool = False) -> Receipt[Any]:
        """Send any web3 contract call ``fn`` from this account (the typed methods use this):
        dry-run first, so a revert raises its decoded :class:`ContractRevert` and nothing is
        sent; mined receipts carry decoded events. Never retried.

        On the embedded chain the dry run and the transaction are one EVM execution: the
        signed transaction is applied to the pending block and, if it fails (or calls an
        address without code), taken out again before anything is mined (see
        ``_embedded.embedded_send``)."""
        account = self._require_account()
        embedded = self._conn.tester is not None and not deploying
        try:
            if embedded:
                # eth-tester estimates gas by a binary search (~14 EVM runs); the tx (alone
                # in its block) may use the block's gas limit: unused gas is never charged.
                gas = self._conn.embedded_gas
            else:
                gas = int(fn.estimate_gas({"from": account.address})) * 5 // 4 + 20_000
        except CoordinationError:
            raise
        except Exception as exc:
            if not deploying and self._book is not None:
                self._check_code(str(fn.address))
            raise translate(exc) from exc
        tx = fn.build_transaction(
            {
                "from": account.address,
                "gas": gas,
                "nonce": 0,
                "chainId": self.chain_id,
                "maxFeePerGas": 0,
                "maxPriorityFeePerGas": 0,
            }
        )
        receipt = self._send(account, tx, checked=embedded)
        if deploying:
            if not receipt.value:
                raise TransactionError("deployment receipt has no contract address")
            return with_value(receipt, str(to_checksum_address(receipt.value)))
        return receipt

    def _next_nonce(self, account: LocalAccount) -> int:
        """The nonce to use: the node's pending count on a remote node (so a node that lost
        its state, or another sender, never leaves a stale cached nonce), the cache otherwise."""
        cached = self._conn.nonces.get(account.address)
        if cached is not None and self._conn.tester is not None:
            return cached
        w3 = self._conn.w3
        return int(self._read(lambda: w3.eth.get_transaction_count(account.address, "pending")))

    def _send(
        self, account: LocalAccount, tx: dict[str, Any], *, checked: bool = False
    ) -> Receipt[Any]:
        """Sign, send and await ``tx``. ``checked`` (embedded chain): a transaction that
        would fail is refused, typed, and nothing is mined (``_embedded.embedded_send``)."""
        w3 = self._conn.w3
        if self._conn.tester is not None:
            base_fee = int(_tester_header(self._conn.tester, None).base_fee_per_gas or 0)
        else:
            latest = self._read(lambda: w3.eth.get_block("latest"))
            base_fee = int(latest.get("baseFeePerGas", 0))
        tx = dict(tx)
        tx.pop("from", None)
        tx["chainId"] = self.chain_id
        tx["maxPriorityFeePerGas"] = _PRIORITY_FEE
        tx["maxFeePerGas"] = 2 * base_fee + _PRIORITY_FEE
        with self._conn.lock:
            nonce = self._next_nonce(account)
            tx["nonce"] = nonce
            signed = account.sign_transaction(tx)
            try:
                if checked:
                    tx_hash = embedded_send(self._conn.tester, bytes(signed.raw_transaction))
                elif self._conn.tester is not None:
                    tx_hash = tester_send_raw(self._conn.tester, bytes(signed.raw_transaction))
                else:
                    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
            except NoCode:
                self._check_code(str(tx["to"]))  # raises NotDeployed
                raise TransactionError(f"no contract code at {tx['to']}") from None
            except CoordinationError:  # refused before it was applied: the nonce is unused
                raise
            except Exception as exc:
                self._conn.nonces.pop(account.address, None)
                raise translate(exc) from exc
            self._conn.nonces[account.address] = nonce + 1
        try:
            if self._conn.tester is not None:  # mined as it was sent
                raw = tester_receipt(self._conn.tester, bytes(tx_hash))
            else:
                raw = w3.eth.wait_for_transaction_receipt(
                    tx_hash, timeout=self._conn.timeout, poll_latency=0.02
                )
        except Exception as exc:
            self._conn.nonces.pop(account.address, None)
            raise TransactionError(f"no receipt for 0x{bytes(tx_hash).hex()}: {exc}") from exc
        if raw["status"] != 1:
            self._raise_replayed(account, tx, int(raw["blockNumber"]))
        if not raw["logs"] and tx.get("to") and tx.get("data") and self._book is not None:
            self._check_code(str(tx["to"]))  # a call to an address without code "succeeds"
        events = tuple(e for e in (self.decode_log(log) for log in raw["logs"]) if e is not None)
        return Receipt(
            tx_hash=bytes(raw["transactionHash"]),
            block_number=int(raw["blockNumber"]),
            gas_used=int(raw["gasUsed"]),
            events=events,
            value=raw.get("contractAddress"),
        )

    def _raise_replayed(self, account: LocalAccount, tx: dict[str, Any], block: int) -> None:
        call: dict[str, Any] = {k: tx[k] for k in ("to", "data", "value") if k in tx}
        call["from"] = account.address
        try:
            self._conn.w3.eth.call(call, block - 1)
        except Exception as exc:
            raise translate(exc) from exc
        raise TransactionError(f"transaction failed in block {block} (out of gas?)")

    def decode_log(self, log: Any) -> ChainEvent | None:
        """The :class:`ChainEvent` of a raw log of the deployment (None for other logs)."""
        topics = log["topics"]
        if not topics:
            return None
        name = self._by_address.get(str(log["address"]).lower())
        event = None if name is None else event_topics(name).get(bytes(topics[0]))
        if name is None or event is None:
            return None
        decoded = self._contracts[name].events[event]().process_log(log)
        return ChainEvent(
            contract=name,
            name=event,
            args=dict(decoded["args"]),
            block_number=int(log["blockNumber"]),
            tx_hash=bytes(log["transactionHash"]),
            log_index=int(log["logIndex"]),
        )


# --------------------------------------------------------------------------- helpers


def _tester_header(tester: Any, number: int | None) -> Any:
    """The header of mined block ``number`` (None: the latest) of an embedded chain, read from
    py-evm directly: what ``eth_getBlockByNumber`` answers, without web3's request path
    (a swarm in one process reads chain time and height thousands of times). The chain's
    head is its pending block; the latest mined block is the one before it."""
    chain = tester.backend.chain
    pending = int(chain.header.block_number)
    latest = pending - 1
    if number is None:
        number = max(0, latest)
    elif not 0 <= number <= latest:
        raise CoordinationError(f"no mined block {number} (latest {latest})")
    return chain.get_canonical_block_header_by_number(number)


def retry_read(fn: Callable[[], T]) -> T:
    """Run a read, retrying refused connections (reads are idempotent; sends never retry).
    A timeout is not retried: a node that accepts and never answers fails after one timeout."""
    import requests

    delay = 0.1
    for attempt in range(_READ_RETRIES):
        try:
            return fn()
        except requests.Timeout as exc:
            raise ChainUnavailable(f"JSON-RPC node did not answer in time: {exc}") from exc
        except requests.ConnectionError as exc:
            if attempt == _READ_RETRIES - 1:
                raise ChainUnavailable(f"JSON-RPC node unreachable: {exc}") from exc
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")
